"""Command lines: ``AT``, ``ATE0``, ``AT+NAME``, ``AT+NAME?``, ``AT+NAME=?``, ``AT+NAME=args``.

Lenient the way module firmware is: the command name is case-insensitive, arguments are split
on commas outside double quotes, quotes are stripped (an unterminated quote runs to the end of
the line), and blanks outside quotes around an argument are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
import re

OK = "OK"
ERROR = "ERROR"

_BASIC = re.compile(r"(&?[A-Z])(\d*)", re.IGNORECASE)
_EXTENDED = re.compile(r"([+$^#%*][A-Z0-9_]+)(.*)", re.IGNORECASE | re.DOTALL)


class Kind(Enum):
    """The form of a command; its value is the suffix a handler table key carries."""

    EXEC = ""
    READ = "?"
    TEST = "=?"
    SET = "="


class ParamError(ValueError):
    """A command's arguments are missing or out of range: the module answers its bad-param reply."""


@dataclass(frozen=True)
class Command:
    """One parsed command line; ``name`` is upper-case: ``""`` (``AT``), ``"E"``, ``"+CSQ"``."""

    line: str
    name: str
    kind: Kind
    args: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The handler table key: the name followed by the form, e.g. ``"+QMTOPEN="``."""
        return self.name + self.kind.value

    def arg(self, index: int, default: str | None = None) -> str:
        """Argument ``index`` as text; ``default`` when absent (``ParamError`` without one)."""
        if index < len(self.args):
            return self.args[index]
        if default is None:
            raise ParamError(f"argument {index} missing")
        return default

    def int_arg(self, index: int, low: int, high: int, default: int | None = None) -> int:
        """Argument ``index`` as an integer within ``low..high``."""
        if index >= len(self.args) and default is not None:
            return default
        try:
            value = int(self.arg(index))
        except ValueError as err:
            raise ParamError(f"argument {index} is not an integer") from err
        if not low <= value <= high:
            raise ParamError(f"argument {index} out of range")
        return value


def split_args(text: str) -> tuple[str, ...]:
    """Split ``text`` on commas outside double quotes and strip the quotes."""
    if not text.strip():
        return ()
    args: list[str] = []
    chars: list[tuple[str, bool]] = []  # (character, inside quotes)
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            args.append(_join(chars))
            chars = []
        else:
            chars.append((char, quoted))
    args.append(_join(chars))
    return tuple(args)


def _join(chars: list[tuple[str, bool]]) -> str:
    start, end = 0, len(chars)
    while start < end and not chars[start][1] and chars[start][0].isspace():
        start += 1
    while end > start and not chars[end - 1][1] and chars[end - 1][0].isspace():
        end -= 1
    return "".join(char for char, _ in chars[start:end])


def is_at(line: str) -> bool:
    """Whether ``line`` is addressed to the module at all (modules ignore other text)."""
    return line[:2].upper() == "AT"


def parse_command(line: str) -> Command | None:
    """Parse one AT command line; ``None`` when it is malformed (the module answers ``ERROR``)."""
    text = line.strip()
    if not is_at(text):
        return None
    body = text[2:]
    if not body:
        return Command(text, "", Kind.EXEC)
    if match := _EXTENDED.fullmatch(body):
        name, rest = match[1].upper(), match[2]
        if rest in ("", "?", "=?"):
            return Command(text, name, Kind(rest))
        if rest.startswith("="):
            return Command(text, name, Kind.SET, split_args(rest[1:]))
        return None
    if match := _BASIC.fullmatch(body):
        return Command(text, match[1].upper(), Kind.EXEC, (match[2],) if match[2] else ())
    return None

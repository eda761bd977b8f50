"""The AT channel: one command in flight, URCs recognised at any moment.

Modelled on Zephyr's ``modem_chat`` and ModemManager: every received line is matched, in
order, against one-shot waiters, the in-flight command's own response prefix, the URC table,
the power-on lines and the final result codes. Whatever is left while a command runs is part
of its answer; whatever is left while idle is logged and dropped. A URC therefore never ends a
command, and a command's ``OK`` is never taken from between a URC's lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
import logging
import re

from .errors import (
    AtCommandError,
    AtError,
    AtTimeout,
    CmeError,
    CmsError,
    ModuleRestarted,
    NoResult,
    PortError,
)

_LOGGER = logging.getLogger(__name__)

_TERMINATORS = b"\r\n"
# Lines a module prints when it boots: each means every session state is gone.
DEFAULT_RESTART_LINES = frozenset({"RDY", "APP RDY", "ready"})
# "+CMD ERROR" is ME3630's manual spelling of "+CME ERROR"; read both.
_ERROR_RE = re.compile(r"^\+(CME|CMS|CMD) ERROR:\s*(.*)$")
_MASK = "******"


@dataclass(frozen=True)
class UrcSpec:
    """An unsolicited result code: lines starting with ``prefix`` go to ``handler``.

    ``frame`` is for URCs that carry a length-counted payload which may contain line breaks:
    given the receive buffer starting at the URC, it returns the URC's total length in bytes
    once the header says it, ``None`` while more bytes are needed, or ``-1`` when the header
    does not parse (the line is then framed as a plain line).
    """

    prefix: str
    handler: Callable[[str], None]
    frame: Callable[[bytes], int | None] | None = None


@dataclass
class _Command:
    text: str
    ok: tuple[str, ...]
    errors: tuple[str, ...]
    response_prefix: str | None
    prompt: str | None
    payload: bytes | None
    future: asyncio.Future[list[str]]
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ResultLine:
    """A result line a waiter caught: the prefix it waited for, the line, and what follows."""

    prefix: str
    line: str
    rest: str


class UrcWaiter:
    """A one-shot wait for a line starting with ``prefix`` (registered before the command).

    Modules differ on the space after a result code's colon (``+QMTPUBEX:0,5,0`` or
    ``+QMTPUBEX: 0,5,0``): the prefix matches either way.
    """

    def __init__(self, channel: AtChannel, prefix: str) -> None:
        self.prefix = prefix
        self._pattern = _prefix_pattern(prefix)
        self._channel = channel
        self.future: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def after(self, line: str) -> str | None:
        """What follows the prefix in ``line``; ``None`` when ``line`` does not start with it."""
        match = self._pattern.match(line)
        return None if match is None else line[match.end() :]

    async def wait(self, timeout: float) -> str:
        """The matching line; ``AtTimeout`` when it does not come in time."""
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self.future)
        except TimeoutError:
            raise AtTimeout(f"no {self.prefix!r} within {timeout:g} s") from None
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop waiting (idempotent)."""
        self._channel._waiters.discard(self)
        if not self.future.done():
            self.future.cancel()
        elif not self.future.cancelled():
            self.future.exception()  # mark a port loss as seen: nobody waits for it any more


def _prefix_pattern(prefix: str) -> re.Pattern[str]:
    """``prefix`` with the space after its first colon made optional (and allowed)."""
    head, colon, tail = prefix.partition(":")
    if not colon:
        return re.compile(re.escape(prefix))
    return re.compile(f"{re.escape(head)}: ?{re.escape(tail.removeprefix(' '))}")


class AtChannel(asyncio.Protocol):
    """An AT command channel on top of an asyncio byte transport (serial port or socket)."""

    def __init__(
        self,
        *,
        max_line: int = 16384,
        restart_lines: Iterable[str] = DEFAULT_RESTART_LINES,
    ) -> None:
        self.max_line = max_line
        self.restart_lines = frozenset(restart_lines)
        self.on_restart: Callable[[str], None] | None = None
        self.on_lost: Callable[[Exception | None], None] | None = None
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._discarding = False
        self._urcs: dict[str, UrcSpec] = {}
        self._waiters: set[UrcWaiter] = set()
        self._secrets: set[str] = set()
        self._current: _Command | None = None
        self._lock = asyncio.Lock()
        loop = asyncio.get_running_loop()
        self._opened: asyncio.Future[None] = loop.create_future()
        self._closed: asyncio.Future[None] = loop.create_future()

    # --- configuration -------------------------------------------------------------------

    def add_urc(self, spec: UrcSpec) -> None:
        """Route lines starting with ``spec.prefix`` to its handler, from now on."""
        self._urcs[spec.prefix] = spec

    def add_secret(self, secret: str) -> None:
        """Mask ``secret`` in every log line of this channel (commands, payloads, answers)."""
        if secret:
            self._secrets.add(secret)

    def mask(self, text: str) -> str:
        """``text`` with every registered secret replaced."""
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        return text

    @property
    def is_open(self) -> bool:
        """Whether the transport is still there."""
        return self._transport is not None and not self._closed.done()

    def expect(self, prefix: str) -> UrcWaiter:
        """Start waiting for a line starting with ``prefix``; call before the command."""
        waiter = UrcWaiter(self, prefix)
        self._waiters.add(waiter)
        return waiter

    async def wait_first(
        self, waiters: Sequence[UrcWaiter], timeout: float, *, command: str = ""
    ) -> ResultLine:
        """The line of whichever of ``waiters`` is answered first (the first given, should
        several be); ``NoResult`` (naming ``command``) if none is within ``timeout``.
        Every waiter is cancelled before this returns."""
        try:
            done, _ = await asyncio.wait(
                [waiter.future for waiter in waiters],
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        for waiter in waiters:
            if waiter.future in done:
                line = waiter.future.result()  # PortError when the port went away meanwhile
                rest = waiter.after(line)
                assert rest is not None  # the channel only hands a waiter a matching line
                return ResultLine(waiter.prefix, line, rest)
        wanted = " or ".join(repr(waiter.prefix) for waiter in waiters)
        where = f"{self.mask(command)}: " if command else ""
        raise NoResult(f"{where}no {wanted} within {timeout:g} s")

    # --- commands -------------------------------------------------------------------------

    async def command(
        self,
        text: str,
        *,
        timeout: float = 5.0,
        ok: tuple[str, ...] = ("OK",),
        errors: tuple[str, ...] = (),
        response_prefix: str | None = None,
        prompt: str | None = None,
        payload: bytes | None = None,
    ) -> list[str]:
        """Send ``text`` and return its response lines once a final ``ok`` line arrives.

        ``errors`` are extra vendor failure lines besides ``ERROR`` and ``+CME/CMS ERROR``.
        With ``prompt`` (``>`` or ``DOWNLOAD``), ``payload`` is written when the prompt comes
        and the final result is awaited after it. Lines starting with ``response_prefix`` are
        always taken as this command's answer, even when a URC shares that prefix.
        """
        if "\r" in text or "\n" in text:
            raise ValueError("an AT command line cannot contain CR or LF")
        async with self._lock:
            if not self.is_open or self._transport is None:
                raise PortError("the port is closed")
            loop = asyncio.get_running_loop()
            cmd = _Command(text, ok, errors, response_prefix, prompt, payload, loop.create_future())
            self._current = cmd
            _LOGGER.debug("TX %s", self.mask(text))
            self._transport.write(text.encode() + b"\r")
            try:
                async with asyncio.timeout(timeout):
                    return await cmd.future
            except TimeoutError:
                raise AtTimeout(f"{self.mask(text)}: no answer within {timeout:g} s") from None
            finally:
                if self._current is cmd:
                    self._current = None

    async def request(
        self,
        text: str,
        *,
        results: Sequence[str],
        result_timeout: float,
        timeout: float = 5.0,
        prompt: str | None = None,
        payload: bytes | None = None,
    ) -> ResultLine:
        """Send ``text``; once it succeeded, the first line starting with one of ``results``.

        For commands that answer ``OK`` and report their outcome in a result line later (some
        firmware prints it before the ``OK``: it is caught either way). The command's own
        failures are raised as by ``command``; a result that does not come within
        ``result_timeout`` seconds after the ``OK`` is ``NoResult``.
        """
        waiters = [self.expect(prefix) for prefix in results]
        try:
            await self.command(text, timeout=timeout, prompt=prompt, payload=payload)
        except BaseException:
            for waiter in waiters:
                waiter.cancel()
            raise
        return await self.wait_first(waiters, result_timeout, command=text)

    async def wait_opened(self) -> None:
        """Until the transport handed itself over (transports do that a loop turn late)."""
        await asyncio.shield(self._opened)

    def close(self) -> None:
        """Close the transport; pending work fails with ``PortError``."""
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        """Until the transport reported its loss."""
        await asyncio.shield(self._closed)

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._opened.done():
            self._opened.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)
        error = PortError(f"the port was lost: {exc}" if exc else "the port was closed")
        self._fail_current(error)
        self._fail_waiters(error)
        if self.on_lost is not None:
            self.on_lost(exc)

    def _fail_waiters(self, error: AtError) -> None:
        for waiter in list(self._waiters):
            if not waiter.future.done():
                waiter.future.set_exception(error)
            self._waiters.discard(waiter)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._take_one():
            pass

    # --- framing --------------------------------------------------------------------------

    def _take_one(self) -> bool:
        """Cut one unit (prompt, framed URC or line) off the buffer; False when none is whole."""
        buf = self._buffer
        if self._discarding:
            end = _find_terminator(buf)
            if end < 0:
                buf.clear()
                return False
            del buf[:end]
            self._discarding = False
        # Skip line terminators and the NUL noise some modules send at power-on.
        start = 0
        while start < len(buf) and buf[start] in b"\r\n\x00":
            start += 1
        if start:
            del buf[:start]
        if not buf:
            return False
        if self._take_prompt():
            return True
        framed = self._take_framed()
        if framed is not None:
            return framed
        end = _find_terminator(buf)
        if end < 0:
            if len(buf) > self.max_line:
                _LOGGER.warning("dropped a line longer than %d bytes", self.max_line)
                buf.clear()
                self._discarding = True
            return False
        raw = bytes(buf[:end])
        del buf[:end]
        if end > self.max_line:
            _LOGGER.warning("dropped a line longer than %d bytes", self.max_line)
            return True
        self._on_line(_decode(raw))
        return True

    def _take_prompt(self) -> bool:
        cmd = self._current
        if cmd is None or cmd.prompt is None or cmd.payload is None:
            return False
        token = cmd.prompt.encode()
        if not self._buffer.startswith(token):
            return False
        del self._buffer[: len(token)]
        if self._buffer[:1] == b" ":
            del self._buffer[:1]
        payload, cmd.payload = cmd.payload, None
        _LOGGER.debug("TX %d bytes: %s", len(payload), self.mask(_decode(payload)))
        assert self._transport is not None
        self._transport.write(payload)
        return True

    def _take_framed(self) -> bool | None:
        """A length-framed URC: True when one was cut, False when it needs more bytes,
        None when the buffer does not start with one (frame it as a plain line)."""
        for spec in self._urcs.values():
            if spec.frame is None or not self._buffer.startswith(spec.prefix.encode()):
                continue
            size = spec.frame(bytes(self._buffer))
            if size is not None and size < 0:
                return None
            if size is None or size > len(self._buffer):
                if len(self._buffer) > self.max_line:
                    return None  # never completed: let the line bound deal with it
                return False
            raw = bytes(self._buffer[:size])
            del self._buffer[:size]
            self._dispatch_urc(spec, _decode(raw))
            return True
        return None

    # --- classification ---------------------------------------------------------------------

    def _on_line(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        _LOGGER.debug("RX %s", self.mask(line))
        cmd = self._current
        if cmd is not None and line == cmd.text:
            return  # echo
        for waiter in list(self._waiters):
            if not waiter.future.done() and waiter.after(line) is not None:
                self._waiters.discard(waiter)
                waiter.future.set_result(line)
                return
        if cmd is not None and cmd.response_prefix and line.startswith(cmd.response_prefix):
            cmd.lines.append(line)
            return
        for prefix, spec in self._urcs.items():
            if line.startswith(prefix):
                self._dispatch_urc(spec, line)
                return
        if line in self.restart_lines:
            restarted = ModuleRestarted(f"the module restarted ({line})")
            self._fail_current(restarted)
            # A result still awaited (a publish's) will never come: fail it now, not after
            # its timeout, so whoever waits can go on.
            self._fail_waiters(restarted)
            if self.on_restart is not None:
                self.on_restart(line)
            return
        if cmd is None:
            _LOGGER.debug("ignored unsolicited line %r", self.mask(line)[:200])
            return
        self._on_command_line(cmd, line)

    def _on_command_line(self, cmd: _Command, line: str) -> None:
        if cmd.payload is not None and (line == "OK" or line in cmd.ok):
            return  # W800 says OK before its ">" prompt: the real final comes after the data
        if line in cmd.ok:
            self._finish(cmd, cmd.lines)
        elif line == "ERROR" or line in cmd.errors:
            self._finish(cmd, AtCommandError(self.mask(cmd.text), line, line))
        elif match := _ERROR_RE.match(line):
            family, detail = match.groups()
            code = int(detail) if detail.isdigit() else None
            err_type = CmsError if family == "CMS" else CmeError
            kind = "CMS" if family == "CMS" else "CME"
            self._finish(cmd, err_type(self.mask(cmd.text), line, kind, code))
        else:
            cmd.lines.append(line)

    def _finish(self, cmd: _Command, result: list[str] | Exception) -> None:
        # Lines after the final result (in the same read) are no longer this command's.
        if self._current is cmd:
            self._current = None
        if cmd.future.done():
            return
        if isinstance(result, Exception):
            cmd.future.set_exception(result)
        else:
            cmd.future.set_result(result)

    def _fail_current(self, error: Exception) -> None:
        if self._current is not None:
            self._finish(self._current, error)

    def _dispatch_urc(self, spec: UrcSpec, text: str) -> None:
        try:
            spec.handler(text)
        except Exception:  # a handler's bug must not stop the channel
            _LOGGER.exception("URC handler for %s failed", spec.prefix)
        # Logged after the handler, which may have registered a secret the URC carries.
        _LOGGER.debug("URC %s", self.mask(text)[:500])


def _find_terminator(buf: bytearray) -> int:
    cr = buf.find(b"\r")
    lf = buf.find(b"\n")
    if cr < 0:
        return lf
    if lf < 0:
        return cr
    return min(cr, lf)


def _decode(raw: bytes) -> str:
    return raw.replace(b"\x00", b"").decode("utf-8", errors="replace")


def parse_fields(text: str) -> list[str]:
    """Split an AT parameter list on commas outside double quotes; strip the quotes."""
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    fields.append("".join(current).strip())
    return fields

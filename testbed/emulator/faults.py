"""Fault knobs that shape how the module answers: set by tests, read by the emulator."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _FailRule:
    prefix: str | None
    reply: str
    count: int


class FaultKnobs:
    """State knobs of a module: SIM, registration, a hung command interpreter, forced failures.

    ``silent``: commands are swallowed, nothing is echoed or answered.
    ``sim_ready``: ``False`` makes ``AT+CPIN?`` fail with ``+CME ERROR: 10`` (SIM not inserted).
    ``registered``: ``False`` keeps the module searching for a network.
    """

    def __init__(self) -> None:
        self.silent = False
        self.sim_ready = True
        self.registered = True
        self._fail_rules: list[_FailRule] = []
        self._inside: list[str] = []

    def fail_next(self, prefix: str | None, reply: str = "ERROR", count: int = 1) -> None:
        """Answer the next ``count`` commands starting with ``prefix`` (any when ``None``;
        case-insensitive) with the final line ``reply`` instead of handling them."""
        self._fail_rules.append(_FailRule(prefix.upper() if prefix else None, reply, count))

    def urc_inside_next(self, line: str) -> None:
        """Emit ``line`` inside the next command's response: after its lines, before its final."""
        self._inside.append(line)

    def _take_failure(self, line: str) -> str | None:
        upper = line.upper()
        for rule in self._fail_rules:
            if rule.prefix is None or upper.startswith(rule.prefix):
                rule.count -= 1
                if rule.count <= 0:
                    self._fail_rules.remove(rule)
                return rule.reply
        return None

    def _take_inside(self) -> list[str]:
        lines, self._inside = self._inside, []
        return lines

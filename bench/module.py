"""The emulated module, noting what crosses its line and when: the report's floors and its
split between our code and the rest come from here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import time
from typing import override

from testbed.emulator import ModuleEmulator

from .timeline import Timeline

_FRAME = 4  # the "\r\n" before and after a line the module writes


@dataclass(frozen=True)
class DataBlock:
    """A raw data block the host sent after a prompt: a publish, in most dialects."""

    command: str  # the command line the prompt answered
    prompt: bytes
    payload: bytes
    command_in: float  # when the command's last byte reached the module
    prompted: float  # when the module wrote the prompt

    @property
    def wire_bytes(self) -> int:
        """The bytes on the line from the command's first to the payload's last:
        the command and its CR, the prompt, the payload."""
        return len(self.command) + 1 + len(self.prompt) + len(self.payload)


@dataclass(frozen=True)
class Split:
    """A publish: the bytes that crossed the line before the module could send it, and the
    time the module took (its turnaround at a prompt, its publish to the cloud)."""

    wire_bytes: int
    module_time: float


class TimedEmulator(ModuleEmulator):
    """``ModuleEmulator`` recording the lines it writes (``urcs``, framing left out), the
    data blocks it reads (``blocks``), when the host's bytes arrive (``inputs``) and a count
    of the bytes each way."""

    def __init__(
        self,
        personality: str,
        *,
        link: Path,
        mqtt_port: int,
        http_port: int | None,
        baudrate: int | None,
    ) -> None:
        super().__init__(
            personality, link=link, mqtt_port=mqtt_port, http_port=http_port, baudrate=baudrate
        )
        self.urcs: Timeline[bytes] = Timeline()
        self.blocks: Timeline[DataBlock] = Timeline()
        self.inputs: Timeline[int] = Timeline()  # sizes of the host's bytes as they arrive
        self._out = 0
        self._data_in = 0
        self._prompt = b""
        self._prompted = 0.0
        self._command_in = 0.0

    def wire_bytes(self) -> int:
        """Bytes both ways so far, as counted at the module (its own echo aside; a response
        line is counted with its full framing, up to 2 bytes more than sent)."""
        lines_in = sum(len(line) + 1 for line in self.received)
        return self._out + self._data_in + lines_in

    def publish_split(self, blocks: int, lines: int, marker: str, arrived: float) -> Split:
        """The wire bytes under the host's publish carrying ``marker`` and the time the module
        took (not the host), for a publish that reached the cloud at ``arrived``; ``blocks``
        and ``lines`` are marks of ``blocks`` and ``received`` taken before it."""
        found = (
            b for b in reversed(self.blocks.since(blocks)) if marker.encode() in b.item.payload
        )
        block = next(found, None)
        if block is not None:
            data = block.item
            return Split(data.wire_bytes, (data.prompted - data.command_in) + (arrived - block.t))
        # The payload in the command line (ML302): the module publishes once it has the line.
        command = next(line for line in reversed(self.received[lines:]) if marker in line)
        last_in = next(e.t for e in reversed(self.inputs.entries) if e.t <= arrived)
        return Split(len(command) + 1, arrived - last_in)

    @override
    def urc(self, text: str | bytes) -> None:
        data = _as_bytes(text)
        self.urcs.add(data)
        self._out += len(data) + _FRAME
        super().urc(text)

    @override
    def respond(self, text: str | bytes) -> None:
        self._out += len(_as_bytes(text)) + _FRAME
        super().respond(text)

    @override
    def urc_after(self, text: str | bytes) -> None:
        self._out += len(_as_bytes(text)) + _FRAME
        super().urc_after(text)

    @override
    def inject(self, data: bytes) -> None:
        self._prompt = data
        self._prompted = time.monotonic()
        self._command_in = self.inputs.entries[-1].t if self.inputs.entries else 0.0
        self._out += len(data)
        super().inject(data)

    @override
    async def read_data(self, count: int, timeout: float) -> bytes | None:
        command = self.received[-1] if self.received else ""
        prompt, prompted, command_in = self._prompt, self._prompted, self._command_in
        data = await super().read_data(count, timeout)
        if data is not None:
            self._data_in += len(data)
            self.blocks.add(DataBlock(command, prompt, data, command_in, prompted))
        return data

    @override
    def _received_bytes(self, data: bytes) -> None:
        # The framework's input hook (called when paced bytes arrive): when the host's
        # bytes reach the module, to tell the module's own turnaround from the host's.
        self.inputs.add(len(data))
        super()._received_bytes(data)


def _as_bytes(text: str | bytes) -> bytes:
    return text.encode() if isinstance(text, str) else text

"""The module's receive buffer: command lines ended by CR, or a counted block of raw data."""

from __future__ import annotations

import asyncio


class InputBuffer:
    """Bytes from the host, taken either as a line (up to ``\\r``) or as exactly ``n`` bytes.

    A ``\\n`` right after a line's ``\\r`` belongs to that line (hosts may send ``\\r\\n``);
    it is dropped whether it came in the same chunk or the next one.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip_lf = False
        self._grown = asyncio.Event()

    def feed(self, data: bytes) -> None:
        """Append bytes received from the host."""
        if self._skip_lf and data:
            self._skip_lf = False
            if data.startswith(b"\n"):
                data = data[1:]
        self._buf += data
        self._grown.set()

    def clear(self) -> None:
        """Forget everything received (reboot, replug, a data block that timed out)."""
        self._buf.clear()
        self._skip_lf = False

    async def readline(self) -> bytes:
        """The next line, without its ``\\r``."""
        while (end := self._buf.find(b"\r")) < 0:
            await self._wait()
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        if self._buf.startswith(b"\n"):
            del self._buf[:1]
        else:
            self._skip_lf = not self._buf
        return line

    async def read_exactly(self, count: int, timeout: float) -> bytes | None:
        """Exactly ``count`` bytes; ``None`` after ``timeout`` (the partial block is dropped)."""
        # The block starts after the prompt: a pending "\n" skip would eat its first byte.
        self._skip_lf = False
        try:
            async with asyncio.timeout(timeout):
                while len(self._buf) < count:
                    await self._wait()
        except TimeoutError:
            self.clear()
            return None
        data = bytes(self._buf[:count])
        del self._buf[:count]
        return data

    async def _wait(self) -> None:
        self._grown.clear()
        await self._grown.wait()

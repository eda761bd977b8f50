"""The host's end of an emulated module, for tests: the link opened like a serial port,
read on the event loop (no threads)."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
import re
import tty
from types import TracebackType
from typing import Self

_FINAL = re.compile(rb"\r\n(OK|ERROR|\+CME ERROR: \d+|\+CMS ERROR: \d+)\r\n")


class HostPort:
    """Open ``path`` (raw, non-blocking), send bytes, wait for what comes back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._buf = bytearray()
        self._error: OSError | None = None
        self._grown = asyncio.Event()

    def open(self) -> Self:
        """Open the port; returns ``self`` for ``with``."""
        self._fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self._fd)
        self._buf.clear()
        self._error = None
        asyncio.get_running_loop().add_reader(self._fd, self._readable)
        return self

    def close(self) -> None:
        """Close the port."""
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, data: bytes | str) -> None:
        """Write ``data`` as is (nothing appended)."""
        if self._fd is None:
            raise OSError("port not open")
        os.write(self._fd, data.encode() if isinstance(data, str) else data)

    async def read_until(self, marker: bytes | re.Pattern[bytes], timeout: float = 2.0) -> bytes:
        """Everything received up to and including ``marker`` (consumed from the buffer).
        Raises ``TimeoutError``, or the ``OSError`` the port failed with."""
        async with asyncio.timeout(timeout):
            while True:
                end = self._find(marker)
                if end is not None:
                    data = bytes(self._buf[:end])
                    del self._buf[:end]
                    return data
                if self._error is not None:
                    raise self._error
                self._grown.clear()
                await self._grown.wait()

    async def command(self, line: str, timeout: float = 2.0) -> bytes:
        """Send ``line`` + CR; what came back up to and including the final result code."""
        self.send(line + "\r")
        return await self.read_until(_FINAL, timeout)

    def pending(self) -> bytes:
        """What was received and not yet consumed."""
        return bytes(self._buf)

    def _find(self, marker: bytes | re.Pattern[bytes]) -> int | None:
        if isinstance(marker, bytes):
            index = self._buf.find(marker)
            return None if index < 0 else index + len(marker)
        match = marker.search(self._buf)
        return None if match is None else match.end()

    def _readable(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as err:  # the module's end is gone: EIO on Linux
            self._error = err
            data = b""
        else:
            if not data:  # ... or end of file on some kernels
                self._error = OSError(errno.EIO, "the module's end of the pty is closed")
        if self._error is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
        self._buf += data
        self._grown.set()

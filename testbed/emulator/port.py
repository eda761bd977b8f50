"""The module's serial port: a pseudo-terminal whose slave the host opens through a stable symlink.

The emulator keeps both ends open, so a host closing (or never opening) the port doesn't end
the emulator's side. I/O runs on the event loop (``add_reader``/``add_writer``), no threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import os
from pathlib import Path
import tty

_BITS_PER_BYTE = 10  # start bit, 8 data bits, stop bit


class PtyPort:
    """A pty that the host reaches at ``link``; ``close``/``open`` model an unplug and a replug."""

    def __init__(
        self, link: Path, on_data: Callable[[bytes], None], baudrate: int | None = None
    ) -> None:
        self.link = link
        self._on_data = on_data
        self._baudrate = baudrate
        self._fds: tuple[int, int] | None = None  # (master, slave)
        self._out = bytearray()  # bytes the OS would not take yet
        self._paced = bytearray()  # bytes waiting for their time on the wire
        self._pacer: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        """Whether the pty exists (between ``open`` and ``close``)."""
        return self._fds is not None

    def open(self) -> None:
        """Create a new pty and point ``link`` at its slave (atomically replacing an old link)."""
        if self._fds is not None:
            return
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        temp = self.link.with_name(f".{self.link.name}.new")
        temp.unlink(missing_ok=True)
        temp.symlink_to(os.ttyname(slave))
        temp.replace(self.link)
        self._fds = (master, slave)
        asyncio.get_running_loop().add_reader(master, self._readable)

    def close(self) -> None:
        """Close both ends (the host's reads fail) and remove ``link``; pending output is lost."""
        if self._fds is None:
            return
        master, slave = self._fds
        self._fds = None
        loop = asyncio.get_running_loop()
        loop.remove_reader(master)
        loop.remove_writer(master)
        if self._pacer is not None:
            self._pacer.cancel()
            self._pacer = None
        self._out.clear()
        self._paced.clear()
        os.close(master)
        os.close(slave)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()

    def write(self, data: bytes) -> None:
        """Send ``data`` to the host, paced at the baud rate if one is set; dropped when closed."""
        if self._fds is None or not data:
            return
        if self._baudrate is None:
            self._out += data
            self._flush()
            return
        self._paced += data
        if self._pacer is None:
            self._pacer = asyncio.create_task(self._pace(self._baudrate))

    def _readable(self) -> None:
        if self._fds is None:
            return
        try:
            data = os.read(self._fds[0], 4096)
        except (BlockingIOError, InterruptedError):
            return
        if data:
            self._on_data(data)

    def _flush(self) -> None:
        if self._fds is None:
            return
        master = self._fds[0]
        try:
            written = os.write(master, self._out)
        except (BlockingIOError, InterruptedError):
            written = 0
        del self._out[:written]
        loop = asyncio.get_running_loop()
        if self._out:
            loop.add_writer(master, self._flush)  # the host isn't reading: wait for room
        else:
            loop.remove_writer(master)

    async def _pace(self, baudrate: int) -> None:
        # About 10 ms worth of bytes per step; each step is delivered when it would have
        # finished arriving on a real wire.
        chunk = max(1, baudrate // 1000)
        loop = asyncio.get_running_loop()
        due = loop.time()
        try:
            while self._paced:
                piece = bytes(self._paced[:chunk])
                del self._paced[:chunk]
                due = max(due, loop.time()) + len(piece) * _BITS_PER_BYTE / baudrate
                await asyncio.sleep(due - loop.time())
                self._out += piece
                self._flush()
        finally:
            if self._pacer is asyncio.current_task():
                self._pacer = None

"""The module's serial port: a pseudo-terminal whose slave the host opens through a stable symlink.

The emulator keeps both ends open, so a host closing (or never opening) the port doesn't end
the emulator's side. I/O runs on the event loop (``add_reader``/``add_writer``), no threads.
With a baud rate, both directions cost wire time: what the module writes reaches the host,
and what the host writes reaches the module, only when it would have crossed a real line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import os
from pathlib import Path
import tty

from .pacer import Pacer


class PtyPort:
    """A pty that the host reaches at ``link``; ``close``/``open`` model an unplug and a replug."""

    def __init__(
        self, link: Path, on_data: Callable[[bytes], None], baudrate: int | None = None
    ) -> None:
        self.link = link
        self._on_data = on_data
        self._fds: tuple[int, int] | None = None  # (master, slave)
        self._out = bytearray()  # bytes the OS would not take yet
        # Bytes on the wire: to the host (tx) and from it (rx).
        self._tx = Pacer(baudrate, self._send) if baudrate else None
        self._rx = Pacer(baudrate, on_data) if baudrate else None

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
        for pacer in (self._tx, self._rx):
            if pacer is not None:
                pacer.clear()
        self._out.clear()
        os.close(master)
        os.close(slave)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()

    def write(self, data: bytes) -> None:
        """Send ``data`` to the host, paced at the baud rate if one is set; dropped when closed."""
        if self._fds is None or not data:
            return
        if self._tx is None:
            self._send(data)
        else:
            self._tx.feed(data)

    def _readable(self) -> None:
        if self._fds is None:
            return
        try:
            data = os.read(self._fds[0], 4096)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            return
        if self._rx is None:
            self._on_data(data)
        else:
            self._rx.feed(data)

    def _send(self, data: bytes) -> None:
        self._out += data
        self._flush()

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

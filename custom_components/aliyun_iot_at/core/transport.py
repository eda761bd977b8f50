"""Opening the port: a device path, ``/dev/serial/by-id/…``, ``socket://`` or ``rfc2217://``.

``pyserial-asyncio-fast`` opens the port in the executor and reads it from the event loop,
so nothing here blocks the loop (Home Assistant core refuses ``pyserial-asyncio`` for that).
``rfc2217://`` goes to our own asyncio client instead: pyserial's runs a reader thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import serial
import serial_asyncio_fast

from .channel import DEFAULT_RESTART_LINES, AtChannel
from .errors import PortError
from .rfc2217 import SCHEME as RFC2217_SCHEME, create_rfc2217_connection

DEFAULT_BAUDRATE = 115200


async def open_channel(
    url: str,
    baudrate: int = DEFAULT_BAUDRATE,
    *,
    restart_lines: Iterable[str] = DEFAULT_RESTART_LINES,
) -> AtChannel:
    """Open ``url`` and return an AT channel on it; ``PortError`` when it cannot be opened."""
    if not url:
        raise PortError("no port given")
    loop = asyncio.get_running_loop()
    channel = AtChannel(restart_lines=restart_lines)
    if url.lower().startswith(f"{RFC2217_SCHEME}://"):
        await create_rfc2217_connection(lambda: channel, url, baudrate)
        return channel
    try:
        await serial_asyncio_fast.create_serial_connection(
            loop, lambda: channel, url, baudrate=baudrate
        )
    except (serial.SerialException, OSError, ValueError) as err:
        raise PortError(f"cannot open {url}: {err}") from err
    try:
        async with asyncio.timeout(5.0):
            await channel.wait_opened()
    except TimeoutError:
        channel.close()
        raise PortError(f"cannot open {url}: the port did not come up") from None
    return channel

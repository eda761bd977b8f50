"""Identifying an unknown module: who made it, which model and firmware, which dialect."""

from __future__ import annotations

import re

from .channel import AtChannel
from .dialects.base import ModuleInfo
from .errors import AtError, NoAnswer

_IMEI = re.compile(r"^(?:\+CGSN: ?)?\"?(\d{14,17})\"?$")


async def wake(channel: AtChannel, attempts: int = 3) -> None:
    """Get an ``OK`` to a bare ``AT`` (also sets the baud rate of auto-bauding modules)."""
    for _ in range(attempts):
        try:
            await channel.command("AT", timeout=1.0)
        except AtError:
            continue
        return
    raise NoAnswer("nothing answers AT on this port")


async def _ask(channel: AtChannel, command: str) -> str | None:
    """The first meaningful answer line to ``command``, without its echoed prefix."""
    try:
        lines = await channel.command(command, timeout=2.0)
    except AtError:
        return None
    prefix = command[2:].split("=", maxsplit=1)[0] + ":"
    for line in lines:
        text = line.removeprefix(prefix).strip().strip('"')
        if text:
            return text
    return None


async def read_info(channel: AtChannel) -> ModuleInfo:
    """Ask the 3GPP identification commands; each may be missing on a given module."""
    manufacturer = await _ask(channel, "AT+CGMI")
    model = await _ask(channel, "AT+CGMM")
    firmware = await _ask(channel, "AT+CGMR")
    imei_line = await _ask(channel, "AT+CGSN") or ""
    match = _IMEI.match(imei_line)
    if manufacturer is None and model is None:
        # Some firmware only answers ATI: "Quectel / EC600S / Revision: …".
        try:
            lines = await channel.command("ATI", timeout=2.0)
        except AtError:
            lines = []
        manufacturer = lines[0] if lines else None
        model = lines[1] if len(lines) > 1 else None
        firmware = firmware or next(
            (ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Revision:")), None
        )
    if firmware is None:
        # ESP-AT style Wi-Fi modules (W800) report their versions on AT+GMR instead.
        firmware = await _ask(channel, "AT+GMR")
    return ModuleInfo(manufacturer, model, firmware, match.group(1) if match else None)

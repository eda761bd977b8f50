"""The serial ports a module may be on, labelled like Home Assistant's USB helpers.

Ports are listed and resolved in the executor: both touch the filesystem.
"""

from __future__ import annotations

import os

from homeassistant.core import HomeAssistant
from homeassistant.helpers.selector import SelectOptionDict
from serial.tools.list_ports import comports

_BY_ID = "/dev/serial/by-id"


def _label(
    device: str,
    serial_number: str | None,
    manufacturer: str | None,
    description: str | None,
    vid: int | None,
    pid: int | None,
) -> str:
    """``EC200S - /dev/ttyUSB2, s/n: n/a - Quectel - 2C7C:6002``."""
    text = f"{device}, s/n: {serial_number or 'n/a'}"
    if manufacturer:
        text += f" - {manufacturer}"
    if vid is not None and pid is not None:
        text += f" - {vid:04X}:{pid:04X}"
    return f"{description[:26]} - {text}" if description and description != "n/a" else text


def _list_ports() -> list[SelectOptionDict]:
    return [
        SelectOptionDict(
            value=port.device,
            label=_label(
                port.device,
                port.serial_number,
                port.manufacturer,
                port.description,
                port.vid,
                port.pid,
            ),
        )
        for port in comports()
    ]


def _by_id(device: str) -> str:
    """The stable ``/dev/serial/by-id/…`` name of ``device``, or ``device`` itself."""
    if not os.path.isdir(_BY_ID):
        return device
    real = os.path.realpath(device)
    for entry in os.scandir(_BY_ID):
        if entry.is_symlink() and os.path.realpath(entry.path) == real:
            return entry.path
    return device


async def async_list_ports(hass: HomeAssistant) -> list[SelectOptionDict]:
    """The serial ports of this machine, as select options (value: the device path)."""
    return await hass.async_add_executor_job(_list_ports)


async def async_stable_path(hass: HomeAssistant, device: str) -> str:
    """What to store for ``device``: its by-id path when it has one; URLs as typed."""
    if "://" in device:
        return device
    return await hass.async_add_executor_job(_by_id, device)

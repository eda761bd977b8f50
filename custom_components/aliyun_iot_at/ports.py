"""The serial ports a module may be on, labelled like Home Assistant's USB helpers, and
which USB module (and which of its interfaces) a port belongs to.

Ports are listed and resolved in the executor: both touch the filesystem.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
import os

from homeassistant.core import HomeAssistant
from homeassistant.helpers.selector import SelectOptionDict
from homeassistant.helpers.service_info.usb import UsbServiceInfo
from serial.tools.list_ports import comports
from serial.tools.list_ports_common import ListPortInfo

_BY_ID = "/dev/serial/by-id"


@dataclass(frozen=True)
class UsbPort:
    """Where a port sits on USB.

    ``module`` is the same for every port of one module (vid, pid, serial number,
    manufacturer and product, like Home Assistant's USB ids); ``interface`` tells the ports
    of a module apart (``"1.4"``: configuration and interface), when the system says.
    """

    module: str
    interface: str | None = None


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


def _module_id(
    vid: str, pid: str, serial: str | None, manufacturer: str | None, product: str | None
) -> str:
    return f"{vid}:{pid}_{serial}_{manufacturer}_{product}"


def _find(device: str) -> ListPortInfo | None:
    real = os.path.realpath(device)
    return next((p for p in comports() if os.path.realpath(p.device) == real), None)


def usb_port_of(port: ListPortInfo) -> UsbPort | None:
    """The USB place of a listed port; None when it is not on USB."""
    if port.vid is None or port.pid is None:
        return None
    # pyserial's location is "<bus path>:<configuration>.<interface>".
    location = port.location or ""
    interface = location.rpartition(":")[2] if ":" in location else None
    module = _module_id(
        f"{port.vid:04X}", f"{port.pid:04X}", port.serial_number, port.manufacturer, port.product
    )
    return UsbPort(module, interface or None)


def _discovered(info: UsbServiceInfo) -> UsbPort:
    port = _find(info.device)
    listed = usb_port_of(port) if port is not None else None
    # Gone already, or not listed: Home Assistant's ids are all there is.
    return listed or UsbPort(
        _module_id(
            info.vid.upper(),
            info.pid.upper(),
            info.serial_number,
            info.manufacturer,
            info.description,
        )
    )


def _real(device: str) -> str | None:
    """Where a stored port leads now; None when nothing is there (URLs: as typed)."""
    if "://" in device:
        return device
    real = os.path.realpath(device)
    return real if os.path.exists(real) else None


async def async_usb_port(hass: HomeAssistant, device: str) -> UsbPort | None:
    """The USB place of the port ``device``; None for URLs and ports not on USB."""
    if "://" in device:
        return None
    port = await hass.async_add_executor_job(_find, device)
    return usb_port_of(port) if port is not None else None


async def async_discovered_port(hass: HomeAssistant, info: UsbServiceInfo) -> UsbPort:
    """The USB place of a port Home Assistant discovered."""
    return await hass.async_add_executor_job(_discovered, info)


async def async_real_paths(hass: HomeAssistant, devices: Iterable[str]) -> list[str | None]:
    """Where each of ``devices`` leads now (None: nothing there), to compare ports."""
    wanted = list(devices)
    return await hass.async_add_executor_job(lambda: [_real(d) for d in wanted])

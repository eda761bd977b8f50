"""USB discovery: a module plugged in is offered once, and a configured one is followed to the
path it comes back at. The emulated module's pty stands for the USB port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.config_entries import (
    SOURCE_IGNORE,
    SOURCE_USB,
    SOURCE_USER,
    ConfigEntryState,
    ConfigFlowResult,
)
from homeassistant.const import CONF_DEVICE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.usb import UsbServiceInfo
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from serial.tools.list_ports_common import ListPortInfo

from custom_components.aliyun_iot_at import ports
from custom_components.aliyun_iot_at.const import (
    CONF_BAUDRATE,
    CONF_DIALECT,
    CONF_KEEPALIVE,
    CONF_THING_MODEL,
    CONF_USB_INTERFACE,
    CONF_USB_MODULE,
    DOMAIN,
)
from custom_components.aliyun_iot_at.ports import UsbPort, usb_port_of
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

from .conftest import DN, LANDED, PK, entry_data
from .test_config_flow import CREDENTIALS

# Home Assistant's ids of the discovered port, and the module id the integration keeps.
VID, PID, SERIAL, MAKER, PRODUCT = "2C7C", "6002", "0000", "Quectel", "EC200S-CN"
MODULE = f"{VID}:{PID}_{SERIAL}_{MAKER}_{PRODUCT}"


@pytest.fixture
def dialect() -> str:
    """One dialect: discovery does not depend on it."""
    return LANDED[0]


def listed(device: str, location: str | None, vid: int | None = 0x2C7C) -> ListPortInfo:
    """A port as pyserial lists a USB module's port: interface 1.4 of the module."""
    port = ListPortInfo(device, skip_link_detection=True)
    port.vid, port.pid = vid, 0x6002
    port.serial_number, port.manufacturer, port.product = SERIAL, MAKER, PRODUCT
    port.description = PRODUCT  # pyserial adds the interface's name when it has one
    port.location = location
    return port


@pytest.fixture
def on_usb(module: ModuleEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The system lists the emulated module's port as a USB port (interface 1.4)."""
    port = listed(str(module.path), "1-1.2:1.4")
    monkeypatch.setattr(ports, "comports", lambda: [port])


def usb_info(device: Path | str) -> UsbServiceInfo:
    return UsbServiceInfo(
        device=str(device),
        vid=VID,
        pid=PID,
        serial_number=SERIAL,
        manufacturer=MAKER,
        description=PRODUCT,
    )


async def discover(hass: HomeAssistant, device: Path | str) -> ConfigFlowResult:
    return await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USB}, data=usb_info(device)
    )


async def configure(
    hass: HomeAssistant, result: ConfigFlowResult, data: dict[str, Any]
) -> ConfigFlowResult:
    return await hass.config_entries.flow.async_configure(result["flow_id"], data)


def usb_entry(
    device: Path | str, module: ModuleEmulator, dialect: str, **usb: str
) -> MockConfigEntry:
    """An entry of the discovered module, stored at ``device``."""
    data = {**entry_data(module, dialect), CONF_DEVICE: str(device), CONF_USB_MODULE: MODULE}
    return MockConfigEntry(
        domain=DOMAIN,
        title=DN,
        unique_id=f"{PK}.{DN}",
        data=data | usb,
        options={CONF_THING_MODEL: "", CONF_KEEPALIVE: 60},
    )


async def test_a_discovered_module_is_set_up_on_its_port(
    hass: HomeAssistant,
    module: ModuleEmulator,
    dialect: str,
    cloud: AliyunCloud,
    device: Device,
) -> None:
    result = await discover(hass, module.path)
    assert (result["type"], result["step_id"]) == (FlowResultType.FORM, "usb_confirm")
    personality = module.personality
    name = f"{personality.manufacturer} {personality.model}"
    assert (result["description_placeholders"] or {})["name"] == name
    [flow] = hass.config_entries.flow.async_progress()
    assert flow["context"]["title_placeholders"] == {"name": name}

    # Confirmed, the flow goes on as the user's, with the port already known.
    result = await configure(hass, result, {})
    assert result["step_id"] == "dialect"
    result = await configure(hass, result, {CONF_DIALECT: dialect})
    result = await configure(hass, result, CREDENTIALS)
    result = await configure(hass, result, {})

    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.unique_id == f"{PK}.{DN}"  # the device triple names it from now on
    assert entry.data[CONF_DEVICE] == str(module.path)
    assert entry.data[CONF_BAUDRATE] == 115200
    assert entry.data[CONF_USB_MODULE] == MODULE
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await cloud.wait_online(device)


@pytest.mark.usefixtures("on_usb")
async def test_a_usb_port_chosen_by_hand_is_known_by_its_module_and_interface(
    hass: HomeAssistant, module: ModuleEmulator, dialect: str, device: Device
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    schema = result["data_schema"]
    assert schema is not None
    [options] = [v.config["options"] for k, v in schema.schema.items() if k == CONF_DEVICE]
    assert options == [
        {
            "value": str(module.path),
            "label": f"{PRODUCT} - {module.path}, s/n: {SERIAL} - {MAKER} - {VID}:{PID}",
        }
    ]

    result = await configure(hass, result, {CONF_DEVICE: str(module.path), CONF_BAUDRATE: 115200})
    result = await configure(hass, result, {CONF_DIALECT: dialect})
    result = await configure(hass, result, CREDENTIALS)
    result = await configure(hass, result, {})

    # Found at another path later, this entry is the one to move there.
    assert result["data"][CONF_USB_MODULE] == MODULE
    assert result["data"][CONF_USB_INTERFACE] == "1.4"
    await hass.async_block_till_done()


@pytest.mark.usefixtures("on_usb")
async def test_a_discovered_port_is_stored_with_its_interface(
    hass: HomeAssistant, module: ModuleEmulator, dialect: str, device: Device
) -> None:
    result = await configure(hass, await discover(hass, module.path), {})
    [flow] = hass.config_entries.flow.async_progress()
    assert flow["context"]["unique_id"] == MODULE  # one discovery for all its ports

    result = await configure(hass, result, {CONF_DIALECT: dialect})
    result = await configure(hass, result, CREDENTIALS)
    result = await configure(hass, result, {})

    assert (result["data"][CONF_USB_MODULE], result["data"][CONF_USB_INTERFACE]) == (MODULE, "1.4")
    await hass.async_block_till_done()


async def test_a_port_is_set_up_by_its_stable_name(
    hass: HomeAssistant, module: ModuleEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    (by_id / "unrelated").symlink_to(tmp_path)
    stable = by_id / "usb-Quectel_EC200S-CN_0000-if04-port0"
    stable.symlink_to(module.path)
    monkeypatch.setattr(ports, "_BY_ID", str(by_id))

    result = await discover(hass, module.path)

    # /dev/ttyUSB<n> changes from one plugging to the next; this name does not.
    assert (result["description_placeholders"] or {})["device"] == str(stable)


async def test_an_entry_of_another_module_does_not_hide_this_one(
    hass: HomeAssistant, module: ModuleEmulator, dialect: str
) -> None:
    other = {**entry_data(module, dialect), CONF_DEVICE: "socket://127.0.0.1:9"}
    MockConfigEntry(
        domain=DOMAIN, data={**other, CONF_USB_MODULE: "1782:4E00_x_UNISOC_UNISOC-8910"}
    ).add_to_hass(hass)

    result = await discover(hass, module.path)

    assert result["step_id"] == "usb_confirm"


async def test_a_typed_url_is_used_as_typed(hass: HomeAssistant, module: ModuleEmulator) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})

    result = await configure(
        hass, result, {CONF_DEVICE: "socket://127.0.0.1:9", CONF_BAUDRATE: 115200}
    )

    assert result["errors"] == {"base": "cannot_open_port"}


async def test_a_module_is_offered_once(hass: HomeAssistant, module: ModuleEmulator) -> None:
    assert (await discover(hass, module.path))["step_id"] == "usb_confirm"

    again = await discover(hass, module.path)

    assert (again["type"], again["reason"]) == (FlowResultType.ABORT, "already_in_progress")


async def test_a_port_that_does_not_answer_at_is_not_offered(
    hass: HomeAssistant, module: ModuleEmulator
) -> None:
    module.silent = True  # like a module's GNSS or diagnostics port

    result = await discover(hass, module.path)

    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "not_supported_device")


async def test_a_module_no_dialect_knows_is_not_offered(
    hass: HomeAssistant, module: ModuleEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module.personality, "manufacturer", "Acme")
    monkeypatch.setattr(module.personality, "model", "X1")

    result = await discover(hass, module.path)

    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "not_supported_device")


async def test_a_configured_port_is_not_asked_again(
    hass: HomeAssistant, module: ModuleEmulator, dialect: str
) -> None:
    MockConfigEntry(domain=DOMAIN, data=entry_data(module, dialect), unique_id="x.y").add_to_hass(
        hass
    )
    received = len(module.received)

    result = await discover(hass, module.path)

    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "already_configured")
    assert len(module.received) == received  # the entry's port was left alone


async def test_an_ignored_module_is_not_asked_again(
    hass: HomeAssistant, module: ModuleEmulator
) -> None:
    MockConfigEntry(domain=DOMAIN, source=SOURCE_IGNORE, unique_id=MODULE).add_to_hass(hass)
    received = len(module.received)

    result = await discover(hass, module.path)

    assert result["reason"] == "already_configured"
    assert len(module.received) == received


async def test_another_port_of_a_configured_module_is_not_offered(
    hass: HomeAssistant, module: ModuleEmulator, dialect: str, tmp_path: Path
) -> None:
    # The entry's port is there (the module's AT port); this is one of its other ports.
    entry = usb_entry(module.path, module, dialect)
    entry.add_to_hass(hass)
    other = tmp_path / "ttyUSB1"
    other.touch()

    result = await discover(hass, other)

    assert result["reason"] == "already_configured"
    assert entry.data[CONF_DEVICE] == str(module.path)


async def test_a_module_back_at_a_new_path_moves_its_entry_there(
    hass: HomeAssistant,
    module: ModuleEmulator,
    dialect: str,
    cloud: AliyunCloud,
    device: Device,
    tmp_path: Path,
) -> None:
    # Unplugged and plugged in again: the stored path is gone, the module is elsewhere.
    entry = usb_entry(tmp_path / "ttyUSB2", module, dialect)
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY

    result = await discover(hass, module.path)

    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "already_configured")
    assert entry.data[CONF_DEVICE] == str(module.path)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await cloud.wait_online(device)


async def test_another_interface_of_the_module_does_not_move_the_entry(
    hass: HomeAssistant, module: ModuleEmulator, dialect: str, tmp_path: Path
) -> None:
    entry = usb_entry(tmp_path / "ttyUSB2", module, dialect, **{CONF_USB_INTERFACE: "1.4"})
    entry.add_to_hass(hass)

    result = await discover(hass, module.path)  # not known to be interface 1.4

    assert result["reason"] == "already_configured"
    assert entry.data[CONF_DEVICE] == str(tmp_path / "ttyUSB2")


async def test_reconfiguring_to_another_port_forgets_the_old_usb_port(
    hass: HomeAssistant, module: ModuleEmulator, dialect: str, device: Device
) -> None:
    entry = usb_entry(module.path, module, dialect, **{CONF_USB_INTERFACE: "1.4"})
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)

    result = await configure(
        hass,
        result,
        {
            CONF_DEVICE: str(module.path),
            CONF_BAUDRATE: 115200,
            CONF_DIALECT: dialect,
            "region": "cn-shanghai",
        },
    )

    assert result["reason"] == "reconfigure_successful"
    # A pty is not on USB: nothing is kept that would match another module.
    assert CONF_USB_MODULE not in entry.data
    assert CONF_USB_INTERFACE not in entry.data
    await hass.async_block_till_done()


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        (listed("/dev/ttyUSB2", "1-1.4:1.2"), UsbPort(MODULE, "1.2")),
        (listed("/dev/ttyUSB2", "1-1.4"), UsbPort(MODULE)),
        (listed("/dev/ttyUSB2", None), UsbPort(MODULE)),
        (listed("/dev/ttyUSB2", "1-1.4:1.2", vid=None), None),
    ],
    ids=["interface", "no_interface", "no_location", "not_usb"],
)
def test_a_listed_port_is_known_by_its_module_and_interface(
    port: ListPortInfo, expected: UsbPort | None
) -> None:
    assert usb_port_of(port) == expected

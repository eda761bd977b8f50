"""Repair issues follow the link, end to end: the emulated module loses its SIM, its network,
runs old firmware, or the cloud refuses the secret; the issue goes when the link is back."""

from __future__ import annotations

from homeassistant.components.repairs import repairs_flow_manager
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.aliyun_iot_at import settings
from custom_components.aliyun_iot_at.const import DOMAIN
from custom_components.aliyun_iot_at.core.errors import (
    AuthRefused,
    FirmwareTooOld,
    LinkError,
    NoNetwork,
    NotConnected,
    SimNotReady,
)
from custom_components.aliyun_iot_at.repairs import issue_key
from custom_components.aliyun_iot_at.validation import error_key
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

from .conftest import DN, LANDED, PK
from .helpers import until

# Firmware each dialect refuses, how its error names it, and firmware it takes.
OLD_FIRMWARE = {
    "air72x": ("AirM2M_Air724UG_V408_LTE_AT", "V408", "AirM2M_Air724UG_V409_LTE_AT"),
    "me3630": ("AL_ME3630C1CV1.0B00", "AL_ME3630C1CV1.0B00", "AL_ME3630C1CV1.0B01"),
}


@pytest.fixture(autouse=True)
def _short_attach(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing SIM or network is reported after a second, not after a minute."""
    monkeypatch.setattr(settings, "ATTACH_TIMEOUT", 1.0)


@pytest.fixture
def dialect() -> str:
    """One dialect: the SIM and the network are checked alike by all."""
    return LANDED[0]


def issue(hass: HomeAssistant, entry: MockConfigEntry, key: str) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"{entry.entry_id}_{key}")


def our_issues(hass: HomeAssistant) -> list[str]:
    return sorted(i.translation_key or "" for i in ir.async_get(hass).issues.values())


@pytest.mark.parametrize(
    ("knob", "key"), [("sim_ready", "sim_not_ready"), ("registered", "no_network")]
)
async def test_a_module_that_cannot_attach_raises_an_issue_until_it_is_back(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    module: ModuleEmulator,
    cloud: AliyunCloud,
    device: Device,
    knob: str,
    key: str,
) -> None:
    assert our_issues(hass) == []
    setattr(module, knob, False)
    await module.drop_link()

    await until(lambda: issue(hass, loaded_entry, key) is not None)
    raised = issue(hass, loaded_entry, key)
    assert raised is not None
    assert (raised.translation_key, raised.is_fixable) == (key, True)
    assert raised.severity is ir.IssueSeverity.ERROR
    assert (raised.translation_placeholders or {})["title"] == DN
    assert our_issues(hass) == [key]

    setattr(module, knob, True)
    await cloud.wait_online(device)
    await until(lambda: issue(hass, loaded_entry, key) is None)
    assert our_issues(hass) == []


@pytest.mark.parametrize("dialect", [d for d in OLD_FIRMWARE if d in LANDED])
async def test_old_firmware_raises_an_issue_whose_fix_connects_again(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    module: ModuleEmulator,
    cloud: AliyunCloud,
    device: Device,
    dialect: str,
) -> None:
    old, named, good = OLD_FIRMWARE[dialect]
    module.personality.firmware = old
    config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    assert config_entry.state is ConfigEntryState.SETUP_RETRY

    raised = issue(hass, config_entry, "firmware_too_old")
    assert raised is not None
    assert raised.is_fixable
    assert named in (raised.translation_placeholders or {})["error"]

    # Updated, the user confirms the fix: the entry connects at once.
    module.personality.firmware = good
    assert await async_setup_component(hass, "repairs", {})
    manager = repairs_flow_manager(hass)
    assert manager is not None
    flow = await manager.async_init(DOMAIN, data={"issue_id": raised.issue_id})
    assert flow["step_id"] == "confirm"
    assert (flow["description_placeholders"] or {})["title"] == DN
    result = await manager.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY

    await hass.async_block_till_done()
    assert config_entry.state is ConfigEntryState.LOADED
    await cloud.wait_online(device)
    assert our_issues(hass) == []


async def test_refused_credentials_raise_an_issue_beside_the_reauth(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, cloud: AliyunCloud, device: Device
) -> None:
    cloud.add_device(PK, DN, "N3wSecretFromTheConsole")  # reset in the console
    await cloud.kick(device)

    await until(lambda: issue(hass, loaded_entry, "auth_refused") is not None)
    raised = issue(hass, loaded_entry, "auth_refused")
    assert raised is not None
    assert not raised.is_fixable  # the reauthentication flow takes the new secret
    assert any(loaded_entry.async_get_active_flows(hass, {"reauth"}))


async def test_unloading_or_removing_the_entry_removes_its_issues(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, module: ModuleEmulator
) -> None:
    module.sim_ready = False
    await module.drop_link()
    await until(lambda: bool(our_issues(hass)))

    await hass.config_entries.async_unload(loaded_entry.entry_id)
    assert our_issues(hass) == []

    await hass.config_entries.async_setup(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.SETUP_RETRY
    assert our_issues(hass) == ["sim_not_ready"]
    await hass.config_entries.async_remove(loaded_entry.entry_id)
    assert our_issues(hass) == []


@pytest.mark.parametrize(
    ("error", "key"),
    [
        (FirmwareTooOld("x"), "firmware_too_old"),
        (SimNotReady("x"), "sim_not_ready"),
        (NoNetwork("x"), "no_network"),
        (AuthRefused("x"), "auth_refused"),
        (NotConnected("x"), None),
        (LinkError("x"), None),
    ],
)
def test_only_what_the_user_can_fix_is_an_issue(error: LinkError, key: str | None) -> None:
    assert issue_key(error) == key


def test_old_firmware_is_its_own_form_error() -> None:
    assert error_key(FirmwareTooOld("x")) == "firmware_too_old"

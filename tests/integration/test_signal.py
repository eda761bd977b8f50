"""The signal strength sensor: diagnostic, off by default, read only while the link is up."""

from __future__ import annotations

from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_ENTITY_ID,
    ATTR_UNIT_OF_MEASUREMENT,
    SIGNAL_STRENGTH_DECIBELS_MILLIWATT,
    STATE_UNAVAILABLE,
    EntityCategory,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_registry import RegistryEntryDisabler
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.aliyun_iot_at.const import DOMAIN
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

from .conftest import DIALECTS, DN, LANDED, PK
from .helpers import is_available, wait_state

UNIQUE_ID = f"{PK}.{DN}_signal-strength"


@pytest.fixture
def dialect() -> str:
    return LANDED[0]


async def test_the_sensor_is_a_diagnostic_and_off_by_default(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, module: ModuleEmulator
) -> None:
    registry = er.async_get(hass)
    entity_id = registry.async_get_entity_id("sensor", DOMAIN, UNIQUE_ID)
    assert entity_id is not None
    entry = registry.async_get(entity_id)
    assert entry is not None
    assert entry.disabled_by is RegistryEntryDisabler.INTEGRATION
    assert entry.entity_category is EntityCategory.DIAGNOSTIC
    assert hass.states.get(entity_id) is None
    assert "AT+CSQ" not in module.received  # nobody asked for it


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_an_enabled_sensor_reads_the_module(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    device: Device,
    cloud: AliyunCloud,
    dialect: str,
) -> None:
    # AT+CSQ's 24 on a cellular module, the access point's RSSI on the W800.
    dbm = -52 if dialect == "w800" else -65
    registry = er.async_get(hass)
    config_entry.add_to_hass(hass)
    entity_id = registry.async_get_or_create(
        "sensor", DOMAIN, UNIQUE_ID, config_entry=config_entry, suggested_object_id="signal"
    ).entity_id
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()

    state = await wait_state(hass, entity_id, str(dbm))
    assert state.attributes[ATTR_UNIT_OF_MEASUREMENT] == SIGNAL_STRENGTH_DECIBELS_MILLIWATT
    assert state.attributes[ATTR_DEVICE_CLASS] == "signal_strength"


async def test_the_signal_is_read_again_and_kept_while_the_link_is_down(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    device: Device,
    cloud: AliyunCloud,
    module: ModuleEmulator,
) -> None:
    assert await async_setup_component(hass, "homeassistant", {})
    registry = er.async_get(hass)
    config_entry.add_to_hass(hass)
    entity_id = registry.async_get_or_create(
        "sensor", DOMAIN, UNIQUE_ID, config_entry=config_entry, suggested_object_id="signal"
    ).entity_id
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    await wait_state(hass, entity_id, "-65")

    async def refresh() -> None:
        await hass.services.async_call(
            "homeassistant", "update_entity", {ATTR_ENTITY_ID: entity_id}, blocking=True
        )

    module.registered = False  # the radio loses the network: the module does not know
    await refresh()
    await wait_state(hass, entity_id, "unknown")
    module.registered = True
    await refresh()
    await wait_state(hass, entity_id, "-65")

    module.registered = False
    await module.drop_link()
    await wait_state(hass, entity_id, STATE_UNAVAILABLE)
    asked = module.received.count("AT+CSQ")
    await refresh()
    assert module.received.count("AT+CSQ") == asked  # not asked while the link is down
    module.registered = True
    state = await wait_state(hass, entity_id, is_available)
    assert state.state == "-65"  # the last reading, kept

"""End to end, for every dialect: the emulated module, the integration, the cloud."""

from __future__ import annotations

import logging

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    ATTR_ENTITY_ID,
    EVENT_HOMEASSISTANT_STOP,
    SERVICE_TURN_OFF,
    STATE_UNAVAILABLE,
    Platform,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.aliyun_iot_at.const import DOMAIN
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

from .conftest import DN, PK
from .helpers import entity_id, is_available, wait_state


async def test_setup_creates_the_device_and_its_entities(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    device = dr.async_get(hass).async_get_device({(DOMAIN, f"{PK}.{DN}")})
    assert device is not None
    # The device is the module as it identified itself.
    info = loaded_entry.runtime_data.coordinator.link.info
    assert (device.manufacturer, device.model, device.sw_version) == (
        info.manufacturer,
        info.model,
        info.firmware,
    )
    power = hass.states.get(entity_id(hass, "switch", "PowerSwitch"))
    assert power is not None
    assert power.state == "unknown"  # nothing known until the cloud or Home Assistant says
    link = hass.states.get(entity_id(hass, "sensor", "link-state"))
    assert link is not None
    assert link.state == "connected"


async def test_cloud_set_changes_the_entity_and_is_answered(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, cloud: AliyunCloud, device: Device
) -> None:
    power = entity_id(hass, "switch", "PowerSwitch")
    msg_id = await cloud.set_properties(device, {"PowerSwitch": 1})

    reply = await cloud.wait_reply(device, msg_id)
    assert reply["code"] == 200
    await wait_state(hass, power, "on")
    # The device reports its new state back, as a real one does.
    post = await cloud.wait_post(device)
    assert post["params"] == {"PowerSwitch": 1}


async def test_turning_the_switch_off_is_posted(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, cloud: AliyunCloud, device: Device
) -> None:
    power = entity_id(hass, "switch", "PowerSwitch")
    await hass.services.async_call(
        Platform.SWITCH, SERVICE_TURN_OFF, {ATTR_ENTITY_ID: power}, blocking=True
    )

    post = await cloud.wait_post(device)
    assert post["params"] == {"PowerSwitch": 0}
    assert post["method"] == "thing.event.property.post"
    state = hass.states.get(power)
    assert state is not None
    assert state.state == "off"


async def test_a_dropped_link_makes_entities_unavailable_until_it_is_back(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    module: ModuleEmulator,
    cloud: AliyunCloud,
    device: Device,
    caplog: pytest.LogCaptureFixture,
) -> None:
    power = entity_id(hass, "switch", "PowerSwitch")
    await hass.services.async_call(
        Platform.SWITCH, SERVICE_TURN_OFF, {ATTR_ENTITY_ID: power}, blocking=True
    )
    await cloud.wait_post(device)

    await module.drop_link()
    await wait_state(hass, power, STATE_UNAVAILABLE)
    link = hass.states.get(entity_id(hass, "sensor", "link-state"))
    assert link is not None
    assert link.state != "connected"

    state = await wait_state(hass, power, is_available)
    assert state.state == "off"  # the value was kept
    await cloud.wait_online(device)
    # Back online, the device reports its values again.
    post = await cloud.wait_post(device)
    assert post["params"] == {"PowerSwitch": 0}
    # And the cloud reaches it again: the subscriptions were restored.
    msg_id = await cloud.set_properties(device, {"PowerSwitch": 1})
    assert (await cloud.wait_reply(device, msg_id))["code"] == 200
    await wait_state(hass, power, "on")
    # Logged once when it went, once when it came back.
    ours = [
        r
        for r in caplog.records
        if r.name == "custom_components.aliyun_iot_at" and r.levelno >= logging.INFO
    ]
    assert [r.levelname for r in ours] == ["WARNING", "INFO"]
    assert "down" in ours[0].getMessage()
    assert "back" in ours[1].getMessage()


async def test_stopping_home_assistant_closes_the_session(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, cloud: AliyunCloud, device: Device
) -> None:
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    await cloud.wait_offline(device)


async def test_unload_and_reload_leave_nothing_behind(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    module: ModuleEmulator,
    cloud: AliyunCloud,
    device: Device,
) -> None:
    power = entity_id(hass, "switch", "PowerSwitch")
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()

    assert loaded_entry.state is ConfigEntryState.NOT_LOADED
    await cloud.wait_offline(device)
    state = hass.states.get(power)
    assert state is not None
    assert state.state == STATE_UNAVAILABLE

    assert await hass.config_entries.async_setup(loaded_entry.entry_id)
    await hass.async_block_till_done()
    await cloud.wait_online(device)
    await wait_state(hass, power, is_available)
    # One set of entities, not two.
    entities = er.async_entries_for_config_entry(er.async_get(hass), loaded_entry.entry_id)
    unique_ids = sorted(e.unique_id for e in entities)
    assert unique_ids == [
        f"{PK}.{DN}_PowerSwitch",
        f"{PK}.{DN}_link-state",
        f"{PK}.{DN}_signal-strength",
    ]

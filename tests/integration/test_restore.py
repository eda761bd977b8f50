"""Controls keep their values across a restart of Home Assistant, and the cloud gets them."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, mock_restore_cache

from custom_components.aliyun_iot_at.const import DOMAIN
from testbed.cloud import AliyunCloud, Device

from .conftest import DN, LANDED, PK, SMART_LIGHT
from .helpers import state_of


@pytest.fixture
def dialect() -> str:
    """One dialect: restoring does not depend on it."""
    return LANDED[0]


@pytest.fixture
def thing_model() -> str:
    return SMART_LIGHT


async def test_controls_restore_their_values_and_post_them(
    hass: HomeAssistant, config_entry: MockConfigEntry, cloud: AliyunCloud, device: Device
) -> None:
    config_entry.add_to_hass(hass)
    registry = er.async_get(hass)
    restored = {
        ("switch", "PowerSwitch"): "on",
        ("number", "Brightness"): "35.0",
        ("select", "WorkMode"): "阅读",
        ("text", "DeviceAlias"): "Desk",
        ("number", "ColorTemperature"): "unavailable",  # nothing to restore
    }
    states = []
    for (platform, key), state in restored.items():
        entry = registry.async_get_or_create(
            platform,
            DOMAIN,
            f"{PK}.{DN}_{key}",
            suggested_object_id=key.lower(),
            config_entry=config_entry,
        )
        states.append(State(entry.entity_id, state))
    mock_restore_cache(hass, states)

    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    assert config_entry.state is ConfigEntryState.LOADED

    assert state_of(hass, "switch", "PowerSwitch").state == "on"
    assert state_of(hass, "number", "Brightness").state == "35"
    assert state_of(hass, "select", "WorkMode").state == "阅读"
    assert state_of(hass, "text", "DeviceAlias").state == "Desk"
    assert state_of(hass, "number", "ColorTemperature").state == "unknown"
    post = await cloud.wait_post(device)
    assert post["params"] == {
        "PowerSwitch": 1,
        "Brightness": 35,
        "WorkMode": 1,
        "DeviceAlias": "Desk",
    }

"""Fixtures of the Home Assistant tests: a real emulated module on a pty, the real cloud."""

from __future__ import annotations

from collections.abc import AsyncIterator
import importlib.util
from pathlib import Path
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_DEVICE
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components import aliyun_iot_at
from custom_components.aliyun_iot_at.const import (
    CONF_BAUDRATE,
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_DIALECT,
    CONF_KEEPALIVE,
    CONF_PRODUCT_KEY,
    CONF_REGION,
    CONF_THING_MODEL,
    DOMAIN,
)
from custom_components.aliyun_iot_at.core.dialects import DIALECT_NAMES
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

# The sample thing model's product, so it can be used with this device.
PK = "a1FPRUWiCPA"
DN = "ha-lamp-1"
DS = "Hq3YtJ0v9m2LkfP8sWc6RbN4xZ1aDgE7"
SMART_LIGHT = (Path(__file__).parent.parent / "fixtures" / "smart_light.json").read_text("utf-8")


def _landed(name: str) -> bool:
    """Whether the dialect and its emulator personality exist yet."""
    return all(
        importlib.util.find_spec(f"{package}.{name}") is not None
        for package in ("custom_components.aliyun_iot_at.core.dialects", "testbed.emulator")
    )


LANDED = [name for name in DIALECT_NAMES if _landed(name)]
DIALECTS = [
    pytest.param(name, marks=pytest.mark.skipif(not _landed(name), reason=f"{name} not written"))
    for name in DIALECT_NAMES
]


@pytest.fixture(autouse=True)
def _custom_integrations(enable_custom_integrations: None) -> None:
    """Load the integration from custom_components."""


@pytest.fixture(autouse=True)
def _fast_link(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconnect and check the session quickly: the tests wait for both."""
    monkeypatch.setattr(aliyun_iot_at, "LINK_BACKOFF", (0.2,))
    monkeypatch.setattr(aliyun_iot_at, "LINK_HEALTH_INTERVAL", 1.0)


@pytest.fixture
def device(cloud: AliyunCloud) -> Device:
    """The device registered in the cloud."""
    return cloud.add_device(PK, DN, DS)


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    """Each dialect in turn."""
    name: str = request.param
    return name


@pytest.fixture
async def module(tmp_path: Path, cloud: AliyunCloud, dialect: str) -> AsyncIterator[ModuleEmulator]:
    """The emulated module of ``dialect`` on a pty, its MQTT going to the cloud."""
    emulator = ModuleEmulator(
        dialect,
        link=tmp_path / "ttyMODULE",
        mqtt_port=cloud.mqtt_port,
        http_port=cloud.http_port,
    )
    async with emulator:
        yield emulator


def entry_data(module: ModuleEmulator, dialect: str, secret: str = DS) -> dict[str, Any]:
    """Config entry data for the emulated module and the test device."""
    return {
        CONF_DEVICE: str(module.path),
        CONF_BAUDRATE: 115200,
        CONF_DIALECT: dialect,
        CONF_PRODUCT_KEY: PK,
        CONF_DEVICE_NAME: DN,
        CONF_DEVICE_SECRET: secret,
        CONF_REGION: "cn-shanghai",
    }


@pytest.fixture
def thing_model() -> str:
    """The entry's thing model text ("" for the standard switch); override to change."""
    return ""


@pytest.fixture
def config_entry(module: ModuleEmulator, dialect: str, thing_model: str) -> MockConfigEntry:
    """The config entry of the device on the emulated module (not added yet)."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=DN,
        unique_id=f"{PK}.{DN}",
        data=entry_data(module, dialect),
        options={CONF_THING_MODEL: thing_model, CONF_KEEPALIVE: 60},
    )


@pytest.fixture
async def loaded_entry(
    hass: HomeAssistant, config_entry: MockConfigEntry, device: Device, cloud: AliyunCloud
) -> MockConfigEntry:
    """The entry set up and online."""
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    assert config_entry.state is ConfigEntryState.LOADED
    await cloud.wait_online(device)
    return config_entry

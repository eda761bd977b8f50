"""Home Assistant side of the fault tests: the config entry of the faults' device, and what
its entities went through."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from homeassistant.const import CONF_DEVICE, STATE_UNAVAILABLE
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event

from custom_components.aliyun_iot_at.const import (
    CONF_BAUDRATE,
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_DIALECT,
    CONF_PRODUCT_KEY,
    CONF_REGION,
    CONF_TLS,
    DOMAIN,
)
from custom_components.aliyun_iot_at.core.dialects import dialect_class
from testbed.emulator import ModuleEmulator
from tests.e2e.conftest import DN, DS, PK


def entry_data(module: ModuleEmulator, dialect: str) -> dict[str, Any]:
    """The faults' device on ``module``: TLS where the module offers it."""
    return {
        CONF_DEVICE: str(module.path),
        CONF_BAUDRATE: 115200,
        CONF_DIALECT: dialect,
        CONF_PRODUCT_KEY: PK,
        CONF_DEVICE_NAME: DN,
        CONF_DEVICE_SECRET: DS,
        CONF_REGION: "cn-shanghai",
        CONF_TLS: dialect_class(dialect).supports_tls,
    }


def entity_id(hass: HomeAssistant, platform: str, key: str) -> str:
    """The entity of the model's ``key`` on ``platform``."""
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{PK}.{DN}_{key}")
    assert found is not None, f"no {platform} entity for {key}"
    return found


def our_states(hass: HomeAssistant) -> dict[str, State]:
    """Every state of the integration's entities."""
    registry = er.async_get(hass)
    return {
        entry.entity_id: state
        for entry in registry.entities.values()
        if entry.platform == DOMAIN and (state := hass.states.get(entry.entity_id)) is not None
    }


class StateLog:
    """The states one entity goes through, from now on."""

    def __init__(self, hass: HomeAssistant, entity: str) -> None:
        self.states: list[str] = []
        self._changed = asyncio.Event()
        self._unsubscribe = async_track_state_change_event(hass, [entity], self._record)

    @callback
    def _record(self, event: Event[EventStateChangedData]) -> None:
        if (state := event.data["new_state"]) is not None:
            self.states.append(state.state)
            self._changed.set()

    async def wait_for(self, wanted: Callable[[list[str]], bool], timeout: float = 10.0) -> None:
        """Until what the entity went through satisfies ``wanted``."""
        async with asyncio.timeout(timeout):
            while not wanted(self.states):
                self._changed.clear()
                await self._changed.wait()

    async def unavailable_then_back(self, timeout: float = 10.0) -> None:
        """Until the entity went unavailable and came back."""

        def back(states: list[str]) -> bool:
            if STATE_UNAVAILABLE not in states:
                return False
            return states[-1] != STATE_UNAVAILABLE

        await self.wait_for(back, timeout)

    def close(self) -> None:
        self._unsubscribe()

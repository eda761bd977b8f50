"""Small helpers of the Home Assistant tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event

from custom_components.aliyun_iot_at.const import DOMAIN

from .conftest import DN, PK


def entity_id(hass: HomeAssistant, platform: str, key: str) -> str:
    """The entity id of the entity with unique id ``{pk}.{dn}_{key}``."""
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{PK}.{DN}_{key}")
    assert found is not None, f"no {platform} entity for {key}"
    return found


def state_of(hass: HomeAssistant, platform: str, key: str) -> State:
    """The state of the entity of ``key``."""
    state = hass.states.get(entity_id(hass, platform, key))
    assert state is not None
    return state


async def wait_state(
    hass: HomeAssistant,
    entity: str,
    expected: str | Callable[[State], bool],
    timeout: float = 10.0,
) -> State:
    """The entity's state once it is ``expected`` (a state string or a predicate)."""

    def matches(state: State | None) -> bool:
        if state is None:
            return False
        return state.state == expected if isinstance(expected, str) else expected(state)

    changed = asyncio.Event()

    @callback
    def _changed(event: Event[EventStateChangedData]) -> None:
        changed.set()

    unsubscribe = async_track_state_change_event(hass, [entity], _changed)
    try:
        async with asyncio.timeout(timeout):
            while True:
                changed.clear()
                state = hass.states.get(entity)
                if state is not None and matches(state):
                    return state
                await changed.wait()
    finally:
        unsubscribe()


def is_available(state: State) -> bool:
    """Any state but unavailable."""
    return state.state != STATE_UNAVAILABLE


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Until ``condition`` holds, for what announces no event (cloud history, flows)."""
    step = 0.02
    for _ in range(int(timeout / step)):
        if condition():
            return
        await asyncio.sleep(step)
    raise TimeoutError("the condition did not become true in time")

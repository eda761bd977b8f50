"""Writable bool properties: switches."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity
from homeassistant.const import STATE_OFF, STATE_ON, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .data import AliyunIotAtConfigEntry
from .entity import ControlEntity, add_property_entities

# One change at a time: they all go through one serial link.
PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AliyunIotAtConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a switch per writable bool property."""
    add_property_entities(entry, Platform.SWITCH, PropertySwitch, async_add_entities)


class PropertySwitch(ControlEntity, SwitchEntity):
    """A writable bool property."""

    @property
    def is_on(self) -> bool | None:
        """On when the property is 1."""
        value = self.tsl_value
        return None if value is None else bool(value)

    def restored_value(self, state: str) -> object:
        """On and off as 1 and 0."""
        return {STATE_ON: True, STATE_OFF: False}.get(state)

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Set the property to 1 and post it."""
        await self.async_write(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Set the property to 0 and post it."""
        await self.async_write(False)

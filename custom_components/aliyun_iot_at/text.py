"""Writable text properties: text entities."""

from __future__ import annotations

from homeassistant.components.text import TextEntity
from homeassistant.const import MAX_LENGTH_STATE_STATE, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import AliyunIotAtCoordinator
from .core.tsl import MAX_TEXT_BYTES, Property
from .data import AliyunIotAtConfigEntry
from .entity import ControlEntity, add_property_entities

# One change at a time: they all go through one serial link.
PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AliyunIotAtConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a text entity per writable text property."""
    add_property_entities(entry, Platform.TEXT, PropertyText, async_add_entities)


class PropertyText(ControlEntity, TextEntity):
    """A writable text property.

    The model counts its length in UTF-8 bytes, Home Assistant in characters: the entity
    caps characters, and the byte length is checked when the value is posted.
    """

    def __init__(self, coordinator: AliyunIotAtCoordinator, prop: Property) -> None:
        super().__init__(coordinator, prop)
        length = prop.data_type.length or MAX_TEXT_BYTES
        self._attr_native_max = min(length, MAX_LENGTH_STATE_STATE)

    @property
    def native_value(self) -> str | None:
        """The property's text."""
        value = self.tsl_value
        return value if isinstance(value, str) else None

    def restored_value(self, state: str) -> object:
        """The text shown."""
        return state

    async def async_set_value(self, value: str) -> None:
        """Set and post the text."""
        await self.async_write(value)

"""Read-only bool properties: binary sensors."""

from __future__ import annotations

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .data import AliyunIotAtConfigEntry
from .entity import PropertyEntity, add_property_entities

# Pushed values: nothing to poll.
PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AliyunIotAtConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a binary sensor per read-only bool property."""
    add_property_entities(entry, Platform.BINARY_SENSOR, PropertyBinarySensor, async_add_entities)


class PropertyBinarySensor(PropertyEntity, BinarySensorEntity):
    """A read-only bool property."""

    @property
    def is_on(self) -> bool | None:
        """On when the property is 1."""
        value = self.tsl_value
        return None if value is None else bool(value)

"""Writable enum properties: selects of the model's labels."""

from __future__ import annotations

from homeassistant.components.select import SelectEntity
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import AliyunIotAtCoordinator
from .core.tsl import Property
from .data import AliyunIotAtConfigEntry
from .entity import ControlEntity, add_property_entities

# One change at a time: they all go through one serial link.
PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AliyunIotAtConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a select per writable enum property."""
    add_property_entities(entry, Platform.SELECT, PropertySelect, async_add_entities)


class PropertySelect(ControlEntity, SelectEntity):
    """A writable enum property, shown by its labels."""

    def __init__(self, coordinator: AliyunIotAtCoordinator, prop: Property) -> None:
        super().__init__(coordinator, prop)
        labels = prop.data_type.labels
        self._attr_options = list(labels.values())
        self._keys = {label: key for key, label in reversed(labels.items())}

    @property
    def current_option(self) -> str | None:
        """The label of the current value."""
        value = self.tsl_value
        return self.spec.labels.get(value) if isinstance(value, int) else None

    def restored_value(self, state: str) -> object:
        """The value of the label shown."""
        return self._keys.get(state)

    async def async_select_option(self, option: str) -> None:
        """Set and post the value of ``option``."""
        await self.async_write(self._keys[option])

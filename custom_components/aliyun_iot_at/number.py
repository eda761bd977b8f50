"""Writable int, float and double properties: numbers with the model's range and unit."""

from __future__ import annotations

from homeassistant.components.number import NumberDeviceClass, NumberEntity
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import AliyunIotAtCoordinator
from .core.tsl import INT32_MAX, INT32_MIN, DataType, Property
from .data import AliyunIotAtConfigEntry
from .entity import ControlEntity, add_property_entities
from .mapping import measurement

# One change at a time: they all go through one serial link.
PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AliyunIotAtConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a number per writable numeric property."""
    add_property_entities(entry, Platform.NUMBER, PropertyNumber, async_add_entities)


class PropertyNumber(ControlEntity, NumberEntity):
    """A writable numeric property; without a range in the model, the int32 range."""

    def __init__(self, coordinator: AliyunIotAtCoordinator, prop: Property) -> None:
        super().__init__(coordinator, prop)
        spec = prop.data_type
        self._attr_native_min_value = INT32_MIN if spec.min is None else spec.min
        self._attr_native_max_value = INT32_MAX if spec.max is None else spec.max
        if spec.step is not None:
            self._attr_native_step = spec.step
        elif spec.type is DataType.INT:
            self._attr_native_step = 1
        reading = measurement(prop)
        self._attr_native_unit_of_measurement = reading.unit
        if reading.device_class is not None:
            self._attr_device_class = NumberDeviceClass(reading.device_class)

    @property
    def native_value(self) -> float | None:
        """The property's value."""
        value = self.tsl_value
        return value if isinstance(value, int | float) else None

    def restored_value(self, state: str) -> object:
        """The number shown (a whole one is taken by an int property)."""
        try:
            return float(state)
        except ValueError:
            return None

    async def async_set_native_value(self, value: float) -> None:
        """Set and post the value (a whole number for an int property)."""
        await self.async_write(value)

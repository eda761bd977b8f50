"""Read-only properties (and every date, struct and array one) as sensors, plus the link
state and the signal strength as diagnostic sensors."""

from __future__ import annotations

from datetime import datetime, timedelta
import json
from typing import Any

from homeassistant.components.sensor import SensorDeviceClass, SensorEntity, SensorStateClass
from homeassistant.const import SIGNAL_STRENGTH_DECIBELS_MILLIWATT, EntityCategory, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .coordinator import AliyunIotAtCoordinator
from .core.link import LinkState
from .core.tsl import DataType, Property
from .data import AliyunIotAtConfigEntry
from .entity import AliyunIotAtEntity, PropertyEntity, add_property_entities
from .mapping import measurement

# Pushed values: nothing to poll but the signal strength, which is read this often.
PARALLEL_UPDATES = 0
SCAN_INTERVAL = timedelta(minutes=5)

_NUMERIC = (DataType.INT, DataType.FLOAT, DataType.DOUBLE)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AliyunIotAtConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a sensor per property shown read-only, the link state and the signal strength."""
    coordinator = entry.runtime_data.coordinator
    link_state = LinkStateSensor(coordinator)
    add_property_entities(
        entry,
        Platform.SENSOR,
        PropertySensor,
        async_add_entities,
        extra=(link_state, SignalSensor(coordinator)),
    )


class PropertySensor(PropertyEntity, SensorEntity):
    """A property shown as it is: a number with its unit, an enum's label, a text, a date as
    a timestamp; a struct as JSON with its fields as attributes, an array by its length with
    its items as an attribute."""

    def __init__(self, coordinator: AliyunIotAtCoordinator, prop: Property) -> None:
        super().__init__(coordinator, prop)
        kind = prop.data_type.type
        if kind in _NUMERIC:
            reading = measurement(prop)
            self._attr_native_unit_of_measurement = reading.unit
            self._attr_state_class = reading.state_class
            if reading.device_class is not None:
                self._attr_device_class = SensorDeviceClass(reading.device_class)
        elif kind is DataType.ENUM:
            self._attr_device_class = SensorDeviceClass.ENUM
            self._attr_options = list(dict.fromkeys(prop.data_type.labels.values()))
        elif kind is DataType.DATE:
            self._attr_device_class = SensorDeviceClass.TIMESTAMP

    @property
    def native_value(self) -> str | int | float | datetime | None:
        """The value in the form its type is shown."""
        value = self.tsl_value
        match self.spec.type, value:
            case (_, None):
                return None
            case (DataType.ENUM, int()):
                return self.spec.labels.get(value)
            case (DataType.DATE, int()):
                return dt_util.utc_from_timestamp(value / 1000)
            case (DataType.STRUCT, _):
                return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            case (DataType.ARRAY, list()):
                return len(value)
            case (_, int() | float() | str()):
                return value
        return None

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """A struct's fields, an array's items."""
        value = self.tsl_value
        if isinstance(value, dict):
            return dict(value)
        if isinstance(value, list):
            return {"items": value}
        return None


class LinkStateSensor(AliyunIotAtEntity, SensorEntity):
    """Where the cloud session is, and why it is down; always available."""

    _attr_device_class = SensorDeviceClass.ENUM
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _attr_translation_key = "link_state"

    def __init__(self, coordinator: AliyunIotAtCoordinator) -> None:
        # A hyphen cannot occur in a TSL identifier: no clash with a property's unique id.
        super().__init__(coordinator, "link-state")
        self._attr_options = [state.value for state in LinkState]

    @property
    def available(self) -> bool:
        """The state of the link is known even while it is down."""
        return True

    @property
    def native_value(self) -> str:
        """The link's state."""
        return self.coordinator.link.state.value

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """The reason of the last failure, while there is one."""
        error = self.coordinator.link.last_error
        return {"error": str(error) if error else None}


class SignalSensor(AliyunIotAtEntity, SensorEntity):
    """The module's signal strength, read every ``SCAN_INTERVAL`` while the link is up.
    Disabled by default: each reading is an AT command between two publishes."""

    _attr_device_class = SensorDeviceClass.SIGNAL_STRENGTH
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _attr_entity_registry_enabled_default = False
    _attr_native_unit_of_measurement = SIGNAL_STRENGTH_DECIBELS_MILLIWATT
    _attr_state_class = SensorStateClass.MEASUREMENT

    def __init__(self, coordinator: AliyunIotAtCoordinator) -> None:
        super().__init__(coordinator, "signal-strength")

    @property
    def should_poll(self) -> bool:
        """Read by polling: the module reports its signal only when asked."""
        return True

    async def async_added_to_hass(self) -> None:
        """Enabled: read at once, not only after the first interval."""
        await super().async_added_to_hass()
        self.async_schedule_update_ha_state(force_refresh=True)

    async def async_update(self) -> None:
        """Read the signal strength; while the link is down, keep the last reading."""
        if self.coordinator.connected:
            self._attr_native_value = await self.coordinator.async_read_signal()

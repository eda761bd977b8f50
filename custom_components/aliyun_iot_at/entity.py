"""The base entities: one device per config entry, one entity per thing-model feature."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN, Platform
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import RestoreEntity
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .coordinator import AliyunIotAtCoordinator
from .core.tsl import Property, TypeSpec
from .data import AliyunIotAtConfigEntry
from .mapping import platform_of


class AliyunIotAtEntity(CoordinatorEntity[AliyunIotAtCoordinator]):
    """An entity of the device; ``key`` makes its unique id."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: AliyunIotAtCoordinator, key: str) -> None:
        super().__init__(coordinator)
        self._attr_unique_id = f"{coordinator.unique_id}_{key}"
        coordinator.unique_ids.add(self._attr_unique_id)
        self._attr_device_info = coordinator.device_info

    @property
    def available(self) -> bool:
        """Unavailable while the cloud link is down: the cloud cannot see changes then."""
        return super().available and self.coordinator.connected


class PropertyEntity(AliyunIotAtEntity):
    """The entity of one TSL property, named as in the thing model."""

    def __init__(self, coordinator: AliyunIotAtCoordinator, prop: Property) -> None:
        super().__init__(coordinator, prop.identifier)
        self.prop = prop
        self._attr_name = prop.name

    async def async_added_to_hass(self) -> None:
        """Follow the property's value (the coordinator's own updates are the link's)."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self.coordinator.async_add_value_listener(
                self.prop.identifier, self.async_write_ha_state
            )
        )

    @property
    def spec(self) -> TypeSpec:
        """The property's data type."""
        return self.prop.data_type

    @property
    def tsl_value(self) -> object:
        """The property's last known value; None before the first one."""
        return self.coordinator.data.get(self.prop.identifier)

    async def async_write(self, value: object) -> None:
        """Set the value from Home Assistant: recorded, shown and posted to the cloud."""
        await self.coordinator.async_set_values({self.prop.identifier: value})


class ControlEntity(PropertyEntity, RestoreEntity):
    """A writable property: Home Assistant owns its value, so it survives a restart."""

    async def async_added_to_hass(self) -> None:
        """Take the value from before the restart, unless the cloud has set one since."""
        await super().async_added_to_hass()
        last = await self.async_get_last_state()
        if last is None or last.state in (STATE_UNKNOWN, STATE_UNAVAILABLE):
            return
        value = self.restored_value(last.state)
        if value is not None:
            self.coordinator.async_restore(self.prop.identifier, value)
            self.async_write_ha_state()

    def restored_value(self, state: str) -> object:
        """The property value of a restored state; None when it has none."""
        raise NotImplementedError


def add_property_entities(
    entry: AliyunIotAtConfigEntry,
    platform: Platform,
    make: Callable[[AliyunIotAtCoordinator, Property], PropertyEntity],
    add_entities: AddConfigEntryEntitiesCallback,
    extra: Iterable[AliyunIotAtEntity] = (),
) -> None:
    """Add an entity for each property ``platform`` shows, and ``extra`` ones."""
    coordinator = entry.runtime_data.coordinator
    props = (p for p in coordinator.model.properties if platform_of(p) is platform)
    add_entities([*(make(coordinator, p) for p in props), *extra])

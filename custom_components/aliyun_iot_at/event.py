"""The thing model's services: an event entity each, fired when the cloud calls it."""

from __future__ import annotations

from homeassistant.components.event import EventEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import AliyunIotAtCoordinator
from .core.thing import ServiceCalled
from .core.tsl import Service
from .data import AliyunIotAtConfigEntry
from .entity import AliyunIotAtEntity

# Pushed events: nothing to poll.
PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AliyunIotAtConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add an event entity per service of the thing model."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(ServiceEvent(coordinator, s) for s in coordinator.model.custom_services)


class ServiceEvent(AliyunIotAtEntity, EventEntity):
    """A service the cloud calls; the event's attributes are the call's inputs."""

    def __init__(self, coordinator: AliyunIotAtCoordinator, service: Service) -> None:
        super().__init__(coordinator, service.identifier)
        self._service = service
        self._attr_name = service.name
        self._attr_event_types = [service.identifier]

    async def async_added_to_hass(self) -> None:
        """Listen for calls of this service."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(self.hass, self.coordinator.service_signal, self._called)
        )

    @callback
    def _called(self, call: ServiceCalled) -> None:
        if call.service.identifier == self._service.identifier:
            self._trigger_event(self._service.identifier, call.params)
            self.async_write_ha_state()

"""Aliyun IoT (AT module): Home Assistant as a device on the Aliyun IoT Platform.

A cellular or Wi-Fi module on a serial port carries the device's MQTT session; the thing
model's properties become entities, its services events, and the cloud and Home Assistant
stay in step both ways.
"""

from __future__ import annotations

from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import ConfigEntryError
from homeassistant.helpers import config_validation as cv, entity_registry as er
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN
from .coordinator import AliyunIotAtCoordinator
from .core.link import DEFAULT_BACKOFF
from .core.outbox import UplinkSettings
from .core.tsl import ThingModelError
from .data import AliyunIotAtConfigEntry, AliyunIotAtData
from .outbox_store import async_remove_outbox
from .repairs import async_delete_link_issues
from .services import async_setup_services

PLATFORMS = [
    Platform.BINARY_SENSOR,
    Platform.EVENT,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
    Platform.TEXT,
]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

# The link supervisor's reconnect delays, and the seconds between session checks of modules
# that do not announce a lost session (module-level so the tests can shorten them).
LINK_BACKOFF = DEFAULT_BACKOFF
LINK_HEALTH_INTERVAL = 60.0
# How what goes up is paced and bounded, and the seconds a save of what waits is put off
# to gather more changes (module-level too, for the tests).
UPLINK = UplinkSettings()
OUTBOX_SAVE_DELAY = 10.0


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions: they exist whether or not an entry is loaded."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: AliyunIotAtConfigEntry) -> bool:
    """Connect to the cloud through the module, then add the entities."""
    try:
        coordinator = AliyunIotAtCoordinator(
            hass,
            entry,
            backoff=LINK_BACKOFF,
            health_interval=LINK_HEALTH_INTERVAL,
            uplink=UPLINK,
            save_delay=OUTBOX_SAVE_DELAY,
        )
    except ThingModelError as err:
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="invalid_thing_model",
            translation_placeholders={"problem": str(err)},
        ) from err
    await coordinator.async_connect()
    entry.runtime_data = AliyunIotAtData(coordinator)

    async def _close(event: Event) -> None:
        await coordinator.async_close()

    entry.async_on_unload(hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _close))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    coordinator.async_start_sending()
    _remove_stale_entities(hass, entry, coordinator.unique_ids)
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    return True


async def async_unload_entry(hass: HomeAssistant, entry: AliyunIotAtConfigEntry) -> bool:
    """Remove the entities, then close the session and the port."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.coordinator.async_close()
        # What the entry no longer runs it cannot report on.
        async_delete_link_issues(hass, entry.entry_id)
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: AliyunIotAtConfigEntry) -> None:
    """An entry removed while it could not connect leaves no repair issue behind, and what
    waited to be sent goes with it."""
    async_delete_link_issues(hass, entry.entry_id)
    await async_remove_outbox(hass, entry.entry_id)


async def _async_options_updated(hass: HomeAssistant, entry: AliyunIotAtConfigEntry) -> None:
    """A new thing model or keepalive: start over with it."""
    hass.config_entries.async_schedule_reload(entry.entry_id)


def _remove_stale_entities(
    hass: HomeAssistant, entry: AliyunIotAtConfigEntry, current: set[str]
) -> None:
    """Entities of features the thing model no longer has."""
    registry = er.async_get(hass)
    for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
        if entity.unique_id not in current:
            registry.async_remove(entity.entity_id)

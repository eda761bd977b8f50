"""The actions: post a thing-model event, post property values."""

from __future__ import annotations

from typing import cast

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
import voluptuous as vol

from .const import (
    ATTR_CONFIG_ENTRY_ID,
    ATTR_EVENT,
    ATTR_OUTPUT,
    ATTR_VALUES,
    DOMAIN,
    SERVICE_POST_EVENT,
    SERVICE_POST_PROPERTIES,
)
from .coordinator import AliyunIotAtCoordinator
from .data import AliyunIotAtConfigEntry

_POST_EVENT_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Required(ATTR_EVENT): cv.string,
        vol.Optional(ATTR_OUTPUT, default=dict): vol.Schema({cv.string: object}),
    }
)
_POST_PROPERTIES_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Required(ATTR_VALUES): vol.All(vol.Schema({cv.string: object}), vol.Length(min=1)),
    }
)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions of the integration."""

    async def post_event(call: ServiceCall) -> None:
        coordinator = _coordinator(hass, call.data[ATTR_CONFIG_ENTRY_ID])
        await coordinator.async_post_event(call.data[ATTR_EVENT], call.data[ATTR_OUTPUT])

    async def post_properties(call: ServiceCall) -> None:
        coordinator = _coordinator(hass, call.data[ATTR_CONFIG_ENTRY_ID])
        await coordinator.async_set_values(call.data[ATTR_VALUES])

    hass.services.async_register(DOMAIN, SERVICE_POST_EVENT, post_event, schema=_POST_EVENT_SCHEMA)
    hass.services.async_register(
        DOMAIN, SERVICE_POST_PROPERTIES, post_properties, schema=_POST_PROPERTIES_SCHEMA
    )


def _coordinator(hass: HomeAssistant, entry_id: str) -> AliyunIotAtCoordinator:
    entry = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_found",
            translation_placeholders={"entry_id": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"title": entry.title},
        )
    return cast(AliyunIotAtConfigEntry, entry).runtime_data.coordinator

"""Diagnostics: the settings (credentials redacted), the module, the link and the model."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_DEVICE
from homeassistant.core import HomeAssistant

from .const import (
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_KEEPALIVE,
    CONF_PRODUCT_KEY,
    CONF_USB_MODULE,
)
from .data import AliyunIotAtConfigEntry

# The triple identifies and authenticates the device; the IMEI and the port's serial number
# (inside a by-id path and the USB module id) identify the hardware.
TO_REDACT = {
    CONF_PRODUCT_KEY,
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_DEVICE,
    CONF_USB_MODULE,
    "imei",
}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: AliyunIotAtConfigEntry
) -> dict[str, Any]:
    """What support needs to see, without what identifies or authenticates the device."""
    coordinator = entry.runtime_data.coordinator
    link = coordinator.link
    model = coordinator.model
    refused = coordinator.last_refused
    return {
        "data": async_redact_data(dict(entry.data), TO_REDACT),
        # The model's shape, not its text: the text names the product.
        "keepalive": entry.options.get(CONF_KEEPALIVE),
        "module": async_redact_data(asdict(link.info), TO_REDACT) if link.info else None,
        "link": {
            "dialect": link.dialect_name,
            "state": link.state.value,
            "last_error": str(link.last_error) if link.last_error else None,
        },
        "thing_model": {
            "properties": {
                p.identifier: f"{p.data_type.type} {p.access_mode}" for p in model.properties
            },
            "events": [e.identifier for e in model.custom_events],
            "services": [s.identifier for s in model.custom_services],
        },
        "values": dict(coordinator.thing.values),
        "last_refused_post": asdict(refused) if refused else None,
    }

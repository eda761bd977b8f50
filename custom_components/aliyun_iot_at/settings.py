"""From config entry data and options to the protocol core's settings.

The config flow tests a connection with exactly what the coordinator will use later, so both
build their settings here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.const import CONF_DEVICE, CONF_HOST

from .const import (
    CONF_BAUDRATE,
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_KEEPALIVE,
    CONF_MQTT_PORT,
    CONF_PRODUCT_KEY,
    CONF_REGION,
    CONF_THING_MODEL,
    CONF_TLS,
    DEFAULT_KEEPALIVE,
)
from .core.alink import Topics
from .core.dialects.base import DEFAULT_REGION, DeviceIdentity, Endpoint, LinkSettings
from .core.link import PortSettings
from .core.transport import DEFAULT_BAUDRATE
from .core.tsl import ThingModel, default_model, parse_thing_model

# The most seconds one connection attempt of a running entry waits for the SIM and the
# network (module-level so the tests can shorten it).
ATTACH_TIMEOUT = 60.0


def port_settings(data: Mapping[str, Any]) -> PortSettings:
    """The port of ``data``."""
    return PortSettings(data[CONF_DEVICE], int(data.get(CONF_BAUDRATE, DEFAULT_BAUDRATE)))


def link_settings(data: Mapping[str, Any], options: Mapping[str, Any]) -> LinkSettings:
    """The triple and endpoint of ``data``, the keepalive of ``options``."""
    port = data.get(CONF_MQTT_PORT)
    return LinkSettings(
        identity=DeviceIdentity(
            data[CONF_PRODUCT_KEY], data[CONF_DEVICE_NAME], data[CONF_DEVICE_SECRET]
        ),
        endpoint=Endpoint(
            region=data.get(CONF_REGION) or DEFAULT_REGION,
            host=data.get(CONF_HOST) or None,
            port=int(port) if port else None,
            tls=bool(data.get(CONF_TLS, False)),
        ),
        keepalive=int(options.get(CONF_KEEPALIVE, DEFAULT_KEEPALIVE)),
        attach_timeout=ATTACH_TIMEOUT,
    )


def topics(data: Mapping[str, Any]) -> Topics:
    """The Alink topics of the device in ``data``."""
    return Topics(data[CONF_PRODUCT_KEY], data[CONF_DEVICE_NAME])


def thing_model(options: Mapping[str, Any]) -> ThingModel:
    """The pasted thing model of ``options``, or the standard switch when there is none;
    ``ThingModelError`` when it does not parse."""
    text = options.get(CONF_THING_MODEL) or ""
    return parse_thing_model(text) if text.strip() else default_model()

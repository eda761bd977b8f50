"""Constants of the Aliyun IoT (AT module) integration."""

from __future__ import annotations

import logging
from typing import Final

DOMAIN: Final = "aliyun_iot_at"
LOGGER = logging.getLogger(__package__)

# Config entry data: the port and the module.
CONF_BAUDRATE: Final = "baudrate"
CONF_DIALECT: Final = "dialect"
# Config entry data of a USB module: which module, and which of its ports (ports.UsbPort).
CONF_USB_MODULE: Final = "usb_module"
CONF_USB_INTERFACE: Final = "usb_interface"
# Config entry data: the device triple and the endpoint.
CONF_PRODUCT_KEY: Final = "product_key"
CONF_DEVICE_NAME: Final = "device_name"
CONF_DEVICE_SECRET: Final = "device_secret"
CONF_REGION: Final = "region"
CONF_MQTT_PORT: Final = "mqtt_port"
CONF_TLS: Final = "tls"
# Config entry options.
CONF_THING_MODEL: Final = "thing_model"
CONF_KEEPALIVE: Final = "keepalive"

DEFAULT_KEEPALIVE: Final = 300

# Fired for every service the cloud calls: {"device_id", "service", "message_id", "params"}.
EVENT_SERVICE_CALL: Final = "aliyun_iot_at_service_call"

SERVICE_POST_EVENT: Final = "post_event"
SERVICE_POST_PROPERTIES: Final = "post_properties"
ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_EVENT: Final = "event"
ATTR_OUTPUT: Final = "output"
ATTR_VALUES: Final = "values"

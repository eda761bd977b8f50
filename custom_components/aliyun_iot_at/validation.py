"""What the config flow checks: the form's values, the port and a real connection.

Failures become the form error keys of ``strings.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
import re
from typing import Any

from homeassistant.const import CONF_HOST

from .const import CONF_DEVICE_NAME, CONF_DEVICE_SECRET, CONF_DIALECT, CONF_PRODUCT_KEY
from .core.dialects.base import ModuleInfo
from .core.errors import (
    AtError,
    AtTimeout,
    AuthRefused,
    FirmwareTooOld,
    NoAnswer,
    NoNetwork,
    PortError,
    SimNotReady,
    UnknownModule,
    UnsafeValue,
)
from .core.identify import read_info, wake
from .core.link import Link
from .core.transport import open_channel
from .core.tsl import ThingModelError
from .settings import link_settings, port_settings, thing_model, topics

# Aliyun's rules for the device triple (console and device SDKs).
_CREDENTIALS = {
    CONF_PRODUCT_KEY: re.compile(r"[A-Za-z0-9]{1,20}"),
    CONF_DEVICE_NAME: re.compile(r"[A-Za-z0-9_.:@-]{4,32}"),
    CONF_DEVICE_SECRET: re.compile(r"[A-Za-z0-9]{1,64}"),
}
_HOST = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")

# The most seconds the test connection waits for the SIM and the network: someone is
# waiting for the form (module-level so the tests can shorten it).
FLOW_ATTACH_TIMEOUT = 30.0

# Most specific first: the first class an error is an instance of names it.
_ERROR_KEYS: tuple[tuple[type[AtError], str], ...] = (
    (PortError, "cannot_open_port"),
    (NoAnswer, "no_answer"),
    (UnknownModule, "unknown_module"),
    (FirmwareTooOld, "firmware_too_old"),
    (SimNotReady, "sim_not_ready"),
    (NoNetwork, "no_network"),
    (AuthRefused, "auth_refused"),
    (AtTimeout, "timeout"),
    (UnsafeValue, "unsupported_value"),
)


def error_key(err: AtError) -> str:
    """The form error for ``err``."""
    return next((key for cls, key in _ERROR_KEYS if isinstance(err, cls)), "cannot_connect")


def credential_errors(user_input: Mapping[str, Any]) -> dict[str, str]:
    """Form errors of the device triple and the typed host."""
    errors = {
        key: f"invalid_{key}"
        for key, pattern in _CREDENTIALS.items()
        if key in user_input and not pattern.fullmatch(user_input[key])
    }
    host = user_input.get(CONF_HOST)
    if host and not _HOST.fullmatch(host):
        errors[CONF_HOST] = "invalid_host"
    return errors


def model_error(options: Mapping[str, Any], product_key: str) -> tuple[str, str] | None:
    """(error key, problem) when the pasted thing model is unusable for this product."""
    try:
        model = thing_model(options)
    except ThingModelError as err:
        return "invalid_thing_model", str(err)
    if model.product_key is not None and model.product_key != product_key:
        return "thing_model_other_product", model.product_key
    return None


async def async_identify(url: str, baudrate: int) -> ModuleInfo:
    """Ask the module on the port who it is; the port is closed again afterwards."""
    channel = await open_channel(url, baudrate)
    try:
        await wake(channel)
        return await read_info(channel)
    finally:
        channel.close()
        await channel.wait_closed()


async def async_try_link(data: Mapping[str, Any], options: Mapping[str, Any]) -> str | None:
    """Bring the session up once with these settings; the form error, or None when it works."""
    device_topics = topics(data)
    link = Link(
        port_settings(data),
        data[CONF_DIALECT],
        replace(link_settings(data, options), attach_timeout=FLOW_ATTACH_TIMEOUT),
        device_topics.subscriptions(),
        on_message=lambda message: None,
    )
    try:
        await link.connect_once()
    except AtError as err:
        return error_key(err)
    finally:
        await link.stop()
    return None

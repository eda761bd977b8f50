"""Config flow: the port, the module, the device triple and the thing model.

Every step that names something the module must reach is tested for real before it is
stored: the port is probed, and the session is brought up once. A module plugged in over USB
is discovered; a configured one found at another path is followed there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.const import CONF_DEVICE, CONF_HOST
from homeassistant.core import callback
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.usb import UsbServiceInfo
import voluptuous as vol

from .const import (
    CONF_BAUDRATE,
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_DIALECT,
    CONF_KEEPALIVE,
    CONF_MQTT_PORT,
    CONF_PRODUCT_KEY,
    CONF_REGION,
    CONF_THING_MODEL,
    CONF_TLS,
    CONF_USB_INTERFACE,
    CONF_USB_MODULE,
    DEFAULT_KEEPALIVE,
    DOMAIN,
)
from .core.dialects import DIALECT_NAMES, dialect_class, guess_dialect
from .core.dialects.base import DEFAULT_REGION, KEEPALIVE_RANGE, REGIONS, ModuleInfo
from .core.errors import AtError
from .core.transport import DEFAULT_BAUDRATE
from .ports import (
    UsbPort,
    async_discovered_port,
    async_list_ports,
    async_real_paths,
    async_stable_path,
    async_usb_port,
)
from .validation import (
    async_identify,
    async_try_link,
    credential_errors,
    error_key,
    model_error,
)

# What reconfigure replaces: the endpoint, and what the old port was on USB.
_RECONFIGURED_KEYS = (
    CONF_REGION,
    CONF_HOST,
    CONF_MQTT_PORT,
    CONF_TLS,
    CONF_USB_MODULE,
    CONF_USB_INTERFACE,
)

_BAUDRATE = NumberSelector(
    NumberSelectorConfig(min=1200, max=4_000_000, step=1, mode=NumberSelectorMode.BOX)
)
_MQTT_PORT = NumberSelector(
    NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
)
_REGION = SelectSelector(
    SelectSelectorConfig(options=list(REGIONS), mode=SelectSelectorMode.DROPDOWN)
)
_SECRET = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
_THING_MODEL = TextSelector(TextSelectorConfig(multiline=True))
_KEEPALIVE = NumberSelector(
    NumberSelectorConfig(
        min=KEEPALIVE_RANGE[0],
        max=KEEPALIVE_RANGE[1],
        step=1,
        unit_of_measurement="s",
        mode=NumberSelectorMode.BOX,
    )
)


def _dialect_selector() -> SelectSelector:
    options = [SelectOptionDict(value=n, label=dialect_class(n).title) for n in DIALECT_NAMES]
    return SelectSelector(SelectSelectorConfig(options=options, mode=SelectSelectorMode.LIST))


def _port_schema(ports: list[SelectOptionDict]) -> dict[vol.Marker, Any]:
    """The port fields: a listed port or one typed by hand (path or pyserial URL)."""
    selector = SelectSelector(
        SelectSelectorConfig(options=ports, custom_value=True, mode=SelectSelectorMode.DROPDOWN)
    )
    return {
        vol.Required(CONF_DEVICE): selector,
        vol.Required(CONF_BAUDRATE, default=DEFAULT_BAUDRATE): _BAUDRATE,
    }


def _endpoint_schema(with_tls: bool) -> dict[vol.Marker, Any]:
    """The endpoint fields: a public region, or a host typed from the console."""
    fields: dict[vol.Marker, Any] = {
        vol.Required(CONF_REGION, default=DEFAULT_REGION): _REGION,
        vol.Optional(CONF_HOST): str,
        vol.Optional(CONF_MQTT_PORT): _MQTT_PORT,
    }
    if with_tls:
        fields[vol.Optional(CONF_TLS, default=False)] = BooleanSelector()
    return fields


def _cleaned(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Typed text stripped, numbers made whole, empty optional fields left out."""
    cleaned = {key: _clean(value) for key, value in user_input.items()}
    return {key: value for key, value in cleaned.items() if value != ""}


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    return int(value) if isinstance(value, float) else value


def _usb_data(port: UsbPort | None) -> dict[str, str]:
    """What entry data keeps of a USB port, to know the module when it is discovered."""
    if port is None:
        return {}
    data = {CONF_USB_MODULE: port.module}
    if port.interface is not None:
        data[CONF_USB_INTERFACE] = port.interface
    return data


def _module_name(info: ModuleInfo, fallback: str | None) -> str:
    named = " ".join(filter(None, (info.manufacturer, info.model)))
    return named or fallback or "-"


def _module_placeholders(info: ModuleInfo, proposal: str | None) -> dict[str, str]:
    return {
        "manufacturer": info.manufacturer or "-",
        "model": info.model or "-",
        "firmware": info.firmware or "-",
        "proposal": dialect_class(proposal).title if proposal else "-",
    }


class AliyunIotAtConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a module as an Aliyun IoT device."""

    VERSION = 1

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._info = ModuleInfo()

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> AliyunIotAtOptionsFlow:
        """The options: thing model and keepalive."""
        return AliyunIotAtOptionsFlow()

    # --- adding a device ------------------------------------------------------------------

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Pick the module's port; the module is asked who it is."""
        errors: dict[str, str] = {}
        if user_input is not None:
            port = await self._port_input(user_input, errors)
            if port is not None:
                try:
                    self._info = await async_identify(port[CONF_DEVICE], port[CONF_BAUDRATE])
                except AtError as err:
                    errors["base"] = error_key(err)
                else:
                    self._data = port
                    return await self.async_step_dialect()
        schema = vol.Schema(_port_schema(await async_list_ports(self.hass)))
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )

    async def async_step_dialect(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show what the module said and propose its dialect."""
        if user_input is not None:
            self._data[CONF_DIALECT] = user_input[CONF_DIALECT]
            return await self.async_step_credentials()
        proposal = guess_dialect(self._info)
        schema = vol.Schema(
            {vol.Required(CONF_DIALECT, default=proposal or vol.UNDEFINED): _dialect_selector()}
        )
        return self.async_show_form(
            step_id="dialect",
            data_schema=schema,
            description_placeholders=_module_placeholders(self._info, proposal),
        )

    async def async_step_credentials(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The device triple and the endpoint; the session is brought up once to test them."""
        errors: dict[str, str] = {}
        if user_input is not None:
            entered = _cleaned(user_input)
            errors = credential_errors(entered)
            if not errors:
                await self.async_set_unique_id(
                    f"{entered[CONF_PRODUCT_KEY]}.{entered[CONF_DEVICE_NAME]}"
                )
                self._abort_if_unique_id_configured()
                data = {**self._data, **entered}
                error = await async_try_link(data, {})
                if error is None:
                    self._data = data
                    return await self.async_step_thing_model()
                errors["base"] = error
        schema = vol.Schema(
            {
                vol.Required(CONF_PRODUCT_KEY): str,
                vol.Required(CONF_DEVICE_NAME): str,
                vol.Required(CONF_DEVICE_SECRET): _SECRET,
                **_endpoint_schema(dialect_class(self._data[CONF_DIALECT]).supports_tls),
            }
        )
        return self.async_show_form(
            step_id="credentials",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )

    async def async_step_thing_model(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The product's thing model: pasted from the console, or the standard switch."""
        errors: dict[str, str] = {}
        placeholders = {"problem": ""}
        if user_input is not None:
            options = {
                CONF_THING_MODEL: user_input.get(CONF_THING_MODEL, ""),
                CONF_KEEPALIVE: DEFAULT_KEEPALIVE,
            }
            problem = model_error(options, self._data[CONF_PRODUCT_KEY])
            if problem is None:
                return self.async_create_entry(
                    title=self._data[CONF_DEVICE_NAME], data=self._data, options=options
                )
            errors[CONF_THING_MODEL], placeholders["problem"] = problem
        schema = vol.Schema({vol.Optional(CONF_THING_MODEL): _THING_MODEL})
        return self.async_show_form(
            step_id="thing_model",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
            description_placeholders=placeholders,
        )

    # --- a module plugged in ----------------------------------------------------------------

    async def async_step_usb(self, discovery_info: UsbServiceInfo) -> ConfigFlowResult:
        """A module on USB: followed when it is configured, else offered when its port
        answers AT like a supported module (its other ports, GNSS or diagnostics, do not)."""
        device = await async_stable_path(self.hass, discovery_info.device)
        port = await async_discovered_port(self.hass, discovery_info)
        if (moved := await self._async_configured_at(device, port)) is not None:
            return moved
        if port.module in self._async_current_ids():
            return self.async_abort(reason="already_configured")  # the user ignored it
        try:
            self._info = await async_identify(device, DEFAULT_BAUDRATE)
        except AtError:
            return self.async_abort(reason="not_supported_device")
        if guess_dialect(self._info) is None:
            return self.async_abort(reason="not_supported_device")
        # One discovery per module, until the device triple names it.
        await self.async_set_unique_id(port.module)
        self._data = {CONF_DEVICE: device, CONF_BAUDRATE: DEFAULT_BAUDRATE, **_usb_data(port)}
        self.context["title_placeholders"] = {
            "name": _module_name(self._info, discovery_info.description)
        }
        return await self.async_step_usb_confirm()

    async def async_step_usb_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask before setting the module up; then the flow goes on with its port."""
        if user_input is not None:
            return await self.async_step_dialect()
        self._set_confirm_only()
        return self.async_show_form(
            step_id="usb_confirm",
            description_placeholders={
                "name": _module_name(self._info, None),
                "firmware": self._info.firmware or "-",
                "device": self._data[CONF_DEVICE],
            },
        )

    async def _async_configured_at(self, device: str, port: UsbPort) -> ConfigFlowResult | None:
        """An abort when the discovered port is configured already; an entry whose module
        left its stored port is moved to the same port of the module found here."""
        entries = [e for e in self._async_current_entries() if CONF_DEVICE in e.data]
        here, *stored = await async_real_paths(
            self.hass, [device, *(e.data[CONF_DEVICE] for e in entries)]
        )
        if here in stored:
            return self.async_abort(reason="already_configured")
        for entry, real in zip(entries, stored, strict=True):
            if entry.data.get(CONF_USB_MODULE) != port.module:
                continue
            # Only to the same interface, and only when the stored path leads nowhere any
            # more: two modules of one kind may share ids.
            if real is None and entry.data.get(CONF_USB_INTERFACE) == port.interface:
                return self.async_update_reload_and_abort(
                    entry, data_updates={CONF_DEVICE: device}, reason="already_configured"
                )
            return self.async_abort(reason="already_configured")
        return None

    # --- changing a device ----------------------------------------------------------------

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The cloud refused the device's credentials."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A new device secret, tested before it is stored."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            entered = _cleaned(user_input)
            errors = credential_errors(entered)
            if not errors:
                error = await self._async_try_entry(entry, {**entry.data, **entered})
                if error is None:
                    return self.async_update_reload_and_abort(entry, data_updates=entered)
                errors["base"] = error
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema({vol.Required(CONF_DEVICE_SECRET): _SECRET}),
            errors=errors,
            description_placeholders={"device_name": entry.data[CONF_DEVICE_NAME]},
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Another port, dialect or endpoint, tested before it is stored."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            port = await self._port_input(user_input, errors, entry)
            entered = _cleaned(user_input)
            errors.update(credential_errors(entered))
            if entered.get(CONF_TLS) and not dialect_class(entered[CONF_DIALECT]).supports_tls:
                errors[CONF_TLS] = "tls_unsupported"
            if port is not None and not errors:
                data = {k: v for k, v in entry.data.items() if k not in _RECONFIGURED_KEYS}
                data |= entered | port
                error = await self._async_try_entry(entry, data)
                if error is None:
                    return self.async_update_reload_and_abort(entry, data=data)
                errors["base"] = error
        schema = vol.Schema(
            {
                **_port_schema(await async_list_ports(self.hass)),
                vol.Required(CONF_DIALECT): _dialect_selector(),
                **_endpoint_schema(with_tls=True),
            }
        )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or entry.data),
            errors=errors,
        )

    # --- helpers --------------------------------------------------------------------------

    async def _port_input(
        self,
        user_input: Mapping[str, Any],
        errors: dict[str, str],
        entry: ConfigEntry | None = None,
    ) -> dict[str, Any] | None:
        """The port to store, or None (and a form error) when another entry has it."""
        device = await async_stable_path(self.hass, str(user_input[CONF_DEVICE]).strip())
        others = (e for e in self._async_current_entries() if e is not entry)
        if any(e.data.get(CONF_DEVICE) == device for e in others):
            errors[CONF_DEVICE] = "port_in_use"
            return None
        usb = _usb_data(await async_usb_port(self.hass, device))
        return {CONF_DEVICE: device, CONF_BAUDRATE: int(user_input[CONF_BAUDRATE]), **usb}

    async def _async_try_entry(self, entry: ConfigEntry, data: Mapping[str, Any]) -> str | None:
        """Test ``data`` on the entry's module: the entry lets go of the port meanwhile and
        comes back as it was when the test fails."""
        loaded = entry.state is ConfigEntryState.LOADED
        if loaded:
            await self.hass.config_entries.async_unload(entry.entry_id)
        error = await async_try_link(data, entry.options)
        if error is not None and loaded:
            await self.hass.config_entries.async_setup(entry.entry_id)
        return error


class AliyunIotAtOptionsFlow(OptionsFlow):
    """The thing model and the MQTT keepalive."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Change the options; the entry reloads with them."""
        errors: dict[str, str] = {}
        placeholders = {"problem": ""}
        if user_input is not None:
            options = {
                CONF_THING_MODEL: user_input.get(CONF_THING_MODEL, ""),
                CONF_KEEPALIVE: int(user_input[CONF_KEEPALIVE]),
            }
            problem = model_error(options, self.config_entry.data[CONF_PRODUCT_KEY])
            if problem is None:
                return self.async_create_entry(data=options)
            errors[CONF_THING_MODEL], placeholders["problem"] = problem
        schema = vol.Schema(
            {
                vol.Optional(CONF_THING_MODEL): _THING_MODEL,
                vol.Required(CONF_KEEPALIVE, default=DEFAULT_KEEPALIVE): _KEEPALIVE,
            }
        )
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                schema, user_input or self.config_entry.options
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

"""The config flow, the options flow, reconfigure and reauth, against the emulated module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from homeassistant.config_entries import (
    SOURCE_REAUTH,
    SOURCE_USER,
    ConfigEntryState,
    ConfigFlowResult,
)
from homeassistant.const import CONF_DEVICE, CONF_HOST
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.aliyun_iot_at import validation
from custom_components.aliyun_iot_at.const import (
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
    DOMAIN,
)
from custom_components.aliyun_iot_at.core.dialects import dialect_class
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

from .conftest import DN, DS, LANDED, PK, SMART_LIGHT, entry_data
from .helpers import until

CREDENTIALS = {
    CONF_PRODUCT_KEY: PK,
    CONF_DEVICE_NAME: DN,
    CONF_DEVICE_SECRET: DS,
    CONF_REGION: "cn-shanghai",
}


@pytest.fixture
def dialect() -> str:
    """One dialect: the flow does not depend on it (the end-to-end tests cover them all)."""
    return LANDED[0]


def default_of(result: ConfigFlowResult, key: str) -> Any:
    schema = result["data_schema"]
    assert schema is not None
    marker = next(m for m in schema.schema if m == key)
    return marker.default()


async def start(hass: HomeAssistant) -> ConfigFlowResult:
    return await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})


async def configure(
    hass: HomeAssistant, result: ConfigFlowResult, data: dict[str, Any]
) -> ConfigFlowResult:
    return await hass.config_entries.flow.async_configure(result["flow_id"], data)


async def to_credentials(
    hass: HomeAssistant, module: ModuleEmulator, dialect: str
) -> ConfigFlowResult:
    result = await configure(
        hass, await start(hass), {CONF_DEVICE: str(module.path), CONF_BAUDRATE: 115200}
    )
    assert result["step_id"] == "dialect"
    return await configure(hass, result, {CONF_DIALECT: dialect})


async def to_thing_model(
    hass: HomeAssistant, module: ModuleEmulator, dialect: str
) -> ConfigFlowResult:
    result = await configure(hass, await to_credentials(hass, module, dialect), CREDENTIALS)
    assert result["step_id"] == "thing_model"
    return result


# --- adding a device ---------------------------------------------------------------------


async def test_the_whole_flow_adds_a_working_device(
    hass: HomeAssistant,
    module: ModuleEmulator,
    dialect: str,
    cloud: AliyunCloud,
    device: Device,
) -> None:
    result = await start(hass)
    assert (result["type"], result["step_id"]) == (FlowResultType.FORM, "user")

    result = await configure(
        hass, result, {CONF_DEVICE: f"  {module.path} ", CONF_BAUDRATE: 115200.0}
    )
    assert result["step_id"] == "dialect"
    placeholders = result["description_placeholders"]
    assert placeholders is not None
    assert placeholders["manufacturer"] == module.personality.manufacturer
    assert placeholders["model"] == module.personality.model
    assert placeholders["proposal"] == dialect_class(dialect).title
    assert default_of(result, CONF_DIALECT) == dialect

    result = await configure(hass, result, {CONF_DIALECT: dialect})
    assert result["step_id"] == "credentials"
    result = await configure(hass, result, {**CREDENTIALS, CONF_HOST: ""})
    assert result["step_id"] == "thing_model"
    result = await configure(hass, result, {})

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == DN
    tls = {CONF_TLS: False} if dialect_class(dialect).supports_tls else {}
    assert result["data"] == {
        CONF_DEVICE: str(module.path),
        CONF_BAUDRATE: 115200,
        CONF_DIALECT: dialect,
        **CREDENTIALS,
        **tls,
    }
    assert result["options"] == {CONF_THING_MODEL: "", CONF_KEEPALIVE: 300}
    entry = result["result"]
    assert entry.unique_id == f"{PK}.{DN}"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await cloud.wait_online(device)


async def test_a_pasted_thing_model_is_stored(
    hass: HomeAssistant, module: ModuleEmulator, dialect: str, device: Device
) -> None:
    result = await configure(
        hass, await to_thing_model(hass, module, dialect), {CONF_THING_MODEL: SMART_LIGHT}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["options"][CONF_THING_MODEL] == SMART_LIGHT
    await hass.async_block_till_done()
    assert er.async_get(hass).async_get_entity_id("number", DOMAIN, f"{PK}.{DN}_Brightness")


@pytest.mark.parametrize(
    ("text", "error", "problem"),
    [
        ("{", "invalid_thing_model", "not valid JSON"),
        ('{"properties": [{"identifier": "a b"}]}', "invalid_thing_model", "properties[0]"),
        (
            json.dumps({**json.loads(SMART_LIGHT), "profile": {"productKey": "a1Other"}}),
            "thing_model_other_product",
            "a1Other",
        ),
    ],
    ids=["not_json", "bad_identifier", "other_product"],
)
async def test_an_unusable_thing_model_is_a_form_error(
    hass: HomeAssistant,
    module: ModuleEmulator,
    dialect: str,
    device: Device,
    text: str,
    error: str,
    problem: str,
) -> None:
    result = await configure(
        hass, await to_thing_model(hass, module, dialect), {CONF_THING_MODEL: text}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_THING_MODEL: error}
    assert problem in (result["description_placeholders"] or {})["problem"]


async def test_port_errors(
    hass: HomeAssistant, module: ModuleEmulator, dialect: str, tmp_path: Path
) -> None:
    missing = {CONF_DEVICE: str(tmp_path / "nothing"), CONF_BAUDRATE: 115200}
    result = await configure(hass, await start(hass), missing)
    assert result["errors"] == {"base": "cannot_open_port"}

    module.silent = True
    result = await configure(hass, result, {CONF_DEVICE: str(module.path), CONF_BAUDRATE: 9600})
    assert result["errors"] == {"base": "no_answer"}


async def test_a_port_of_another_entry_is_refused(
    hass: HomeAssistant, module: ModuleEmulator, dialect: str
) -> None:
    MockConfigEntry(domain=DOMAIN, data=entry_data(module, dialect), unique_id="x.y").add_to_hass(
        hass
    )
    result = await configure(
        hass, await start(hass), {CONF_DEVICE: str(module.path), CONF_BAUDRATE: 115200}
    )
    assert result["errors"] == {CONF_DEVICE: "port_in_use"}


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({CONF_PRODUCT_KEY: "a1/b"}, {CONF_PRODUCT_KEY: "invalid_product_key"}),
        ({CONF_PRODUCT_KEY: "a" * 21}, {CONF_PRODUCT_KEY: "invalid_product_key"}),
        ({CONF_DEVICE_NAME: "abc"}, {CONF_DEVICE_NAME: "invalid_device_name"}),
        ({CONF_DEVICE_NAME: "lamp/1#"}, {CONF_DEVICE_NAME: "invalid_device_name"}),
        ({CONF_DEVICE_SECRET: "has space"}, {CONF_DEVICE_SECRET: "invalid_device_secret"}),
        ({CONF_HOST: "bad host"}, {CONF_HOST: "invalid_host"}),
    ],
)
async def test_credentials_are_checked_before_connecting(
    hass: HomeAssistant,
    module: ModuleEmulator,
    dialect: str,
    changes: dict[str, str],
    errors: dict[str, str],
) -> None:
    result = await to_credentials(hass, module, dialect)
    received = len(module.received)
    result = await configure(hass, result, {**CREDENTIALS, **changes})
    assert result["errors"] == errors
    assert len(module.received) == received  # the module was not asked


async def test_refused_credentials_are_a_form_error(
    hass: HomeAssistant, module: ModuleEmulator, dialect: str, device: Device
) -> None:
    result = await to_credentials(hass, module, dialect)
    result = await configure(hass, result, {**CREDENTIALS, CONF_DEVICE_SECRET: "Wrong0Secret"})
    assert result["errors"] == {"base": "auth_refused"}
    # Corrected, the flow goes on.
    result = await configure(hass, result, CREDENTIALS)
    assert result["step_id"] == "thing_model"


@pytest.mark.parametrize(
    ("knob", "error"), [("sim_ready", "sim_not_ready"), ("registered", "no_network")]
)
async def test_a_module_that_cannot_attach_is_a_form_error(
    hass: HomeAssistant,
    module: ModuleEmulator,
    dialect: str,
    device: Device,
    monkeypatch: pytest.MonkeyPatch,
    knob: str,
    error: str,
) -> None:
    monkeypatch.setattr(validation, "FLOW_ATTACH_TIMEOUT", 1.0)
    result = await to_credentials(hass, module, dialect)
    setattr(module, knob, False)
    result = await configure(hass, result, CREDENTIALS)
    assert result["errors"] == {"base": error}


async def test_a_module_that_stops_answering_is_a_timeout(
    hass: HomeAssistant, module: ModuleEmulator, dialect: str, device: Device
) -> None:
    result = await to_credentials(hass, module, dialect)
    module.silent = True
    result = await configure(hass, result, CREDENTIALS)
    assert result["errors"] == {"base": "timeout"}


async def test_the_same_device_twice_is_aborted(
    hass: HomeAssistant, module: ModuleEmulator, dialect: str, tmp_path: Path
) -> None:
    other = {**entry_data(module, dialect), CONF_DEVICE: str(tmp_path / "other")}
    MockConfigEntry(domain=DOMAIN, data=other, unique_id=f"{PK}.{DN}").add_to_hass(hass)
    result = await configure(hass, await to_credentials(hass, module, dialect), CREDENTIALS)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


# --- options -------------------------------------------------------------------------------


async def test_options_change_the_model_and_remove_stale_entities(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    registry = er.async_get(hass)
    result = await hass.config_entries.options.async_init(loaded_entry.entry_id)
    assert result["step_id"] == "init"
    assert default_of(result, CONF_KEEPALIVE) == 300

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_THING_MODEL: "{", CONF_KEEPALIVE: 120}
    )
    assert result["errors"] == {CONF_THING_MODEL: "invalid_thing_model"}

    model = json.loads(SMART_LIGHT)
    model["properties"] = [p for p in model["properties"] if p["identifier"] != "PowerSwitch"]
    model["services"] = [s for s in model["services"] if s["identifier"] != "get"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_THING_MODEL: json.dumps(model), CONF_KEEPALIVE: 120}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()

    assert loaded_entry.state is ConfigEntryState.LOADED
    assert loaded_entry.options[CONF_KEEPALIVE] == 120
    assert registry.async_get_entity_id("number", DOMAIN, f"{PK}.{DN}_Brightness")
    assert registry.async_get_entity_id("switch", DOMAIN, f"{PK}.{DN}_PowerSwitch") is None


# --- reconfigure ---------------------------------------------------------------------------


async def test_reconfigure_tests_the_new_settings_and_reloads(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, module: ModuleEmulator, dialect: str
) -> None:
    result = await loaded_entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    form = {
        CONF_DEVICE: str(module.path),
        CONF_BAUDRATE: 115200,
        CONF_DIALECT: dialect,
        CONF_REGION: "ap-southeast-1",
        CONF_MQTT_PORT: 1883.0,
    }

    result = await configure(hass, result, {**form, CONF_DEVICE: "/dev/nothing-here"})
    assert result["errors"] == {"base": "cannot_open_port"}
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.LOADED  # back as it was meanwhile

    result = await configure(hass, result, form)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert loaded_entry.data[CONF_REGION] == "ap-southeast-1"
    assert loaded_entry.data[CONF_MQTT_PORT] == 1883
    assert loaded_entry.data[CONF_DEVICE_SECRET] == DS


async def test_reconfigure_refuses_tls_on_a_dialect_without_it(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, module: ModuleEmulator
) -> None:
    plain = next(n for n in LANDED if not dialect_class(n).supports_tls)
    result = await loaded_entry.start_reconfigure_flow(hass)
    result = await configure(
        hass,
        result,
        {
            CONF_DEVICE: str(module.path),
            CONF_BAUDRATE: 115200,
            CONF_DIALECT: plain,
            CONF_REGION: "cn-shanghai",
            CONF_TLS: True,
        },
    )
    assert result["errors"] == {CONF_TLS: "tls_unsupported"}


# --- reauth --------------------------------------------------------------------------------


def reauth_flows(hass: HomeAssistant) -> list[Any]:
    return [
        flow
        for flow in hass.config_entries.flow.async_progress()
        if flow["context"]["source"] == SOURCE_REAUTH
    ]


async def test_refused_credentials_at_setup_start_a_reauth(
    hass: HomeAssistant,
    module: ModuleEmulator,
    dialect: str,
    cloud: AliyunCloud,
    device: Device,
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=DN,
        unique_id=f"{PK}.{DN}",
        data=entry_data(module, dialect, secret="Old0Secret"),
        options={CONF_THING_MODEL: "", CONF_KEEPALIVE: 60},
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    [flow] = reauth_flows(hass)
    assert flow["step_id"] == "reauth_confirm"

    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_DEVICE_SECRET: "Still0Wrong"}
    )
    assert result["errors"] == {"base": "auth_refused"}
    result = await configure(hass, result, {CONF_DEVICE_SECRET: "not valid!"})
    assert result["errors"] == {CONF_DEVICE_SECRET: "invalid_device_secret"}
    result = await configure(hass, result, {CONF_DEVICE_SECRET: DS})

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.data[CONF_DEVICE_SECRET] == DS
    await cloud.wait_online(device)


async def test_credentials_refused_later_start_a_reauth(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, cloud: AliyunCloud, device: Device
) -> None:
    new_secret = "N3wSecretFromTheConsole"
    cloud.add_device(PK, DN, new_secret)  # reset in the console
    await cloud.kick(device)

    await until(lambda: bool(reauth_flows(hass)))
    [flow] = reauth_flows(hass)
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_DEVICE_SECRET: new_secret}
    )
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.LOADED
    await cloud.wait_online(device)

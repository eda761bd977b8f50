"""The entity of every TSL data type, both ways, and the actions (one dialect is enough)."""

from __future__ import annotations

from datetime import UTC, datetime
import json
from typing import Any

from homeassistant.components.number import ATTR_VALUE, SERVICE_SET_VALUE
from homeassistant.components.select import ATTR_OPTION, SERVICE_SELECT_OPTION
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.aliyun_iot_at.const import DOMAIN, EVENT_SERVICE_CALL
from custom_components.aliyun_iot_at.diagnostics import async_get_config_entry_diagnostics
from testbed.cloud import AliyunCloud, Device
from testbed.cloud.alink import Uplink

from .conftest import DN, DS, LANDED, PK, SMART_LIGHT
from .helpers import entity_id, state_of, until, wait_state

# Read-only properties of the types the sample has only as writable ones, and two units.
_EXTRA = [
    ("Online", "r", {"type": "bool", "specs": {"0": "离线", "1": "在线"}}),
    ("FaultLevel", "r", {"type": "enum", "specs": {"0": "正常", "1": "告警"}}),
    ("FirmwareNote", "r", {"type": "text", "specs": {"length": "64"}}),
    ("CurrentHumidity", "r", {"type": "float", "specs": {"min": "0", "max": "100", "unit": "%"}}),
    ("TotalEnergy", "r", {"type": "double", "specs": {"unit": "kW·h"}}),
]


def _model() -> str:
    doc = json.loads(SMART_LIGHT)
    doc["properties"] += [
        {"identifier": i, "name": i, "accessMode": mode, "required": False, "dataType": t}
        for i, mode, t in _EXTRA
    ]
    return json.dumps(doc, ensure_ascii=False)


@pytest.fixture
def dialect() -> str:
    """The first dialect there is: the mapping does not depend on it."""
    return LANDED[0]


@pytest.fixture
def thing_model() -> str:
    return _model()


def attrs(hass: HomeAssistant, platform: str, key: str) -> dict[str, Any]:
    return dict(state_of(hass, platform, key).attributes)


async def test_every_data_type_gets_its_entity(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    number = attrs(hass, "number", "Brightness")
    assert (number["min"], number["max"], number["step"]) == (0, 100, 1)
    assert number["unit_of_measurement"] == "%"
    assert attrs(hass, "number", "ColorTemperature")["max"] == 6500
    assert attrs(hass, "select", "WorkMode")["options"] == [
        "手动",
        "阅读",
        "影院",
        "夜灯",
        "生活",
        "柔和",
    ]
    assert attrs(hass, "text", "DeviceAlias")["max"] == 32
    temperature = attrs(hass, "sensor", "CurrentTemperature")
    assert temperature["unit_of_measurement"] == "°C"
    assert temperature["device_class"] == "temperature"
    assert temperature["state_class"] == "measurement"
    assert attrs(hass, "sensor", "RealTimePower")["device_class"] == "power"
    assert attrs(hass, "sensor", "CurrentHumidity")["device_class"] == "humidity"
    energy = attrs(hass, "sensor", "TotalEnergy")
    assert (energy["unit_of_measurement"], energy["device_class"]) == ("kWh", "energy")
    assert energy["state_class"] == "total_increasing"
    fault = attrs(hass, "sensor", "FaultLevel")
    assert (fault["device_class"], fault["options"]) == ("enum", ["正常", "告警"])
    assert attrs(hass, "sensor", "LastOnTime")["device_class"] == "timestamp"
    for key in ("RGBColor", "LocalTimer", "FirmwareNote"):
        assert state_of(hass, "sensor", key).state == STATE_UNKNOWN
    assert state_of(hass, "binary_sensor", "Online").state == STATE_UNKNOWN
    assert attrs(hass, "event", "Toggle")["event_types"] == ["Toggle"]
    # A name from the model, on the module's device.
    assert attrs(hass, "switch", "PowerSwitch")["friendly_name"] == f"{DN} 电源开关"


async def test_cloud_sets_reach_every_writable_type(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, cloud: AliyunCloud, device: Device
) -> None:
    rgb = {"Red": 10, "Green": 20, "Blue": 30}
    msg_id = await cloud.set_properties(
        device,
        {
            "Brightness": 40,
            "WorkMode": 2,
            "DeviceAlias": "客厅",
            "RGBColor": rgb,
            "LocalTimer": [1, 2, 3],
        },
    )
    assert (await cloud.wait_reply(device, msg_id))["code"] == 200

    await wait_state(hass, entity_id(hass, "number", "Brightness"), "40")
    assert state_of(hass, "select", "WorkMode").state == "影院"
    assert state_of(hass, "text", "DeviceAlias").state == "客厅"
    rgb_sensor = state_of(hass, "sensor", "RGBColor")
    assert json.loads(rgb_sensor.state) == rgb
    assert rgb_sensor.attributes["Red"] == 10
    timer = state_of(hass, "sensor", "LocalTimer")
    assert timer.state == "3"
    assert timer.attributes["items"] == [1, 2, 3]


async def test_a_change_writes_only_the_entity_of_its_property(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, cloud: AliyunCloud, device: Device
) -> None:
    ours = [
        e.entity_id
        for e in er.async_entries_for_config_entry(er.async_get(hass), loaded_entry.entry_id)
    ]
    brightness = entity_id(hass, "number", "Brightness")
    # A write that changes nothing updates last_reported in place: keep the times.
    before = {e: state.last_reported for e in ours if (state := hass.states.get(e))}

    msg_id = await cloud.set_properties(device, {"Brightness": 40})
    assert (await cloud.wait_reply(device, msg_id))["code"] == 200
    await wait_state(hass, brightness, "40")
    await hass.services.async_call(
        "number",
        SERVICE_SET_VALUE,
        {ATTR_ENTITY_ID: brightness, ATTR_VALUE: 45},
        blocking=True,
    )
    await hass.async_block_till_done()

    # Every other entity's state was not even written again (last_reported is unchanged).
    written = {e for e, old in before.items() if hass.states.get(e).last_reported != old}  # type: ignore[union-attr]
    assert written == {brightness}
    assert hass.states.get(brightness).state == "45"  # type: ignore[union-attr]


async def test_a_refused_cloud_set_changes_nothing(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, cloud: AliyunCloud, device: Device
) -> None:
    msg_id = await cloud.set_properties(device, {"Brightness": 50, "CurrentTemperature": 20})
    reply = await cloud.wait_reply(device, msg_id)

    assert reply["code"] == 460
    assert "CurrentTemperature: read-only" in reply["message"]
    assert state_of(hass, "number", "Brightness").state == STATE_UNKNOWN


async def test_changes_in_home_assistant_are_posted(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, cloud: AliyunCloud, device: Device
) -> None:
    await hass.services.async_call(
        "number",
        SERVICE_SET_VALUE,
        {ATTR_ENTITY_ID: entity_id(hass, "number", "Brightness"), ATTR_VALUE: 55},
        blocking=True,
    )
    assert (await cloud.wait_post(device))["params"] == {"Brightness": 55}

    await hass.services.async_call(
        "select",
        SERVICE_SELECT_OPTION,
        {ATTR_ENTITY_ID: entity_id(hass, "select", "WorkMode"), ATTR_OPTION: "夜灯"},
        blocking=True,
    )
    assert (await cloud.wait_post(device))["params"] == {"WorkMode": 3}

    alias = entity_id(hass, "text", "DeviceAlias")
    await hass.services.async_call(
        "text", "set_value", {ATTR_ENTITY_ID: alias, ATTR_VALUE: "Hall"}, blocking=True
    )
    assert (await cloud.wait_post(device))["params"] == {"DeviceAlias": "Hall"}
    assert state_of(hass, "text", "DeviceAlias").state == "Hall"

    # Eleven characters of three bytes each: too long for a 32-byte text, refused before posting.
    with pytest.raises(ServiceValidationError) as refused:
        await hass.services.async_call(
            "text", "set_value", {ATTR_ENTITY_ID: alias, ATTR_VALUE: "客" * 11}, blocking=True
        )
    assert "33 bytes" in (refused.value.translation_placeholders or {})["problem"]
    assert state_of(hass, "text", "DeviceAlias").state == "Hall"


async def test_post_properties_action_feeds_the_read_only_entities(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, cloud: AliyunCloud, device: Device
) -> None:
    values = {
        "CurrentTemperature": 21.5,
        "Online": 1,
        "FaultLevel": 1,
        "FirmwareNote": "v2",
        "LastOnTime": "1700000000000",
        "TotalEnergy": 12.5,
    }
    await hass.services.async_call(
        DOMAIN,
        "post_properties",
        {"config_entry_id": loaded_entry.entry_id, "values": values},
        blocking=True,
    )

    post = await cloud.wait_post(device)
    assert post["params"] == {**values, "Online": 1}
    assert state_of(hass, "sensor", "CurrentTemperature").state == "21.5"
    assert state_of(hass, "binary_sensor", "Online").state == "on"
    assert state_of(hass, "sensor", "FaultLevel").state == "告警"
    assert state_of(hass, "sensor", "FirmwareNote").state == "v2"
    last_on = state_of(hass, "sensor", "LastOnTime").state
    assert datetime.fromisoformat(last_on) == datetime.fromtimestamp(1_700_000_000, UTC)


@pytest.mark.parametrize(
    ("service", "data", "problem"),
    [
        ("post_properties", {"values": {"Brightness": 101}}, "Brightness: 101 is above"),
        ("post_properties", {"values": {"Nope": 1}}, "Nope: not a property"),
        ("post_event", {"event": "Error", "output": {"ErrorCode": 7}}, "ErrorCode: 7 is not"),
        ("post_event", {"event": "Fire"}, "Fire: not an event"),
    ],
)
async def test_actions_refuse_what_the_model_does_not_allow(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    service: str,
    data: dict[str, Any],
    problem: str,
) -> None:
    with pytest.raises(ServiceValidationError) as refused:
        await hass.services.async_call(
            DOMAIN, service, {"config_entry_id": loaded_entry.entry_id, **data}, blocking=True
        )
    assert refused.value.translation_key == "invalid_values"
    assert problem in (refused.value.translation_placeholders or {})["problem"]


async def test_post_event_action_reaches_the_cloud(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, cloud: AliyunCloud, device: Device
) -> None:
    await hass.services.async_call(
        DOMAIN,
        "post_event",
        {"config_entry_id": loaded_entry.entry_id, "event": "Error", "output": {"ErrorCode": 1}},
        blocking=True,
    )

    def event_posts() -> list[Uplink]:
        return [u for u in cloud.uplinks(device) if u.kind == "event_post"]

    await until(lambda: bool(event_posts()))
    posted = event_posts()[0]
    assert posted.code == 200
    assert posted.topic.endswith("/thing/event/Error/post")
    assert posted.payload is not None
    assert posted.payload["params"]["value"] == {"ErrorCode": 1}


async def test_actions_need_a_loaded_entry(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    with pytest.raises(ServiceValidationError):
        await hass.services.async_call(
            DOMAIN, "post_event", {"config_entry_id": "nope", "event": "Error"}, blocking=True
        )
    await hass.config_entries.async_unload(loaded_entry.entry_id)
    with pytest.raises(ServiceValidationError):
        await hass.services.async_call(
            DOMAIN,
            "post_properties",
            {"config_entry_id": loaded_entry.entry_id, "values": {"PowerSwitch": 1}},
            blocking=True,
        )


async def test_a_cloud_service_call_fires_the_event_entity_and_the_bus_event(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, cloud: AliyunCloud, device: Device
) -> None:
    fired = async_capture_events(hass, EVENT_SERVICE_CALL)
    toggle = entity_id(hass, "event", "Toggle")

    msg_id = await cloud.call_service(device, "Toggle", {})

    assert (await cloud.wait_reply(device, msg_id))["code"] == 200
    state = await wait_state(hass, toggle, lambda s: s.state != STATE_UNKNOWN)
    assert state.attributes["event_type"] == "Toggle"
    device_entry = dr.async_get(hass).async_get_device({(DOMAIN, f"{PK}.{DN}")})
    assert device_entry is not None
    assert [e.data for e in fired] == [
        {"device_id": device_entry.id, "service": "Toggle", "message_id": msg_id, "params": {}}
    ]


async def test_diagnostics_hide_the_credentials(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    diagnostics = await async_get_config_entry_diagnostics(hass, loaded_entry)

    text = json.dumps(diagnostics, ensure_ascii=False)
    for secret in (DS, PK, DN):
        assert secret not in text
    assert diagnostics["link"]["state"] == "connected"
    assert diagnostics["thing_model"]["properties"]["PowerSwitch"] == "bool rw"

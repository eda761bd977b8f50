"""Hostile cloud input through the whole stack (cloud, module, link, Home Assistant): each
message is answered with its Alink code or dropped with one short log line; it never changes
a value or an entity, never drops the link, and the next set works."""

from __future__ import annotations

import logging

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from testbed.cloud import AliyunCloud, Device
from tests.e2e.conftest import PK
from tests.integration.conftest import SMART_LIGHT

from .ha import StateLog, entity_id, our_states
from .hostile import Hostile, cases
from .matrix import KEPT, Case

_OURS = "custom_components.aliyun_iot_at"
_LONGEST_LOG_LINE = 500


@pytest.fixture
def case() -> Case:
    """Hostile input is handled above the module: one dialect carries it."""
    return Case("hostile_input", "quectel", KEPT)


@pytest.fixture
def thing_model() -> str:
    return SMART_LIGHT


def _our_lines(caplog: pytest.LogCaptureFixture, hostile: Hostile) -> list[logging.LogRecord]:
    """Our log records about a dropped or refused message, but for the device's own reply
    to a service call, which ``thing/service/+`` brings back to it."""
    echo = f"{hostile.suffix}_reply"
    return [
        record
        for record in caplog.records
        if record.name.startswith(_OURS)
        and ("dropped" in (text := record.getMessage()) or "refused" in text)
        and not text.endswith(echo)
    ]


@pytest.mark.parametrize("hostile", cases())
async def test_hostile_message(
    hostile: Hostile,
    hass: HomeAssistant,
    ha_entry: MockConfigEntry,
    cloud: AliyunCloud,
    device: Device,
    caplog: pytest.LogCaptureFixture,
) -> None:
    coordinator = ha_entry.runtime_data.coordinator
    msg_id = await cloud.set_properties(device, {"PowerSwitch": 1, "Brightness": 30})
    assert (await cloud.wait_reply(device, msg_id))["code"] == 200
    values = dict(coordinator.thing.values)
    states = {key: state.state for key, state in our_states(hass).items()}
    power = StateLog(hass, entity_id(hass, "switch", "PowerSwitch"))
    caplog.clear()

    target = cloud.add_device(PK, "someone-else", "Lq5" * 11) if hostile.elsewhere else device
    await cloud.publish_raw(target, hostile.suffix, hostile.payload)
    # A message that must not be answered needs no waiting for: the valid set sent after it
    # is answered once it was handled (the module hands messages on in order).
    if hostile.code is not None:
        assert (await cloud.wait_reply(device, hostile.msg_id))["code"] == hostile.code
    msg_id = await cloud.set_properties(device, {"Brightness": 31})
    assert (await cloud.wait_reply(device, msg_id))["code"] == 200
    lines = _our_lines(caplog, hostile)

    # Nothing changed but what the valid set changed.
    assert coordinator.thing.values == values | {"Brightness": 31}
    brightness = entity_id(hass, "number", "Brightness")
    after = {key: state.state for key, state in our_states(hass).items() if key != brightness}
    assert after == {key: state for key, state in states.items() if key != brightness}
    assert "unavailable" not in power.states
    power.close()
    # Answered, or dropped with one short log line (none when it never arrived).
    assert len(lines) == (0 if hostile.elsewhere else 1), [r.getMessage() for r in lines]
    assert all(len(r.getMessage()) < _LONGEST_LOG_LINE for r in lines)
    if hostile.code is None and hostile.msg_id:
        assert not [
            uplink
            for uplink in cloud.uplinks(device)
            if uplink.kind == "reply"
            and uplink.payload is not None
            and uplink.payload.get("id") == hostile.msg_id
            and not uplink.topic.endswith(hostile.suffix)  # the cloud's own, on a reply topic
        ]

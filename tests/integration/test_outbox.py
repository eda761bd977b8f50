"""Nothing lost: what Home Assistant sends while the link is down goes up once it is back,
paced below Aliyun's rate limit, kept across a restart, retried when the module fails it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
import json
import logging
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components import aliyun_iot_at
from custom_components.aliyun_iot_at.const import DOMAIN
from custom_components.aliyun_iot_at.coordinator import AliyunIotAtCoordinator
from custom_components.aliyun_iot_at.core.outbox import UplinkSettings
from testbed.cloud import AliyunCloud, Device, Uplink
from testbed.emulator import ModuleEmulator

from .conftest import DIALECTS, LANDED, SMART_LIGHT
from .helpers import entity_id, state_of, until, wait_state

# Where each module's publish command starts, to make the module fail one.
PUBLISH_COMMANDS = {
    "quectel": "AT+QMTPUBEX",
    "ml302": "AT+ALYMQTTPUB",
    "me3630": "AT+CLOUDPUB",
    "air72x": "AT+MPUBEX",
    "w800": "AT+MQTTPUBRAW",
}
SAVE_DELAY = 0.1
# The cloud logs a message after its broker passed it on, tens of milliseconds later or
# sooner from one message to the next: windows this much shorter than a second absorb that.
# (The sender keeps the pace exactly where messages leave the module: tests/core checks it.)
DELIVERY_JITTER = 0.15
MAX_EVENTS = 15


def _model() -> str:
    """The sample light, with an event whose output tells the order events happened in."""
    doc = json.loads(SMART_LIGHT)
    doc["events"].append(
        {
            "identifier": "Tick",
            "name": "Tick",
            "type": "info",
            "outputData": [
                {
                    "identifier": "Seq",
                    "name": "Seq",
                    "dataType": {"type": "int", "specs": {"min": "0", "max": "100000"}},
                }
            ],
        }
    )
    return json.dumps(doc, ensure_ascii=False)


@pytest.fixture
def dialect() -> str:
    """One dialect where the outbox does not depend on it."""
    return LANDED[0]


@pytest.fixture
def thing_model() -> str:
    return _model()


@pytest.fixture(autouse=True)
def _fast_uplink(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry and save soon; keep fewer events, so the bound is quick to reach."""
    settings = UplinkSettings(retry=(0.1,), max_events=MAX_EVENTS)
    monkeypatch.setattr(aliyun_iot_at, "UPLINK", settings)
    monkeypatch.setattr(aliyun_iot_at, "OUTBOX_SAVE_DELAY", SAVE_DELAY)


# --- helpers ---------------------------------------------------------------------------------


def coordinator_of(entry: MockConfigEntry) -> AliyunIotAtCoordinator:
    coordinator: AliyunIotAtCoordinator = entry.runtime_data.coordinator
    return coordinator


async def set_values(
    hass: HomeAssistant, entry: MockConfigEntry, values: Mapping[str, Any]
) -> None:
    """Values from Home Assistant, through the action (the controls are unavailable while the
    link is down)."""
    await hass.services.async_call(
        DOMAIN,
        "post_properties",
        {"config_entry_id": entry.entry_id, "values": dict(values)},
        blocking=True,
    )


async def tick(hass: HomeAssistant, entry: MockConfigEntry, seq: int) -> None:
    await hass.services.async_call(
        DOMAIN,
        "post_event",
        {"config_entry_id": entry.entry_id, "event": "Tick", "output": {"Seq": seq}},
        blocking=True,
    )


async def take_the_network_away(hass: HomeAssistant, module: ModuleEmulator) -> None:
    """No network (no access point) until ``module.registered`` is set again."""
    module.registered = False
    await module.drop_link()
    link = entity_id(hass, "sensor", "link-state")
    await wait_state(hass, link, lambda state: state.state != "connected")


def ticks(cloud: AliyunCloud, device: Device) -> list[int]:
    """The ``Seq`` of every Tick event the cloud took, in the order it got them."""
    return [
        u.payload["params"]["value"]["Seq"]
        for u in cloud.uplinks(device)
        if u.topic.endswith("/thing/event/Tick/post") and u.payload is not None and u.code == 200
    ]


def posted_values(cloud: AliyunCloud, device: Device) -> dict[str, Any]:
    """Every property value the cloud took, the latest of each."""
    values: dict[str, Any] = {}
    for uplink in cloud.uplinks(device):
        if uplink.kind == "property_post" and uplink.payload is not None and uplink.code == 200:
            values |= uplink.payload["params"]
    return values


def most_in_one_second(uplinks: list[Uplink]) -> int:
    """The most uplinks the cloud received within any one second, less the delivery jitter."""
    times = sorted(u.received for u in uplinks)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0 - DELIVERY_JITTER:
            first += 1
        most = max(most, last - first + 1)
    return most


# --- while the link is down ----------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_changes_while_the_link_is_down_reach_the_cloud_after_it(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    module: ModuleEmulator,
    cloud: AliyunCloud,
    device: Device,
) -> None:
    await take_the_network_away(hass, module)
    for n in range(10):
        await set_values(hass, loaded_entry, {"CurrentTemperature": 20 + n, "PowerSwitch": n % 2})
        await tick(hass, loaded_entry, n)
    # Home Assistant keeps what it has; the cloud has none of it yet.
    assert coordinator_of(loaded_entry).data["CurrentTemperature"] == 29.0
    assert posted_values(cloud, device) == {}

    module.registered = True
    await until(lambda: ticks(cloud, device) == list(range(10)))
    await until(
        lambda: posted_values(cloud, device) == {"CurrentTemperature": 29.0, "PowerSwitch": 1}
    )


async def test_the_outbox_is_bounded_dropping_the_oldest_events(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    module: ModuleEmulator,
    cloud: AliyunCloud,
    device: Device,
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox = coordinator_of(loaded_entry).sender.outbox
    await take_the_network_away(hass, module)
    with caplog.at_level(logging.WARNING):
        for n in range(3 * MAX_EVENTS):
            await tick(hass, loaded_entry, n)
            await set_values(hass, loaded_entry, {"RealTimePower": n})
            # Memory does not grow with the outage: one value per property, the newest events.
            assert len(outbox.events) <= MAX_EVENTS
            assert len(outbox.properties) <= 1
    drops = [r for r in caplog.records if "dropping the oldest" in r.getMessage()]
    assert len(drops) == 1  # said once, not per dropped event

    module.registered = True
    newest = list(range(2 * MAX_EVENTS, 3 * MAX_EVENTS))
    await until(lambda: ticks(cloud, device) == newest)
    await until(lambda: posted_values(cloud, device) == {"RealTimePower": 3 * MAX_EVENTS - 1})


# --- across a restart --------------------------------------------------------------------------


async def test_what_waits_is_saved_and_sent_after_a_restart(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    loaded_entry: MockConfigEntry,
    module: ModuleEmulator,
    cloud: AliyunCloud,
    device: Device,
) -> None:
    key = f"{DOMAIN}.{loaded_entry.entry_id}.outbox"
    await take_the_network_away(hass, module)
    await set_values(hass, loaded_entry, {"CurrentTemperature": 21.5, "Brightness": 40})
    await tick(hass, loaded_entry, 1)
    # Saved soon after, without waiting for Home Assistant to stop (a power cut loses nothing).
    await until(lambda: bool(hass_storage.get(key, {}).get("data", {}).get("events")))
    await tick(hass, loaded_entry, 2)

    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    saved = hass_storage[key]["data"]
    assert saved["properties"] == {"CurrentTemperature": 21.5, "Brightness": 40}
    assert [e["output"]["Seq"] for e in saved["events"]] == [1, 2]

    module.registered = True
    assert await hass.config_entries.async_setup(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.LOADED
    # Home Assistant shows the values it had, and the cloud gets them and the events.
    assert state_of(hass, "sensor", "CurrentTemperature").state == "21.5"
    await until(lambda: ticks(cloud, device) == [1, 2])
    await until(
        lambda: posted_values(cloud, device) == {"CurrentTemperature": 21.5, "Brightness": 40}
    )
    # Once sent, the saved copy is emptied: the next restart sends nothing twice.
    await until(lambda: hass_storage[key]["data"] == {"properties": {}, "events": []})


async def test_a_saved_outbox_from_an_older_model_keeps_what_still_fits(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    config_entry: MockConfigEntry,
    cloud: AliyunCloud,
    device: Device,
) -> None:
    hass_storage[f"{DOMAIN}.{config_entry.entry_id}.outbox"] = {
        "version": 1,
        "key": f"{DOMAIN}.{config_entry.entry_id}.outbox",
        "data": {
            "properties": {"RealTimePower": 12.5, "Removed": 1, "Brightness": 500},
            "events": [
                {"event": "Tick", "output": {"Seq": 7}, "time": 1_700_000_000_000},
                {"event": "Removed", "output": {}, "time": 1_700_000_000_000},
            ],
        },
    }
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()

    await until(lambda: ticks(cloud, device) == [7])
    await until(lambda: posted_values(cloud, device) == {"RealTimePower": 12.5})
    event = next(u for u in cloud.uplinks(device) if u.kind == "event_post")
    assert event.payload is not None
    assert event.payload["params"]["time"] == 1_700_000_000_000  # when it happened


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_publish_the_module_fails_is_retried(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    module: ModuleEmulator,
    cloud: AliyunCloud,
    device: Device,
    dialect: str,
) -> None:
    command = PUBLISH_COMMANDS[dialect]
    module.fail_next(command, "ERROR")

    await tick(hass, loaded_entry, 1)

    await until(lambda: ticks(cloud, device) == [1])
    tried = [line for line in module.received if line.upper().startswith(command)]
    assert len(tried) >= 2  # refused once, then sent
    await asyncio.sleep(0.3)
    assert ticks(cloud, device) == [1]  # once: nothing is sent twice


async def test_a_post_the_cloud_refuses_is_logged_and_not_sent_again(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    cloud: AliyunCloud,
    device: Device,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cloud.refuse_posts(device, 6106, "the property is not in the thing model")

    await set_values(hass, loaded_entry, {"CurrentTemperature": 30})

    await until(lambda: coordinator_of(loaded_entry).last_refused is not None)
    assert "6106" in caplog.text
    assert "the property is not in the thing model" in caplog.text
    await asyncio.sleep(1.0)  # ten retry delays
    posts = [u for u in cloud.uplinks(device) if u.kind == "property_post"]
    assert [(u.code, u.payload and u.payload["params"]) for u in posts] == [
        (6106, {"CurrentTemperature": 30.0})
    ]


async def test_a_cloud_set_that_cannot_be_applied_is_answered_with_an_error(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, cloud: AliyunCloud, device: Device
) -> None:
    refused: list[dict[str, Any]] = [
        {"Brightness": 50, "CurrentTemperature": 20},  # read-only, with a valid one
        {"Brightness": 101},  # out of range
        {"Nope": 1},  # not in the model
        {"WorkMode": "2"},  # the wrong type
    ]
    for params in refused:
        msg_id = await cloud.set_properties(device, params)
        reply = await cloud.wait_reply(device, msg_id)
        assert reply["code"] == 460, params
    assert state_of(hass, "number", "Brightness").state == STATE_UNKNOWN
    # Nothing was applied, so nothing is reported back.
    await asyncio.sleep(0.3)
    assert posted_values(cloud, device) == {}

    msg_id = await cloud.set_properties(device, {"Brightness": 50})
    assert (await cloud.wait_reply(device, msg_id))["code"] == 200
    await wait_state(hass, entity_id(hass, "number", "Brightness"), "50")
    await until(lambda: posted_values(cloud, device) == {"Brightness": 50})


# --- pacing ------------------------------------------------------------------------------------


async def test_a_burst_is_paced_below_the_limit_and_every_final_value_arrives(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    cloud: AliyunCloud,
    device: Device,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Below what the emulated module manages here (debug logging slows it to about ten a
    # second), so that the limit, not the module, sets the pace.
    rate = 5
    monkeypatch.setattr(aliyun_iot_at, "UPLINK", UplinkSettings(rate=rate))
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    loop = asyncio.get_running_loop()

    for n in range(1000):
        await set_values(hass, config_entry, {"CurrentTemperature": n % 100, "RealTimePower": n})
        if n % 100 == 0:
            await tick(hass, config_entry, n // 100)
    burst_end = loop.time()

    final = {"CurrentTemperature": 99.0, "RealTimePower": 999.0}
    await until(lambda: posted_values(cloud, device) == final)
    final_at = max(u.received for u in cloud.uplinks(device) if u.kind == "property_post")
    await until(lambda: ticks(cloud, device) == list(range(10)))

    uplinks = cloud.uplinks(device)
    assert most_in_one_second(uplinks) <= rate
    times = sorted(u.received for u in uplinks)
    assert times[-1] - times[0] >= (len(times) - rate) / rate - 0.1  # paced, not at once
    # The thousand changes went up in as many posts as the rate let through, not one each;
    # the last values soon after.
    assert (
        len([u for u in uplinks if u.kind == "property_post"])
        <= rate * (times[-1] - times[0] + 1)
        < 100
    )
    assert final_at - burst_end < 2.0


async def test_message_ids_do_not_repeat_after_a_restart(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, cloud: AliyunCloud, device: Device
) -> None:
    def ids() -> set[str]:
        return {u.payload["id"] for u in cloud.uplinks(device) if u.payload is not None}

    await tick(hass, loaded_entry, 1)
    await until(lambda: len(ids()) == 1)
    before = ids()
    assert await hass.config_entries.async_reload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    await cloud.wait_online(device)

    await tick(hass, loaded_entry, 2)
    await until(lambda: ticks(cloud, device) == [1, 2])
    assert len(ids()) == 2  # the second run did not start over at the first run's ids
    assert before < ids()

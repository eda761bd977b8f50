"""A representative part of the fault matrix through Home Assistant: the entities go
unavailable and come back by themselves, and both directions work again afterwards."""

from __future__ import annotations

import time

from homeassistant.const import ATTR_ENTITY_ID, SERVICE_TURN_OFF, SERVICE_TURN_ON, Platform
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.aliyun_iot_at.const import DOMAIN
from testbed.cloud import AliyunCloud, Device
from testbed.cloud.auth import AuthFailure, AuthLog
from testbed.emulator import ModuleEmulator
from tests.conftest import SecretsInUse
from tests.e2e.conftest import DN, PK
from tests.integration.helpers import until

from .bench import assert_nothing_left_behind, expected_subscriptions
from .conftest import SLOWEST
from .ha import StateLog, entity_id
from .matrix import Case, cases

OTHER_SECRET = "Kq7" * 11


async def _recovered(
    hass: HomeAssistant, cloud: AliyunCloud, device: Device, log: StateLog, ptys_before: int
) -> None:
    """Unavailable, then back; subscribed once; the cloud reaches the entity and the entity
    the cloud."""
    await log.unavailable_then_back()
    await cloud.wait_online(device)
    assert cloud.subscriptions(device) == expected_subscriptions()
    power = entity_id(hass, "switch", "PowerSwitch")
    await hass.services.async_call(
        Platform.SWITCH, SERVICE_TURN_OFF, {ATTR_ENTITY_ID: power}, blocking=True
    )
    await cloud.wait_post(device, lambda post: post["params"].get("PowerSwitch") == 0)
    # Off now (it came back on), so the cloud's set has something to change.
    seen = len(log.states)
    msg_id = await cloud.set_properties(device, {"PowerSwitch": 1})
    assert (await cloud.wait_reply(device, msg_id))["code"] == 200
    await log.wait_for(lambda states: "on" in states[seen:])
    assert_nothing_left_behind(ptys_before)


async def _power_on(hass: HomeAssistant, cloud: AliyunCloud, device: Device) -> StateLog:
    """The switch on, known to both sides; what it goes through from now on."""
    power = entity_id(hass, "switch", "PowerSwitch")
    await hass.services.async_call(
        Platform.SWITCH, SERVICE_TURN_ON, {ATTR_ENTITY_ID: power}, blocking=True
    )
    await cloud.wait_post(device, lambda post: post["params"].get("PowerSwitch") == 1)
    return StateLog(hass, power)


@pytest.mark.parametrize("case", cases("cloud_kick", ha=True))
@pytest.mark.usefixtures("ha_entry")
async def test_cloud_kick(
    case: Case, hass: HomeAssistant, cloud: AliyunCloud, device: Device, ptys_before_link: int
) -> None:
    log = await _power_on(hass, cloud, device)
    assert await cloud.kick(device)
    await _recovered(hass, cloud, device, log, ptys_before_link)
    log.close()


@pytest.mark.parametrize("case", cases("module_restart", ha=True))
@pytest.mark.usefixtures("ha_entry")
async def test_module_restart(
    case: Case,
    hass: HomeAssistant,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    ptys_before_link: int,
) -> None:
    log = await _power_on(hass, cloud, device)
    await module.restart()
    await _recovered(hass, cloud, device, log, ptys_before_link)
    log.close()


@pytest.mark.parametrize("case", cases("port_replug", ha=True))
@pytest.mark.usefixtures("ha_entry")
async def test_port_replug(
    case: Case,
    hass: HomeAssistant,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    ptys_before_link: int,
) -> None:
    log = await _power_on(hass, cloud, device)
    await module.unplug()
    await log.wait_for(lambda states: "unavailable" in states)
    await module.replug()
    await _recovered(hass, cloud, device, log, ptys_before_link)
    log.close()


@pytest.fixture
def refused_at(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When the cloud refused each login (``time.monotonic``), taken as it refuses: a
    waiter's clock would run late whenever the loop is busy, and so shorten the gaps."""
    times: list[float] = []
    record = AuthLog.record

    def stamped(log: AuthLog, failure: AuthFailure) -> None:
        times.append(time.monotonic())
        record(log, failure)

    monkeypatch.setattr(AuthLog, "record", stamped)
    return times


async def _refusals(refused_at: list[float], count: int) -> float:
    """Seconds from the next refused login to the ``count``-th."""
    start = len(refused_at)
    await until(lambda: len(refused_at) - start >= count)
    return refused_at[start + count - 1] - refused_at[start]


@pytest.mark.parametrize("case", cases("auth_refused", ha=True))
async def test_auth_refused(
    case: Case,
    hass: HomeAssistant,
    ha_entry: MockConfigEntry,
    cloud: AliyunCloud,
    device: Device,
    ptys_before_link: int,
    secrets_in_use: SecretsInUse,
    refused_at: list[float],
) -> None:
    secrets_in_use.add(OTHER_SECRET)
    log = await _power_on(hass, cloud, device)
    cloud.add_device(PK, DN, OTHER_SECRET)  # reset in the console: the entry's is refused
    assert await cloud.kick(device)
    # Refused logins are retried at the slowest pace only, so the cloud does not throttle.
    assert await _refusals(refused_at, 3) >= 2 * SLOWEST
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == ["reauth"]
    assert flows[0]["context"]["entry_id"] == ha_entry.entry_id
    cloud.add_device(PK, DN, device.device_secret)  # the reset undone
    await _recovered(hass, cloud, device, log, ptys_before_link)
    log.close()

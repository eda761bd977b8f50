"""W800 end to end: the link drives the emulated module over a pty to the local cloud."""

from __future__ import annotations

import pytest

from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

from .conftest import Session, a_set_arrives, lose_and_recover


@pytest.fixture
def dialect() -> str:
    return "w800"


async def test_a_kicked_session_is_noticed_by_urc_and_restored(
    cloud: AliyunCloud, device: Device, session: Session
) -> None:
    # The health check runs every 60 s: only the URC can tell the link this quickly.
    error = await lose_and_recover(session, cloud, device, lambda: cloud.kick(device))
    assert "+MQTTDISCONNECTED" in str(error)
    await a_set_arrives(session, cloud, device)


async def test_a_dropped_wifi_uplink_is_noticed(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    error = await lose_and_recover(session, cloud, device, module.drop_link)
    assert "+MQTTDISCONNECTED" in str(error)


async def test_there_is_no_sim_to_be_missing(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    """A Wi-Fi module has no SimNotReady case: the SIM knob changes nothing."""
    module.sim_ready = False
    await session.link.connect_once()
    assert cloud.is_online(device)
    assert not any(line.startswith(("AT+CPIN", "AT+CEREG", "AT+CREG")) for line in module.received)

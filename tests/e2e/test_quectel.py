"""Quectel end to end: the link drives the emulated EC600S over a pty to the local cloud.

The module announces a lost session with ``+QMTSTAT``: the link notices at once, without
waiting for its health check.
"""

from __future__ import annotations

import pytest

from custom_components.aliyun_iot_at.core import alink
from custom_components.aliyun_iot_at.core.dialects.base import Endpoint
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

from .conftest import HOST, TOPICS, Session, Sessions, a_set_arrives, lose_and_recover


@pytest.fixture
def dialect() -> str:
    return "quectel"


async def test_a_qos1_post_is_acknowledged(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    await session.link.connect_once()
    await session.link.publish(TOPICS.property_post, alink.property_post("8", {"a": 1}), qos=1)
    assert (await cloud.wait_post(device))["id"] == "8"
    [sent] = [line for line in module.received if line.startswith("AT+QMTPUBEX")]
    assert sent.startswith(f'AT+QMTPUBEX=0,{len(TOPICS.subscriptions()) + 1},1,0,"')


async def test_a_dropped_link_is_noticed_by_urc_and_restored(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    error = await lose_and_recover(session, cloud, device, module.drop_link)  # PDP context too
    assert "+QMTSTAT: 0,2 (sending PINGREQ timed out or failed)" in str(error)
    assert module.received.count("AT+QIACT=1") == 2  # activated again


async def test_a_kicked_session_is_noticed_by_urc_and_restored(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    error = await lose_and_recover(session, cloud, device, lambda: cloud.kick(device))
    assert "+QMTSTAT: 0,1 (connection closed or reset by the peer)" in str(error)
    assert "AT+QIACT?" in module.received  # the context was still up: ERROR, then checked
    await a_set_arrives(session, cloud, device)


async def test_a_reboot_sets_the_volatile_configuration_again(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    # RDY: the QMTCFG settings and the PDP context are gone.
    await lose_and_recover(session, cloud, device, module.restart)
    assert module.received.count('AT+QMTCFG="recv/mode",0,0,1') == 2
    await a_set_arrives(session, cloud, device)


async def test_tls_is_asked_of_the_module(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, sessions: Sessions
) -> None:
    await sessions.new(endpoint=Endpoint(tls=True)).link.connect_once()
    assert module.mqtt.target == (HOST, 443, True)
    assert 'AT+QMTCFG="ssl",0,1,2' in module.received
    assert cloud.is_online(device)

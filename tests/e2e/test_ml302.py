"""ML302 end to end: the link drives the emulated module over a pty to the local cloud.

The ML302 announces no session loss: the link finds out by its health probe (a tiny NTP
request) or by a failed publish.
"""

from __future__ import annotations

import pytest

from custom_components.aliyun_iot_at.core.errors import PublishFailed
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

from .conftest import DN, PK, TOPICS, Session, lose_and_recover

PROBE = f'AT+ALYMQTTPUB="/ext/ntp/{PK}/{DN}/request"'


@pytest.fixture
def dialect() -> str:
    return "ml302"


async def test_a_dropped_link_is_found_by_the_probe_and_restored(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, watched: Session
) -> None:
    await lose_and_recover(watched, cloud, device, module.drop_link)  # silently: no URC
    assert any(line.startswith(PROBE) for line in module.received)


async def test_a_kicked_session_is_found_by_a_failed_publish(
    cloud: AliyunCloud, device: Device, session: Session
) -> None:
    async def kick_then_publish() -> None:  # no probe in a test's time: the publish tells
        assert await cloud.kick(device)
        with pytest.raises(PublishFailed, match="700 \\(network error\\)"):
            # QoS 1 waits for the PUBACK, which cannot come: it fails once the module notices.
            await session.link.publish(TOPICS.property_post, b'{"id":"1","params":{}}', qos=1)

    await lose_and_recover(session, cloud, device, kick_then_publish)


async def test_a_reboot_sets_the_volatile_configuration_again(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    # RDY: the connect and MQTT configuration are back to their defaults.
    await lose_and_recover(session, cloud, device, module.restart)
    assert module.received.count("AT+ALYMQTTCFG=1,5000,300000") == 2

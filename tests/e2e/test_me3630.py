"""ME3630 end to end: the link drives the emulated module over a pty to the local cloud.

The ME3630 announces no session loss: the link finds out by its health probe or by a failed
publish.
"""

from __future__ import annotations

import pytest

from custom_components.aliyun_iot_at.core import alink
from custom_components.aliyun_iot_at.core.dialects.base import DeviceIdentity
from custom_components.aliyun_iot_at.core.errors import PublishFailed, UnsafeValue
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

from .conftest import DS, PK, TOPICS, Session, Sessions, a_set_arrives, lose_and_recover


@pytest.fixture
def dialect() -> str:
    return "me3630"


async def test_a_silent_drop_is_found_by_the_probe_and_restored(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, watched: Session
) -> None:
    await lose_and_recover(watched, cloud, device, module.drop_link)
    await a_set_arrives(watched, cloud, device)


async def test_a_kick_is_found_by_the_probe_and_restored(
    cloud: AliyunCloud, device: Device, watched: Session
) -> None:
    await lose_and_recover(watched, cloud, device, lambda: cloud.kick(device))


async def test_a_failed_publish_reveals_the_drop(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    async def drop_then_publish() -> None:  # probes only every minute: the publish tells
        await module.drop_link()
        with pytest.raises(PublishFailed, match=r"\+CME ERROR: 3"):
            await session.link.publish(TOPICS.property_post, alink.property_post("8", {}))

    await lose_and_recover(session, cloud, device, drop_then_publish)


async def test_device_name_too_long_for_the_alink_topics(
    cloud: AliyunCloud, module: ModuleEmulator, sessions: Sessions
) -> None:
    name = "d" * 32
    cloud.add_device(PK, name, DS)
    with pytest.raises(UnsafeValue, match="at most 64 bytes"):
        await sessions.new(identity=DeviceIdentity(PK, name, DS)).link.connect_once()
    assert not any(line.startswith("AT+CLOUDSUB") for line in module.received)

"""ME3630 end to end: the link drives the emulated module over a pty to the local cloud."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
import json
from pathlib import Path

import pytest

from custom_components.aliyun_iot_at.core import alink
from custom_components.aliyun_iot_at.core.dialects import me3630
from custom_components.aliyun_iot_at.core.dialects.base import (
    DeviceIdentity,
    InboundMessage,
    LinkSettings,
)
from custom_components.aliyun_iot_at.core.errors import (
    AtError,
    AuthRefused,
    NoNetwork,
    PublishFailed,
    SimNotReady,
    UnsafeValue,
)
from custom_components.aliyun_iot_at.core.link import Link, LinkState, PortSettings
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

PK = "a1ME3630tst"
DN = "me3630-e2e"
DS = "Vb3kQ9sLx2TfR7mNp4Wc8Hy6Jd1Gz5Ae"
IDENTITY = DeviceIdentity(PK, DN, DS)
TOPICS = alink.Topics(PK, DN)

# Small fixtures of this file until a shared tests/e2e/conftest.py provides them.


@pytest.fixture
def device(cloud: AliyunCloud) -> Device:
    return cloud.add_device(PK, DN, DS)


@pytest.fixture
async def module(tmp_path: Path, cloud: AliyunCloud) -> AsyncIterator[ModuleEmulator]:
    async with ModuleEmulator(
        "me3630", link=tmp_path / "ttyME3630", mqtt_port=cloud.mqtt_port
    ) as emu:
        yield emu


class Session:
    """A link to the module, its states and the messages it delivered."""

    def __init__(
        self,
        module: ModuleEmulator,
        identity: DeviceIdentity = IDENTITY,
        health_interval: float = 60.0,
    ) -> None:
        self.inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
        self.states: list[LinkState] = []
        self._changed = asyncio.Event()
        self.link = Link(
            PortSettings(str(module.path)),
            "me3630",
            LinkSettings(identity),
            alink.Topics(identity.product_key, identity.device_name).subscriptions(),
            on_message=self.inbox.put_nowait,
            on_state=self._on_state,
            backoff=(0.05,),
            health_interval=health_interval,
        )

    def _on_state(self, state: LinkState, error: AtError | None) -> None:
        self.states.append(state)
        self._changed.set()

    async def wait_for(self, state: LinkState, timeout: float = 5.0) -> None:
        """Until the link enters ``state`` (again: earlier visits are consumed)."""
        async with asyncio.timeout(timeout):
            while state not in self.states:
                self._changed.clear()
                await self._changed.wait()
        del self.states[: self.states.index(state) + 1]

    async def next_message(self) -> InboundMessage:
        async with asyncio.timeout(5):
            return await self.inbox.get()


@pytest.fixture
async def session(module: ModuleEmulator) -> AsyncIterator[Session]:
    running = Session(module)
    yield running
    await running.link.stop()


@pytest.fixture
async def watched(module: ModuleEmulator) -> AsyncIterator[Session]:
    """A supervised link that probes the session often: the ME3630 announces no loss."""
    running = Session(module, health_interval=0.1)
    yield running
    await running.link.stop()


@pytest.fixture
def quick_attach(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator answers at once; only the retry budget of SIM and network polls is cut
    from 20/60 s, so a failure is reported without waiting for it."""
    monkeypatch.setattr(me3630, "ATTACH", tuple(replace(s, poll=0.0) for s in me3630.ATTACH))


async def test_property_set_and_post_round_trip(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    await session.link.connect_once()
    assert cloud.is_online(device)
    assert module.mqtt.target == (f"{PK}.iot-as-mqtt.cn-shanghai.aliyuncs.com", 1883, False)

    msg_id = await cloud.set_properties(device, {"PowerSwitch": 1})
    expected = {
        "id": msg_id,
        "version": "1.0",
        "params": {"PowerSwitch": 1},
        "method": "thing.service.property.set",
    }
    assert await session.next_message() == InboundMessage(
        TOPICS.property_set, json.dumps(expected, separators=(",", ":")).encode()
    )

    await session.link.publish(TOPICS.property_post, alink.property_post("7", {"PowerSwitch": 0}))
    post = await cloud.wait_post(device)
    assert (post["id"], post["params"], post["method"]) == (
        "7",
        {"PowerSwitch": 0},
        "thing.event.property.post",
    )
    assert cloud.uplinks(device)[-1].topic == TOPICS.property_post
    reply = await session.next_message()  # through thing/event/+/post_reply
    assert reply.topic == TOPICS.property_post_reply
    assert json.loads(reply.payload)["code"] == 200


async def test_a_silent_drop_is_found_by_the_probe_and_restored(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, watched: Session
) -> None:
    watched.link.start()
    await watched.wait_for(LinkState.CONNECTED)
    await module.drop_link()
    await watched.wait_for(LinkState.DISCONNECTED)
    await watched.wait_for(LinkState.CONNECTED)
    await cloud.wait_online(device)
    msg_id = await cloud.set_properties(device, {"PowerSwitch": 0})
    assert msg_id in (await watched.next_message()).payload.decode()


async def test_a_kick_is_found_by_the_probe_and_restored(
    cloud: AliyunCloud, device: Device, watched: Session
) -> None:
    watched.link.start()
    await watched.wait_for(LinkState.CONNECTED)
    assert await cloud.kick(device)
    await watched.wait_for(LinkState.DISCONNECTED)
    await watched.wait_for(LinkState.CONNECTED)
    await cloud.wait_online(device)


async def test_a_failed_publish_reveals_the_drop(
    device: Device, module: ModuleEmulator, session: Session
) -> None:
    session.link.start()  # probes only every minute: the publish must find out
    await session.wait_for(LinkState.CONNECTED)
    await module.drop_link()
    with pytest.raises(PublishFailed, match=r"\+CME ERROR: 3"):
        await session.link.publish(TOPICS.property_post, alink.property_post("8", {}))
    await session.wait_for(LinkState.DISCONNECTED)
    await session.wait_for(LinkState.CONNECTED)


async def test_wrong_secret_is_refused(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator
) -> None:
    session = Session(module, DeviceIdentity(PK, DN, "x" * 32))
    try:
        with pytest.raises(AuthRefused):
            await session.link.connect_once()
    finally:
        await session.link.stop()
    assert not cloud.is_online(device)
    assert cloud.auth_failures[-1].reason == "password is not the device's sign"


@pytest.mark.usefixtures("device", "quick_attach")
async def test_sim_not_ready(module: ModuleEmulator, session: Session) -> None:
    module.sim_ready = False
    with pytest.raises(SimNotReady):
        await session.link.connect_once()


@pytest.mark.usefixtures("device", "quick_attach")
async def test_no_network(module: ModuleEmulator, session: Session) -> None:
    module.registered = False
    with pytest.raises(NoNetwork, match="NO SERVICE"):
        await session.link.connect_once()


async def test_device_name_too_long_for_the_alink_topics(
    cloud: AliyunCloud, module: ModuleEmulator
) -> None:
    name = "d" * 32
    cloud.add_device(PK, name, DS)
    session = Session(module, DeviceIdentity(PK, name, DS))
    try:
        with pytest.raises(UnsafeValue, match="at most 64 bytes"):
            await session.link.connect_once()
    finally:
        await session.link.stop()
    assert not any(line.startswith("AT+CLOUDSUB") for line in module.received)

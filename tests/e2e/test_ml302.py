"""ML302 end to end: the link drives the emulated module over a pty to the local cloud.

The ML302 announces no session loss: the link finds out by its health probe (a tiny NTP
request) or by a failed publish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
import json
from pathlib import Path

import pytest

from custom_components.aliyun_iot_at.core.dialects import ml302
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
)
from custom_components.aliyun_iot_at.core.link import Link, LinkState, PortSettings
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

PK = "a1pnQWj9dvs"
DN = "ml302-e2e"
DS = "C5LTDEyQj6wMXh8KaNICzvCSgi69Ysj8"
SYS = f"/sys/{PK}/{DN}/"
PROPERTY_SET = f"{SYS}thing/service/property/set"
PROPERTY_POST = f"{SYS}thing/event/property/post"
TOPICS = (PROPERTY_SET, f"{SYS}thing/event/+/post_reply", f"{SYS}thing/service/+")
PROBE = f'AT+ALYMQTTPUB="/ext/ntp/{PK}/{DN}/request"'

# Small fixtures of this file until a shared tests/e2e/conftest.py provides them.


@pytest.fixture
def device(cloud: AliyunCloud) -> Device:
    return cloud.add_device(PK, DN, DS)


@pytest.fixture
async def module(tmp_path: Path, cloud: AliyunCloud) -> AsyncIterator[ModuleEmulator]:
    emulator = ModuleEmulator("ml302", link=tmp_path / "ttyML302", mqtt_port=cloud.mqtt_port)
    async with emulator:
        yield emulator


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The attach steps give up at their first failure instead of waiting for the network."""
    monkeypatch.setattr(ml302, "ATTACH", tuple(replace(step, poll=0.0) for step in ml302.ATTACH))


class Session:
    """A link to the module, the messages it delivered and the states it went through."""

    def __init__(
        self, module: ModuleEmulator, secret: str = DS, health_interval: float = 0.2
    ) -> None:
        self.inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
        self.states: list[LinkState] = []
        self._changed = asyncio.Event()
        self.link = Link(
            PortSettings(str(module.path)),
            "ml302",
            LinkSettings(DeviceIdentity(PK, DN, secret)),
            TOPICS,
            on_message=self.inbox.put_nowait,
            on_state=self._on_state,
            backoff=(0.05,),
            health_interval=health_interval,
        )

    def _on_state(self, state: LinkState, error: AtError | None) -> None:
        self.states.append(state)
        self._changed.set()

    async def wait_for(self, state: LinkState, timeout: float = 5.0) -> None:
        """Until the link enters ``state`` (earlier visits are consumed)."""
        async with asyncio.timeout(timeout):
            while state not in self.states:
                self._changed.clear()
                await self._changed.wait()
        del self.states[: self.states.index(state) + 1]

    async def next_message(self) -> InboundMessage:
        async with asyncio.timeout(5):
            return await self.inbox.get()


@pytest.fixture
async def sessions() -> AsyncIterator[list[Session]]:
    """Sessions a test makes itself; stopped after it."""
    made: list[Session] = []
    yield made
    for running in made:
        await running.link.stop()


@pytest.fixture
def session(module: ModuleEmulator, sessions: list[Session]) -> Session:
    sessions.append(Session(module))
    return sessions[-1]


def cloud_json(payload: Mapping[str, object]) -> bytes:
    """What the cloud puts on the wire."""
    return json.dumps(payload, separators=(",", ":")).encode()


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
    assert await session.next_message() == InboundMessage(PROPERTY_SET, cloud_json(expected))

    post = {
        "id": "7",
        "version": "1.0",
        "params": {"PowerSwitch": 0, "Label": "温度, 高"},
        "method": "thing.event.property.post",
    }
    payload = json.dumps(post, separators=(",", ":"), ensure_ascii=False).encode()
    await session.link.publish(PROPERTY_POST, payload)
    assert await cloud.wait_post(device) == post
    assert cloud.uplinks(device)[-1].topic == PROPERTY_POST
    reply = await session.next_message()  # the cloud's post_reply, through the + filter
    assert reply.topic == f"{PROPERTY_POST}_reply"
    assert json.loads(reply.payload)["code"] == 200


async def test_quotes_and_commas_arrive_whole(
    cloud: AliyunCloud, device: Device, session: Session
) -> None:
    await session.link.connect_once()
    params = {"Label": 'say "hi", then {bye}', "List": [1, 2]}
    msg_id = await cloud.set_properties(device, params)
    message = await session.next_message()
    assert json.loads(message.payload)["params"] == params
    assert message.payload == cloud_json(
        {"id": msg_id, "version": "1.0", "params": params, "method": "thing.service.property.set"}
    )


async def test_a_dropped_link_is_found_by_the_probe_and_restored(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    session.link.start()
    await session.wait_for(LinkState.CONNECTED)
    await module.drop_link()  # silently: no URC
    await session.wait_for(LinkState.DISCONNECTED)
    assert any(line.startswith(PROBE) for line in module.received)
    await session.wait_for(LinkState.CONNECTED)
    await cloud.wait_online(device)


async def test_a_kicked_session_is_found_by_a_failed_publish(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, sessions: list[Session]
) -> None:
    session = Session(module, health_interval=3600)  # no probe in time: only the publish tells
    sessions.append(session)
    session.link.start()
    await session.wait_for(LinkState.CONNECTED)
    assert await cloud.kick(device)
    with pytest.raises(PublishFailed, match="700 \\(network error\\)"):
        # QoS 1 waits for the PUBACK, which cannot come: it fails whenever the module notices.
        await session.link.publish(PROPERTY_POST, b'{"id":"1","params":{}}', qos=1)
    await session.wait_for(LinkState.DISCONNECTED)
    await session.wait_for(LinkState.CONNECTED)
    await cloud.wait_online(device)


async def test_a_reboot_sets_the_volatile_configuration_again(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    session.link.start()
    await session.wait_for(LinkState.CONNECTED)
    await module.restart()  # RDY: the connect and MQTT configuration are back to defaults
    await session.wait_for(LinkState.DISCONNECTED)
    await session.wait_for(LinkState.CONNECTED)
    await cloud.wait_online(device)
    assert module.received.count("AT+ALYMQTTCFG=1,5000,300000") == 2


async def test_a_wrong_secret_is_auth_refused(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, sessions: list[Session]
) -> None:
    sessions.append(Session(module, secret="0" * 32))
    with pytest.raises(AuthRefused):
        await sessions[-1].link.connect_once()
    assert not cloud.is_online(device)
    assert [failure.username for failure in cloud.auth_failures] == [f"{DN}&{PK}"]


@pytest.mark.usefixtures("fast_polls", "device")
async def test_sim_not_ready(module: ModuleEmulator, session: Session) -> None:
    module.sim_ready = False
    with pytest.raises(SimNotReady):
        await session.link.connect_once()


@pytest.mark.usefixtures("fast_polls", "device")
async def test_no_network(module: ModuleEmulator, session: Session) -> None:
    module.registered = False
    with pytest.raises(NoNetwork):
        await session.link.connect_once()

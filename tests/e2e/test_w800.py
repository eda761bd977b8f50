"""W800 end to end: the link drives the emulated module over a pty to the local cloud."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import json
from pathlib import Path

import pytest

from custom_components.aliyun_iot_at.core import alink
from custom_components.aliyun_iot_at.core.dialects.base import (
    DeviceIdentity,
    InboundMessage,
    LinkSettings,
)
from custom_components.aliyun_iot_at.core.errors import AtError, AuthRefused, NoNetwork
from custom_components.aliyun_iot_at.core.link import Link, LinkState, PortSettings
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

PK = "a1W800test1"
DN = "w800-e2e"
DS = "7Xz2fd0ALsUKaDbmpQyRJY8UcjNn3dFe"
TOPICS = alink.Topics(PK, DN)

# Small fixtures of this file until a shared tests/e2e/conftest.py provides them.


@pytest.fixture
def device(cloud: AliyunCloud) -> Device:
    return cloud.add_device(PK, DN, DS)


@pytest.fixture
async def module(tmp_path: Path, cloud: AliyunCloud) -> AsyncIterator[ModuleEmulator]:
    async with ModuleEmulator("w800", link=tmp_path / "ttyW800", mqtt_port=cloud.mqtt_port) as emu:
        yield emu


class Session:
    """A link to the module and the messages it delivered."""

    def __init__(self, module: ModuleEmulator, secret: str = DS) -> None:
        self.inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
        self.states: list[LinkState] = []
        self.errors: list[Exception] = []
        self._changed = asyncio.Event()
        self.link = Link(
            PortSettings(str(module.path)),
            "w800",
            LinkSettings(DeviceIdentity(PK, DN, secret)),
            TOPICS.subscriptions(),
            on_message=self.inbox.put_nowait,
            on_state=self._on_state,
            backoff=(0.05,),
        )

    def _on_state(self, state: LinkState, error: AtError | None) -> None:
        self.states.append(state)
        if error is not None:
            self.errors.append(error)
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


async def test_property_set_and_post_round_trip(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    await session.link.connect_once()
    assert cloud.is_online(device)
    assert module.mqtt.target == (f"{PK}.iot-as-mqtt.cn-shanghai.aliyuncs.com", 1883, False)

    msg_id = await cloud.set_properties(device, {"PowerSwitch": 1})
    message = await session.next_message()
    expected = {
        "id": msg_id,
        "version": "1.0",
        "params": {"PowerSwitch": 1},
        "method": "thing.service.property.set",
    }
    assert message == InboundMessage(
        TOPICS.property_set, json.dumps(expected, separators=(",", ":")).encode()
    )

    await session.link.publish(TOPICS.property_post, alink.property_post("7", {"PowerSwitch": 0}))
    post = await cloud.wait_post(device)
    assert post["id"] == "7"
    assert post["params"] == {"PowerSwitch": 0}
    assert post["method"] == "thing.event.property.post"
    uplink = cloud.uplinks(device)[-1]
    assert uplink.topic == TOPICS.property_post
    reply = await session.next_message()  # the cloud's post_reply, through the + filter
    assert reply.topic == TOPICS.property_post_reply
    assert json.loads(reply.payload)["code"] == 200


async def test_a_kicked_session_is_noticed_by_urc_and_restored(
    cloud: AliyunCloud, device: Device, session: Session
) -> None:
    session.link.start()
    await session.wait_for(LinkState.CONNECTED)
    await cloud.kick(device)
    # The health check runs every 60 s: only the URC can tell the link this quickly.
    await session.wait_for(LinkState.DISCONNECTED)
    assert "+MQTTDISCONNECTED" in str(session.errors[-1])
    await session.wait_for(LinkState.CONNECTED)
    await cloud.wait_online(device)
    msg_id = await cloud.set_properties(device, {"PowerSwitch": 0})
    assert json.loads((await session.next_message()).payload)["id"] == msg_id


async def test_a_dropped_wifi_uplink_is_noticed(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    session.link.start()
    await session.wait_for(LinkState.CONNECTED)
    await module.drop_link()
    await session.wait_for(LinkState.DISCONNECTED)
    assert "+MQTTDISCONNECTED" in str(session.errors[-1])
    await session.wait_for(LinkState.CONNECTED)
    await cloud.wait_online(device)


async def test_wrong_secret_is_refused(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator
) -> None:
    wrong = Session(module, secret="0" * 32)
    try:
        with pytest.raises(AuthRefused, match="device secret") as caught:
            await wrong.link.connect_once()
    finally:
        await wrong.link.stop()
    assert "0" * 32 not in str(caught.value)
    assert [failure.username for failure in cloud.auth_failures] == [f"{DN}&{PK}"]
    assert not cloud.is_online(device)


async def test_not_joined_to_wifi_is_no_network(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    module.registered = False
    with pytest.raises(NoNetwork, match="AT\\+CWJAP"):
        await session.link.connect_once()
    assert not cloud.is_online(device)
    assert not any(line.startswith("AT+MQTT") for line in module.received)


async def test_there_is_no_sim_to_be_missing(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    """A Wi-Fi module has no SimNotReady case: the SIM knob changes nothing."""
    module.sim_ready = False
    await session.link.connect_once()
    assert cloud.is_online(device)
    assert not any(line.startswith(("AT+CPIN", "AT+CEREG", "AT+CREG")) for line in module.received)

"""Quectel end to end: the link drives the emulated EC600S over a pty to the local cloud.

The module announces a lost session with ``+QMTSTAT``: the link notices at once, without
waiting for its health check.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
import json
from pathlib import Path

import pytest

from custom_components.aliyun_iot_at.core import alink
from custom_components.aliyun_iot_at.core.dialects import quectel
from custom_components.aliyun_iot_at.core.dialects.base import (
    SIM_READY,
    DeviceIdentity,
    Endpoint,
    InboundMessage,
    LinkSettings,
)
from custom_components.aliyun_iot_at.core.errors import (
    AtError,
    AuthRefused,
    NoNetwork,
    SimNotReady,
)
from custom_components.aliyun_iot_at.core.link import Link, LinkState, PortSettings
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

PK = "a1wFylTxYeD"
DN = "co_0001"
DS = "7ab0c4b3532b5783df5fdc58a2895d7a"
TOPICS = alink.Topics(PK, DN)
HOST = f"{PK}.iot-as-mqtt.cn-shanghai.aliyuncs.com"

# Small fixtures of this file until a shared tests/e2e/conftest.py provides them.


@pytest.fixture
def device(cloud: AliyunCloud) -> Device:
    return cloud.add_device(PK, DN, DS)


@pytest.fixture
async def module(tmp_path: Path, cloud: AliyunCloud) -> AsyncIterator[ModuleEmulator]:
    emulator = ModuleEmulator("quectel", link=tmp_path / "ttyUSB2", mqtt_port=cloud.mqtt_port)
    async with emulator:
        yield emulator


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The attach steps give up at their first failure instead of waiting for the network."""
    monkeypatch.setattr(quectel, "SIM_READY", replace(SIM_READY, poll=0.0))
    registered = tuple(replace(step, poll=0.0) for step in quectel.REGISTERED)
    monkeypatch.setattr(quectel, "REGISTERED", registered)


class Session:
    """A link to the module, the messages it delivered and the states it went through."""

    def __init__(
        self, module: ModuleEmulator, secret: str = DS, endpoint: Endpoint | None = None
    ) -> None:
        self.inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
        self.states: list[LinkState] = []
        self.errors: list[AtError] = []
        self._changed = asyncio.Event()
        self.link = Link(
            PortSettings(str(module.path)),
            "quectel",
            LinkSettings(DeviceIdentity(PK, DN, secret), endpoint or Endpoint()),
            TOPICS.subscriptions(),
            on_message=self.inbox.put_nowait,
            on_state=self._on_state,
            backoff=(0.05,),
            health_interval=3600,  # only the module's URC can tell the link in time
        )

    def _on_state(self, state: LinkState, error: AtError | None) -> None:
        self.states.append(state)
        if error is not None:
            self.errors.append(error)
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
    assert module.mqtt.target == (HOST, 1883, False)

    msg_id = await cloud.set_properties(device, {"PowerSwitch": 1})
    expected = {
        "id": msg_id,
        "version": "1.0",
        "params": {"PowerSwitch": 1},
        "method": "thing.service.property.set",
    }
    assert await session.next_message() == InboundMessage(TOPICS.property_set, cloud_json(expected))

    payload = alink.property_post("7", {"PowerSwitch": 0, "Label": '温度, "高"'})
    await session.link.publish(TOPICS.property_post, payload)
    post = await cloud.wait_post(device)
    assert post["id"] == "7"
    assert post["params"] == {"PowerSwitch": 0, "Label": '温度, "高"'}
    assert post["method"] == "thing.event.property.post"
    assert cloud.uplinks(device)[-1].topic == TOPICS.property_post
    reply = await session.next_message()  # the cloud's post_reply, through the + filter
    assert reply.topic == TOPICS.property_post_reply
    assert json.loads(reply.payload)["code"] == 200


async def test_quotes_commas_and_utf8_arrive_whole(
    cloud: AliyunCloud, device: Device, session: Session
) -> None:
    await session.link.connect_once()
    params = {"Label": 'say "hi", then {bye}\\', "Name": "客厅, 灯", "List": [1, 2]}
    msg_id = await cloud.set_properties(device, params)
    message = await session.next_message()
    assert message.payload == cloud_json(
        {"id": msg_id, "version": "1.0", "params": params, "method": "thing.service.property.set"}
    )


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
    session.link.start()
    await session.wait_for(LinkState.CONNECTED)
    await module.drop_link()  # the PDP context is gone too
    await session.wait_for(LinkState.DISCONNECTED)
    assert "+QMTSTAT: 0,2 (sending PINGREQ timed out or failed)" in str(session.errors[-1])
    await session.wait_for(LinkState.CONNECTED)
    await cloud.wait_online(device)
    assert module.received.count("AT+QIACT=1") == 2  # activated again


async def test_a_kicked_session_is_noticed_by_urc_and_restored(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    session.link.start()
    await session.wait_for(LinkState.CONNECTED)
    assert await cloud.kick(device)
    await session.wait_for(LinkState.DISCONNECTED)
    assert "+QMTSTAT: 0,1 (connection closed or reset by the peer)" in str(session.errors[-1])
    await session.wait_for(LinkState.CONNECTED)
    await cloud.wait_online(device)
    assert "AT+QIACT?" in module.received  # the context was still up: ERROR, then checked
    msg_id = await cloud.set_properties(device, {"PowerSwitch": 0})
    assert json.loads((await session.next_message()).payload)["id"] == msg_id


async def test_a_reboot_sets_the_volatile_configuration_again(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    session.link.start()
    await session.wait_for(LinkState.CONNECTED)
    await module.restart()  # RDY: QMTCFG settings and the PDP context are gone
    await session.wait_for(LinkState.DISCONNECTED)
    await session.wait_for(LinkState.CONNECTED)
    await cloud.wait_online(device)
    assert module.received.count('AT+QMTCFG="recv/mode",0,0,1') == 2
    msg_id = await cloud.set_properties(device, {"PowerSwitch": 1})
    assert json.loads((await session.next_message()).payload)["id"] == msg_id


async def test_tls_is_asked_of_the_module(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, sessions: list[Session]
) -> None:
    sessions.append(Session(module, endpoint=Endpoint(tls=True)))
    await sessions[-1].link.connect_once()
    assert module.mqtt.target == (HOST, 443, True)
    assert 'AT+QMTCFG="ssl",0,1,2' in module.received
    assert cloud.is_online(device)


async def test_a_wrong_secret_is_auth_refused(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, sessions: list[Session]
) -> None:
    sessions.append(Session(module, secret="0" * 32))
    with pytest.raises(AuthRefused, match=r"\+QMTCONN: 0,0,\d") as caught:
        await sessions[-1].link.connect_once()
    assert "0" * 32 not in str(caught.value)
    assert not cloud.is_online(device)
    assert [failure.username for failure in cloud.auth_failures] == [f"{DN}&{PK}"]


@pytest.mark.usefixtures("fast_polls", "device")
async def test_sim_not_ready(module: ModuleEmulator, session: Session) -> None:
    module.sim_ready = False
    with pytest.raises(SimNotReady):
        await session.link.connect_once()
    assert not any(line.startswith("AT+QMT") for line in module.received)


@pytest.mark.usefixtures("fast_polls", "device")
async def test_no_network(module: ModuleEmulator, session: Session) -> None:
    module.registered = False
    with pytest.raises(NoNetwork, match="CGREG"):
        await session.link.connect_once()
    assert not any(line.startswith("AT+QMT") for line in module.received)

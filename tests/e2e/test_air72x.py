"""Air72x end to end: HTTP auth through the module's HTTP client, then its MQTT client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
import json
import logging
from pathlib import Path

import pytest

from custom_components.aliyun_iot_at.core import alink
from custom_components.aliyun_iot_at.core.dialects import air72x
from custom_components.aliyun_iot_at.core.dialects.base import (
    DeviceIdentity,
    Endpoint,
    InboundMessage,
    LinkSettings,
)
from custom_components.aliyun_iot_at.core.errors import (
    AtError,
    AuthRefused,
    LinkError,
    NoNetwork,
    NotConnected,
    SimNotReady,
)
from custom_components.aliyun_iot_at.core.link import Link, LinkState, PortSettings
from custom_components.aliyun_iot_at.core.signing import http_auth_body, http_auth_sign
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import Command, ModuleEmulator
from testbed.emulator.air72x import Air72x

PK = "a1Air72xE2e"
DN = "air724-e2e"
DS = "Hq3YtJ0v9m2LkfP8sWc6RbN4xZ1aDgE7"
TOPICS = alink.Topics(PK, DN)
OLD_FIRMWARE = "AirM2M_Air724UG_V401_LTE_AT"

# Small fixtures of this file until a shared tests/e2e/conftest.py provides them.


@pytest.fixture
def device(cloud: AliyunCloud) -> Device:
    return cloud.add_device(PK, DN, DS)


async def _emulator(
    tmp_path: Path, cloud: AliyunCloud, firmware: str | None = None
) -> ModuleEmulator:
    return ModuleEmulator(
        "air72x",
        link=tmp_path / "ttyAIR",
        mqtt_port=cloud.mqtt_port,
        http_port=cloud.http_port,
        firmware=firmware,
    )


@pytest.fixture
async def module(tmp_path: Path, cloud: AliyunCloud) -> AsyncIterator[ModuleEmulator]:
    async with await _emulator(tmp_path, cloud) as emu:
        yield emu


class Session:
    """A link to the module (TLS, as the seed's AT+SSLMIPSTART) and what it delivered."""

    def __init__(self, module: ModuleEmulator, secret: str = DS) -> None:
        self.inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
        self.states: list[tuple[LinkState, AtError | None]] = []
        self.link = Link(
            PortSettings(str(module.path)),
            "air72x",
            LinkSettings(DeviceIdentity(PK, DN, secret), Endpoint(tls=True)),
            TOPICS.subscriptions(),
            on_message=self.inbox.put_nowait,
            on_state=lambda state, error: self.states.append((state, error)),
            backoff=(0.05,),
        )

    async def next_message(self) -> InboundMessage:
        async with asyncio.timeout(5):
            return await self.inbox.get()

    async def reach(self, state: LinkState, after: int = 0) -> AtError | None:
        """The error of the first ``state`` entered after the first ``after`` changes."""
        async with asyncio.timeout(10):
            while True:
                for entered, error in self.states[after:]:
                    if entered is state:
                        return error
                await asyncio.sleep(0.02)


@pytest.fixture
async def session(module: ModuleEmulator) -> AsyncIterator[Session]:
    running = Session(module)
    yield running
    await running.link.stop()


@pytest.fixture
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SIM (20 s) and attach (60 s) windows shortened: a refusal comes at the first answer."""
    steps = tuple(replace(step, poll=0.0) for step in air72x.ATTACH)
    monkeypatch.setattr(air72x, "ATTACH", steps)


async def test_property_set_and_post_round_trip(
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    session: Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="custom_components")
    await session.link.connect_once()
    assert cloud.is_online(device)
    assert module.mqtt.target == (f"{PK}.iot-as-mqtt.cn-shanghai.aliyuncs.com", 443, True)
    client_id, iot_id, iot_token = module.personality.config  # type: ignore[attr-defined]
    assert client_id == f"{PK}.{DN}"
    sent = module.received
    assert sent[sent.index("AT+HTTPINIT") :][:12] == [
        "AT+HTTPINIT",
        'AT+HTTPPARA="URL","https://iot-auth.cn-shanghai.aliyuncs.com/auth/devicename"',
        'AT+HTTPPARA="USER_DEFINED","Content-Type: application/x-www-form-urlencoded"',
        f"AT+HTTPDATA={len(http_auth_body(PK, DN, DS, client_id))},20000",
        "AT+HTTPACTION=1",
        "AT+HTTPREAD",
        "AT+HTTPTERM",
        "AT+MIPCLOSE",
        f'AT+MCONFIG="{client_id}","{iot_id}","{iot_token}"',
        f'AT+SSLMIPSTART="{PK}.iot-as-mqtt.cn-shanghai.aliyuncs.com",443',
        "AT+MCONNECT=1,300",
        "AT+MQTTMSGSET=0",
    ]

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
    assert post["id"] == "7"
    assert post["params"] == {"PowerSwitch": 0}
    assert post["method"] == "thing.event.property.post"
    assert cloud.uplinks(device)[-1].topic == TOPICS.property_post
    reply = await session.next_message()  # the cloud's post_reply, through the + filter
    assert reply.topic == TOPICS.property_post_reply
    assert json.loads(reply.payload)["code"] == 200

    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("custom_"))
    assert "AT+MPUBEX" in ours
    for secret in (DS, iot_token, http_auth_sign(PK, DN, DS, client_id)):
        assert secret not in ours


async def test_qos1_publish_waits_for_puback(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    await session.link.connect_once()
    payload = b'{"id":"9","params":{"Note":"a,\\"b\\"\\r\\n"},"method":"thing.event.property.post"}'
    await session.link.publish(TOPICS.property_post, payload, qos=1)
    post = await cloud.wait_post(device)
    assert post["params"] == {"Note": 'a,"b"\r\n'}


async def test_a_dropped_link_is_reported_by_urc_and_restored(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    session.link.start()
    await session.reach(LinkState.CONNECTED)
    await cloud.wait_online(device)
    changes = len(session.states)
    await module.drop_link()
    error = await session.reach(LinkState.DISCONNECTED, changes)
    assert isinstance(error, NotConnected)
    assert "CLOSED" in str(error)
    await session.reach(LinkState.CONNECTED, changes)
    await cloud.wait_online(device)
    msg_id = await cloud.set_properties(device, {"PowerSwitch": 0})
    assert json.loads((await session.next_message()).payload)["id"] == msg_id


async def test_a_kicked_session_is_noticed(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    await session.link.connect_once()
    dialect = session.link._dialect
    assert dialect is not None
    assert await dialect.is_connected()
    lost = asyncio.get_running_loop().create_future()
    dialect.events = _Relay(lost)
    await cloud.kick(device)
    async with asyncio.timeout(5):
        assert "CLOSED" in await lost
    assert not await dialect.is_connected()


class _Relay:
    """Link events caught directly, without the supervisor reconnecting."""

    def __init__(self, lost: asyncio.Future[str]) -> None:
        self._lost = lost

    def message(self, message: InboundMessage) -> None:
        raise AssertionError(f"unexpected {message}")

    def link_lost(self, reason: str) -> None:
        self._lost.set_result(reason)


async def test_a_retry_recovers_what_a_failed_attempt_left_open(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    module.fail_next("AT+HTTPACTION", "ERROR")
    module.fail_next("AT+HTTPTERM", "ERROR")  # the HTTP session stays initialised
    with pytest.raises(LinkError, match="HTTP auth request failed"):
        await session.link.connect_once()
    module.received.clear()
    await session.link.connect_once()
    assert cloud.is_online(device)
    sent = module.received
    # The bearer is still open, and so is the HTTP session: both are taken as they are.
    assert sent[sent.index("AT+SAPBR=1,1") + 1] == "AT+SAPBR=2,1"
    assert sent[sent.index("AT+HTTPINIT") :][:3] == ["AT+HTTPINIT", "AT+HTTPTERM", "AT+HTTPINIT"]


async def test_wrong_secret_is_refused_by_the_auth_endpoint(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator
) -> None:
    wrong = Session(module, secret="0" * 32)
    try:
        with pytest.raises(AuthRefused, match="refused the device") as caught:
            await wrong.link.connect_once()
    finally:
        await wrong.link.stop()
    assert "0" * 32 not in str(caught.value)
    assert [failure.channel for failure in cloud.auth_failures] == ["http"]
    assert not cloud.is_online(device)
    assert "AT+HTTPTERM" in module.received  # the module's HTTP session was ended


class _StaleToken(Air72x):
    """A module whose MQTT login carries a token the cloud no longer knows."""

    dialect = ""  # a test variant: not registered as the air72x personality

    async def mconfig(self, cmd: Command) -> str:
        answer = await super().mconfig(cmd)
        client_id, iot_id, _ = self.config
        self.config = (client_id, iot_id, "0" * 32)
        return answer


async def test_a_refused_mqtt_login_is_auth_refused(
    tmp_path: Path, cloud: AliyunCloud, device: Device
) -> None:
    async with ModuleEmulator(
        _StaleToken,
        link=tmp_path / "ttyAIR",
        mqtt_port=cloud.mqtt_port,
        http_port=cloud.http_port,
    ) as stale:
        link = Session(stale).link
        try:
            with pytest.raises(AuthRefused, match="refused the iotId/iotToken"):
                await link.connect_once()
        finally:
            await link.stop()
    assert [failure.channel for failure in cloud.auth_failures] == ["mqtt"]


@pytest.mark.usefixtures("quick_polls")
async def test_sim_not_ready(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    module.sim_ready = False
    with pytest.raises(SimNotReady):
        await session.link.connect_once()
    assert not cloud.is_online(device)


@pytest.mark.usefixtures("quick_polls")
async def test_no_network(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, session: Session
) -> None:
    module.registered = False
    with pytest.raises(NoNetwork, match="CGATT"):
        await session.link.connect_once()
    assert not cloud.is_online(device)


async def test_firmware_older_than_v409_is_refused(
    tmp_path: Path, cloud: AliyunCloud, device: Device
) -> None:
    async with await _emulator(tmp_path, cloud, OLD_FIRMWARE) as old:
        link = Session(old).link
        try:
            with pytest.raises(LinkError, match="V401 is too old"):
                await link.connect_once()
        finally:
            await link.stop()
        assert not any(line.startswith("AT+HTTP") for line in old.received)

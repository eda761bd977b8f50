"""Air72x end to end: HTTP auth through the module's HTTP client, then its MQTT client."""

from __future__ import annotations

import asyncio
import logging

import pytest

from custom_components.aliyun_iot_at.core import alink
from custom_components.aliyun_iot_at.core.dialects.base import Endpoint, InboundMessage
from custom_components.aliyun_iot_at.core.errors import AuthRefused, LinkError, NotConnected
from custom_components.aliyun_iot_at.core.signing import http_auth_body, http_auth_sign
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import Command, ModuleEmulator
from testbed.emulator.air72x import Air72x

from .conftest import (
    DN,
    DS,
    HOST,
    PK,
    TOPICS,
    WRONG_SECRET,
    Emulators,
    Session,
    Sessions,
    a_set_arrives,
    lose_and_recover,
)

OLD_FIRMWARE = "AirM2M_Air724UG_V401_LTE_AT"


@pytest.fixture
def dialect() -> str:
    return "air72x"


@pytest.fixture
def endpoint() -> Endpoint:
    """TLS, as the seed's AT+SSLMIPSTART."""
    return Endpoint(tls=True)


async def test_tls_session_after_the_seeds_http_auth_and_no_secret_logged(
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    session: Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="custom_components")
    await session.link.connect_once()
    assert cloud.is_online(device)
    assert module.mqtt.target == (HOST, 443, True)
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
        f'AT+SSLMIPSTART="{HOST}",443',
        "AT+MCONNECT=1,300",
        "AT+MQTTMSGSET=0",
    ]
    await session.link.publish(TOPICS.property_post, alink.property_post("7", {"PowerSwitch": 0}))
    assert (await cloud.wait_post(device))["id"] == "7"

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
    error = await lose_and_recover(session, cloud, device, module.drop_link)
    assert isinstance(error, NotConnected)
    assert "CLOSED" in str(error)
    await a_set_arrives(session, cloud, device)


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


async def test_a_refused_auth_ends_the_modules_http_session(
    device: Device, module: ModuleEmulator, sessions: Sessions
) -> None:
    with pytest.raises(AuthRefused):
        await sessions.new(identity=WRONG_SECRET).link.connect_once()
    assert "AT+HTTPTERM" in module.received


class _StaleToken(Air72x):
    """A module whose MQTT login carries a token the cloud no longer knows."""

    dialect = ""  # a test variant: not registered as the air72x personality

    async def mconfig(self, cmd: Command) -> str:
        answer = await super().mconfig(cmd)
        client_id, iot_id, _ = self.config
        self.config = (client_id, iot_id, "0" * 32)
        return answer


@pytest.mark.usefixtures("device")
async def test_a_refused_mqtt_login_is_auth_refused(
    cloud: AliyunCloud, emulators: Emulators, sessions: Sessions
) -> None:
    async with emulators.new(_StaleToken) as stale:
        with pytest.raises(AuthRefused, match="refused the iotId/iotToken"):
            await sessions.new(stale).link.connect_once()
    assert [failure.channel for failure in cloud.auth_failures] == ["mqtt"]


@pytest.mark.usefixtures("device")
async def test_firmware_older_than_v409_is_refused(
    emulators: Emulators, sessions: Sessions
) -> None:
    async with emulators.new("air72x", firmware=OLD_FIRMWARE) as old:
        with pytest.raises(LinkError, match="V401 is too old"):
            await sessions.new(old).link.connect_once()
        assert not any(line.startswith("AT+HTTP") for line in old.received)

"""The Aliyun-like cloud, exercised with a real MQTT client (amqtt) and a real HTTP client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
import json
import logging
from typing import Any
from urllib.parse import quote

import aiohttp
from amqtt.client import MQTTClient
from amqtt.errors import ConnectError
from amqtt.mqtt.connack import NOT_AUTHORIZED
from amqtt.session import ApplicationMessage
import pytest

from custom_components.aliyun_iot_at.core.signing import (
    SignMethod,
    http_auth_body,
    mqtt_credentials,
    sign,
)
from testbed.cloud import AliyunCloud, Device
from testbed.cloud.broker import ADMIN_USERNAME

PK = "a1B2c3D4e5F"
DN = "lamp-01"
DS = "0123456789abcdef0123456789abcdef"
OTHER_DN = "lamp-02"
OTHER_DS = "fedcba9876543210fedcba9876543210"
SUBACK_FAILURE = 0x80


@pytest.fixture
def lamp(cloud: AliyunCloud) -> Device:
    """A registered device."""
    return cloud.add_device(PK, DN, DS)


@pytest.fixture
def other_lamp(cloud: AliyunCloud) -> Device:
    """Another registered device of the same product."""
    return cloud.add_device(PK, OTHER_DN, OTHER_DS)


def _client(client_id: str, keepalive: int = 60) -> MQTTClient:
    # amqtt sends keep_alive - ping_delay in the CONNECT.
    config = {"keep_alive": keepalive + 1, "ping_delay": 1, "auto_reconnect": False, "plugins": {}}
    return MQTTClient(client_id=client_id, config=config)


def _uri(cloud: AliyunCloud, username: str, password: str) -> str:
    user, secret = quote(username, safe=""), quote(password, safe="")
    return f"mqtt://{user}:{secret}@127.0.0.1:{cloud.mqtt_port}"


@asynccontextmanager
async def _session(
    cloud: AliyunCloud, client_id: str, username: str, password: str
) -> AsyncIterator[MQTTClient]:
    client = _client(client_id)
    await client.connect(_uri(cloud, username, password))
    try:
        yield client
    finally:
        await client.disconnect()


def _signed(
    cloud: AliyunCloud, device: Device, **options: Any
) -> AbstractAsyncContextManager[MQTTClient]:
    creds = mqtt_credentials(
        device.product_key, device.device_name, device.device_secret, **options
    )
    return _session(cloud, creds.client_id, creds.username, creds.password)


async def _refused_code(
    cloud: AliyunCloud, client_id: str, username: str, password: str, keepalive: int = 60
) -> int | None:
    with pytest.raises(ConnectError) as refused:
        await _client(client_id, keepalive).connect(_uri(cloud, username, password))
    code: int | None = refused.value.return_code
    return code


async def _link_down(client: MQTTClient, timeout: float = 2.0) -> None:
    """Until amqtt's client has seen its connection end.

    Once the link is gone, amqtt's ``deliver_message`` fails instead of delivering (a pending
    delivery is cancelled, a later one raises).
    """
    async with asyncio.timeout(timeout):
        while True:
            results = await asyncio.gather(client.deliver_message(), return_exceptions=True)
            if not isinstance(results[0], ApplicationMessage):
                return


async def _next_message(client: MQTTClient) -> tuple[str, dict[str, Any]]:
    message = await client.deliver_message(timeout_duration=2)
    assert message is not None
    return message.topic, json.loads(message.data)


def _post(msg_id: str, params: dict[str, Any], method: str = "thing.event.property.post") -> bytes:
    payload = {"id": msg_id, "version": "1.0", "params": params, "method": method}
    return json.dumps(payload).encode()


async def _http_auth(cloud: AliyunCloud, body: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{cloud.http_port}/auth/devicename",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as response,
    ):
        assert response.status == 200  # Aliyun answers 200 and puts the verdict in "code"
        reply: dict[str, Any] = await response.json()
        return reply


@pytest.mark.parametrize("tls", [False, True], ids=["securemode3", "securemode2"])
@pytest.mark.parametrize("timestamp", [None, "1700000000000"], ids=["no-ts", "ts"])
@pytest.mark.parametrize("method", ["hmacmd5", "hmacsha1", "hmacsha256"])
async def test_signed_device_connects(
    cloud: AliyunCloud, lamp: Device, method: SignMethod, timestamp: str | None, tls: bool
) -> None:
    async with _signed(cloud, lamp, method=method, timestamp=timestamp, tls=tls):
        await cloud.wait_online(lamp)
    await cloud.wait_offline(lamp)
    assert cloud.auth_failures == []


async def test_sign_is_accepted_in_upper_case(cloud: AliyunCloud, lamp: Device) -> None:
    creds = mqtt_credentials(PK, DN, DS, method="hmacsha1", timestamp="789")
    async with _session(cloud, creds.client_id, creds.username, creds.password.upper()):
        await cloud.wait_online(lamp)


SHA1 = "id|securemode=3,signmethod=hmacsha1|"
USER = f"{DN}&{PK}"
BAD = "not-the-sign"
REFUSALS = {
    "wrong password": (SHA1, USER, BAD, "password is not the device's sign"),
    "unknown device": (SHA1, f"ghost&{PK}", BAD, "device not found"),
    "pk and dn swapped": (SHA1, f"{PK}&{DN}", BAD, "device not found"),
    "no user name separator": (SHA1, DN, BAD, "user name"),
    "no closing bar": (SHA1.rstrip("|"), USER, BAD, "malformed"),
    "no signmethod": ("id|securemode=3|", USER, BAD, "signmethod"),
    "unknown signmethod": ("id|securemode=3,signmethod=md5|", USER, BAD, "signmethod"),
    "bad securemode": ("id|securemode=1,signmethod=hmacmd5|", USER, BAD, "securemode"),
    "bad parameter list": ("id|securemode=3,,signmethod=hmacmd5|", USER, BAD, "parameter"),
    "client id too long": ("x" * 65 + SHA1.removeprefix("id"), USER, BAD, "64"),
    "unknown iotId": ("plain-client-id", "no-such-iot-id", BAD, "iotId"),
    "service user, wrong password": ("plain-client-id", ADMIN_USERNAME, BAD, "service password"),
}


@pytest.mark.parametrize(
    ("client_id", "username", "password", "reason"), REFUSALS.values(), ids=REFUSALS.keys()
)
async def test_bad_connect_is_refused_and_recorded(
    cloud: AliyunCloud,
    lamp: Device,
    caplog: pytest.LogCaptureFixture,
    client_id: str,
    username: str,
    password: str,
    reason: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    assert await _refused_code(cloud, client_id, username, password) == NOT_AUTHORIZED
    [failure] = cloud.auth_failures
    assert (failure.channel, failure.client_id, failure.username) == ("mqtt", client_id, username)
    assert reason in failure.reason
    assert password not in repr(failure)
    assert password not in caplog.text
    assert not cloud.is_online(lamp)


async def test_sign_of_another_device_is_refused(
    cloud: AliyunCloud, lamp: Device, other_lamp: Device, caplog: pytest.LogCaptureFixture
) -> None:
    """Credentials signed for one device, presented under another device's user name."""
    caplog.set_level(logging.DEBUG)
    creds = mqtt_credentials(PK, DN, DS)
    username = f"{OTHER_DN}&{PK}"
    assert await _refused_code(cloud, creds.client_id, username, creds.password) == NOT_AUTHORIZED
    assert [f.reason for f in cloud.auth_failures] == ["password is not the device's sign"]
    assert creds.password not in caplog.text
    assert DS not in caplog.text


async def test_timestamp_signed_but_missing_from_client_id_is_refused(
    cloud: AliyunCloud, lamp: Device
) -> None:
    params = {"clientId": "c1", "deviceName": DN, "productKey": PK, "timestamp": "789"}
    password = sign(DS, params, "hmacsha1")
    client_id = "c1|securemode=3,signmethod=hmacsha1|"
    assert await _refused_code(cloud, client_id, f"{DN}&{PK}", password) == NOT_AUTHORIZED
    assert cloud.auth_failures[0].reason == "password is not the device's sign"


@pytest.mark.parametrize("keepalive", [10, 1500])
async def test_keepalive_outside_aliyun_range_is_refused(
    cloud: AliyunCloud, lamp: Device, keepalive: int
) -> None:
    creds = mqtt_credentials(PK, DN, DS)
    code = await _refused_code(cloud, creds.client_id, creds.username, creds.password, keepalive)
    assert code == NOT_AUTHORIZED
    assert cloud.auth_failures[0].reason.startswith(f"keepalive {keepalive} s")


async def test_device_uses_only_its_own_topics(
    cloud: AliyunCloud, lamp: Device, other_lamp: Device
) -> None:
    async with _signed(cloud, lamp) as client, _signed(cloud, other_lamp) as other:
        granted = await client.subscribe(
            [
                (f"/sys/{PK}/{OTHER_DN}/#", 1),
                ("/sys/#", 1),
                (f"/sys/{PK}/+/thing/service/property/set", 1),
                (f"/sys/{PK}/{DN}/thing/service/+", 1),
                (f"/ext/ntp/{PK}/{DN}/response", 1),
                (f"/{PK}/{DN}/user/get", 0),
            ]
        )
        assert granted == [SUBACK_FAILURE, SUBACK_FAILURE, SUBACK_FAILURE, 1, 1, 0]
        assert await other.subscribe([(f"/sys/{PK}/{OTHER_DN}/#", 1)]) == [1]

        # Posing as the cloud towards the other device, and posting in its name: both dropped.
        await client.publish(
            f"/sys/{PK}/{OTHER_DN}/thing/service/property/set", _post("7", {}), qos=1
        )
        await client.publish(
            f"/sys/{PK}/{OTHER_DN}/thing/event/property/post", _post("8", {}), qos=1
        )
        await client.publish(f"/sys/{PK}/{DN}/thing/event/property/post", _post("9", {}), qos=1)
        assert (await cloud.wait_post(lamp))["id"] == "9"  # the device's messages are in order
        assert cloud.uplinks(other_lamp) == []
        msg_id = await cloud.set_properties(other_lamp, {"LightSwitch": 1})
        topic, request = await _next_message(other)
        assert (topic, request["id"]) == (
            f"/sys/{PK}/{OTHER_DN}/thing/service/property/set",
            msg_id,
        )


async def test_qos2_subscription_is_downgraded_to_qos1(cloud: AliyunCloud, lamp: Device) -> None:
    async with _signed(cloud, lamp) as client:
        assert await client.subscribe([(f"/sys/{PK}/{DN}/thing/service/#", 2)]) == [1]


async def test_qos2_publish_closes_the_connection(cloud: AliyunCloud, lamp: Device) -> None:
    async with _signed(cloud, lamp) as client:
        await cloud.wait_online(lamp)
        topic = f"/sys/{PK}/{DN}/thing/event/property/post"
        # The PUBREC never comes: amqtt's publish ends in an error once the link is gone.
        await asyncio.gather(client.publish(topic, _post("1", {}), qos=2), return_exceptions=True)
        await cloud.wait_offline(lamp)
        await _link_down(client)
    assert cloud.uplinks(lamp) == []


async def test_http_auth_token_opens_an_mqtt_session(
    cloud: AliyunCloud, lamp: Device, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reply = await _http_auth(cloud, http_auth_body(PK, DN, DS, "imei-862991419835241"))
    assert reply["code"] == 200
    assert reply["message"] == "success"
    iot_id, iot_token = reply["data"]["iotId"], reply["data"]["iotToken"]

    assert await _refused_code(cloud, "another-client-id", iot_id, iot_token) == NOT_AUTHORIZED
    assert await _refused_code(cloud, "imei-862991419835241", iot_id, "wrong") == NOT_AUTHORIZED
    assert [f.reason for f in cloud.auth_failures] == [
        "client id differs from the one given to HTTP auth",
        "wrong iotToken",
    ]
    async with _session(cloud, "imei-862991419835241", iot_id, iot_token):
        await cloud.wait_online(lamp)
    assert iot_token not in caplog.text


async def test_http_auth_accepts_another_signmethod(cloud: AliyunCloud, lamp: Device) -> None:
    params = {"clientId": "c1", "deviceName": DN, "productKey": PK, "timestamp": "1700000000000"}
    sig = sign(DS, params, "hmacsha1")
    body = (
        f"productKey={PK}&deviceName={DN}&clientId=c1&timestamp=1700000000000"
        f"&signmethod=hmacsha1&sign={sig}"
    )
    assert (await _http_auth(cloud, body))["code"] == 200


HTTP_REFUSALS = {
    "bad sign": (http_auth_body(PK, DN, OTHER_DS, "c1"), 401, "sign mismatch"),
    "unknown device": (http_auth_body(PK, "ghost", DS, "c1"), 401, "device not found"),
    "missing sign": (
        f"productKey={PK}&deviceName={DN}&clientId=c1",
        460,
        "missing parameter: sign",
    ),
    "bad signmethod": (http_auth_body(PK, DN, DS, "c1") + "&signmethod=rsa", 460, "signmethod"),
}


@pytest.mark.parametrize(
    ("body", "code", "reason"), HTTP_REFUSALS.values(), ids=HTTP_REFUSALS.keys()
)
async def test_http_auth_refusal(
    cloud: AliyunCloud,
    lamp: Device,
    caplog: pytest.LogCaptureFixture,
    body: str,
    code: int,
    reason: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    reply = await _http_auth(cloud, body)
    assert reply["code"] == code
    assert reason in reply["message"]
    [failure] = cloud.auth_failures
    assert (failure.channel, failure.client_id) == ("http", "c1")
    assert reason in failure.reason
    assert DS not in caplog.text


async def test_property_post_gets_its_reply(cloud: AliyunCloud, lamp: Device) -> None:
    async with _signed(cloud, lamp) as client:
        await client.subscribe([(f"/sys/{PK}/{DN}/thing/event/property/post_reply", 1)])
        await client.publish(
            f"/sys/{PK}/{DN}/thing/event/property/post", _post("42", {"LightSwitch": 1}), qos=1
        )
        topic, reply = await _next_message(client)
        post = await cloud.wait_post(lamp, lambda p: p["params"].get("LightSwitch") == 1)
    assert topic == f"/sys/{PK}/{DN}/thing/event/property/post_reply"
    assert {k: reply[k] for k in ("id", "code", "data", "message")} == {
        "id": "42",
        "code": 200,
        "data": {},
        "message": "success",
    }
    assert post["params"] == {"LightSwitch": 1}


async def test_event_post_is_recorded_and_answered(cloud: AliyunCloud, lamp: Device) -> None:
    async with _signed(cloud, lamp) as client:
        await client.subscribe([(f"/sys/{PK}/{DN}/thing/event/+/post_reply", 1)])
        payload = _post(
            "5", {"value": {"Code": 3}, "time": 1700000000000}, "thing.event.Fault.post"
        )
        await client.publish(f"/sys/{PK}/{DN}/thing/event/Fault/post", payload, qos=1)
        topic, reply = await _next_message(client)
    assert topic == f"/sys/{PK}/{DN}/thing/event/Fault/post_reply"
    assert (reply["id"], reply["code"]) == ("5", 200)
    [uplink] = cloud.uplinks(lamp)
    assert (uplink.kind, uplink.code) == ("event_post", 200)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"not json", 6207),
        (b'{"id":"1","version":"1.0","params":{}}', 6300),
        (b'{"id":1,"params":{},"method":"thing.event.property.post"}', 460),
        (b'{"id":"1","params":[],"method":"thing.event.property.post"}', 460),
    ],
    ids=["not-json", "no-method", "numeric-id", "params-not-object"],
)
async def test_malformed_post_gets_an_error_reply(
    cloud: AliyunCloud, lamp: Device, payload: bytes, code: int
) -> None:
    async with _signed(cloud, lamp) as client:
        await client.subscribe([(f"/sys/{PK}/{DN}/thing/event/property/post_reply", 1)])
        topic = f"/sys/{PK}/{DN}/thing/event/property/post"
        await client.publish(topic, payload, qos=1)
        _, reply = await _next_message(client)
        assert reply["code"] == code
        await client.publish(topic, _post("2", {"LightSwitch": 0}), qos=1)
        assert (await cloud.wait_post(lamp))["id"] == "2"  # the malformed one is skipped
    assert [uplink.code for uplink in cloud.uplinks(lamp)] == [code, 200]


async def test_post_without_ack_gets_no_reply(cloud: AliyunCloud, lamp: Device) -> None:
    async with _signed(cloud, lamp) as client:
        await client.subscribe([(f"/sys/{PK}/{DN}/thing/event/property/post_reply", 1)])
        topic = f"/sys/{PK}/{DN}/thing/event/property/post"
        silent = {"id": "1", "sys": {"ack": 0}, "params": {}, "method": "thing.event.property.post"}
        await client.publish(topic, json.dumps(silent).encode(), qos=1)
        await client.publish(topic, _post("2", {}), qos=1)
        _, reply = await _next_message(client)
    assert reply["id"] == "2"


async def test_wait_post_moves_past_what_it_returned(cloud: AliyunCloud, lamp: Device) -> None:
    async with _signed(cloud, lamp) as client:
        topic = f"/sys/{PK}/{DN}/thing/event/property/post"
        for n in (1, 2, 3):
            await client.publish(topic, _post(str(n), {"Brightness": n * 10}), qos=1)
        assert (await cloud.wait_post(lamp, lambda p: p["params"]["Brightness"] == 20))["id"] == "2"
        assert (await cloud.wait_post(lamp))["id"] == "3"
        with pytest.raises(TimeoutError, match="property post"):
            await cloud.wait_post(lamp, timeout=0.1)


async def test_set_properties_reaches_the_device_and_its_reply_is_seen(
    cloud: AliyunCloud, lamp: Device
) -> None:
    async with _signed(cloud, lamp) as client:
        await client.subscribe([(f"/sys/{PK}/{DN}/thing/service/property/set", 1)])
        msg_id = await cloud.set_properties(lamp, {"LightSwitch": 1, "Brightness": 80})
        topic, request = await _next_message(client)
        assert topic == f"/sys/{PK}/{DN}/thing/service/property/set"
        assert request["id"] == msg_id
        assert request["method"] == "thing.service.property.set"
        assert request["params"] == {"LightSwitch": 1, "Brightness": 80}
        reply = {"id": msg_id, "code": 200, "data": {}}
        await client.publish(f"{topic}_reply", json.dumps(reply).encode(), qos=1)
        assert await cloud.wait_reply(lamp, msg_id) == reply


async def test_service_call_reaches_the_device_and_its_reply_is_seen(
    cloud: AliyunCloud, lamp: Device
) -> None:
    async with _signed(cloud, lamp) as client:
        await client.subscribe([(f"/sys/{PK}/{DN}/thing/service/+", 1)])
        msg_id = await cloud.call_service(lamp, "Reboot", {"delay": 5})
        topic, request = await _next_message(client)
        assert topic == f"/sys/{PK}/{DN}/thing/service/Reboot"
        assert (request["id"], request["method"]) == (msg_id, "thing.service.Reboot")
        reply = {"id": msg_id, "code": 200, "data": {"ok": 1}}
        await client.publish(f"{topic}_reply", json.dumps(reply).encode(), qos=1)
        assert await cloud.wait_reply(lamp, msg_id) == reply


async def test_kick_cuts_the_device_off(cloud: AliyunCloud, lamp: Device) -> None:
    async with _signed(cloud, lamp) as client:
        await cloud.wait_online(lamp)
        assert await cloud.kick(lamp)
        assert not cloud.is_online(lamp)
        await _link_down(client)
    assert not await cloud.kick(lamp)


async def test_new_session_of_a_device_closes_the_old_one(cloud: AliyunCloud, lamp: Device) -> None:
    async with _signed(cloud, lamp, client_id="first") as first:
        await cloud.wait_online(lamp)
        async with _signed(cloud, lamp, client_id="second"):
            await _link_down(first)
            assert cloud.is_online(lamp)


async def test_cloud_stops_twice_and_refuses_ports_when_stopped(socket_enabled: None) -> None:
    cloud = AliyunCloud()
    with pytest.raises(RuntimeError):
        _ = cloud.mqtt_port
    async with cloud:
        assert cloud.mqtt_port != cloud.http_port
    await cloud.stop()
    with pytest.raises(RuntimeError):
        _ = cloud.http_port


async def test_stop_drops_a_connection_that_never_sent_connect(socket_enabled: None) -> None:
    cloud = AliyunCloud()
    await cloud.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", cloud.mqtt_port)
    try:
        await cloud.stop()
        try:
            data = await reader.read()
        except ConnectionResetError:  # if the listener closed before accepting it
            data = b""
        assert data == b""
    finally:
        writer.close()
        await writer.wait_closed()


def test_registry_refuses_ids_aliyun_would_refuse() -> None:
    cloud = AliyunCloud()
    for pk, dn, ds in [("a/b", DN, DS), (PK, "lamp#1", DS), (PK, DN, ""), (PK, DN, "x" * 65)]:
        with pytest.raises(ValueError):
            cloud.add_device(pk, dn, ds)

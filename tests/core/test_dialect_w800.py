"""W800 dialect: exact commands, URC framing and parsing, refusals (seed 003)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import json
import logging
from pathlib import Path

import pytest

from custom_components.aliyun_iot_at.core.channel import AtChannel
from custom_components.aliyun_iot_at.core.dialects import dialect_class
from custom_components.aliyun_iot_at.core.dialects.base import (
    DeviceIdentity,
    Endpoint,
    InboundMessage,
    LinkSettings,
    ModuleInfo,
)
from custom_components.aliyun_iot_at.core.dialects.w800 import (
    W800,
    checked_line,
    connconfig_command,
    connect_command,
    long_command,
    parse_subrecv,
    publish_command,
    session_connected,
    subscribe_command,
    usercfg_command,
)
from custom_components.aliyun_iot_at.core.errors import (
    AuthRefused,
    LinkError,
    NoNetwork,
    PublishFailed,
    UnsafeValue,
)
from custom_components.aliyun_iot_at.core.signing import mqtt_credentials
from custom_components.aliyun_iot_at.core.tsl import PROPERTY_POST
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator
from testbed.emulator.w800 import W800 as W800Module

from .conftest import Events

PK = "a1pnQWj9dvs"
DN = "test"
DS = "C5LTDEyQj6wMXh8KaNICzvCSgi69Ysj8"
TOPIC = f"/sys/{PK}/{DN}/thing/service/property/set"


def test_registered_under_its_name() -> None:
    assert dialect_class("w800") is W800
    assert W800.restart_lines == frozenset({"ready"})
    assert (W800.max_topics, W800.max_payload, W800.reports_link_loss) == (10, 5760, True)


def test_recognises_the_module() -> None:
    assert W800.matches(ModuleInfo(firmware="AT version:1.0.0(W800)"))
    assert W800.matches(ModuleInfo(manufacturer="WinnerMicro"))
    assert not W800.matches(ModuleInfo("Quectel", "EC600S"))
    assert not W800.matches(ModuleInfo())


def test_usercfg_carries_only_placeholders() -> None:
    assert usercfg_command(tls=False) == 'AT+MQTTUSERCFG=0,1,"c","u","p",0,0,""'
    assert usercfg_command(tls=True) == 'AT+MQTTUSERCFG=0,2,"c","u","p",0,0,""'


def test_long_values_are_counted_in_bytes() -> None:
    cid = f"{PK}.{DN}|securemode=3,signmethod=hmacsha256|"
    assert long_command("CLIENTID", cid) == (
        f"AT+MQTTLONGCLIENTID=0,{len(cid)}",
        cid.encode(),
    )
    assert long_command("USERNAME", "设备&pk") == ("AT+MQTTLONGUSERNAME=0,9", "设备&pk".encode())


@pytest.mark.parametrize(
    ("value", "why"), [("", "empty"), ("a\x1ab", "control"), ("x" * 1025, "longer than 1024")]
)
def test_long_values_refused(value: str, why: str) -> None:
    with pytest.raises(UnsafeValue, match=why):
        long_command("PASSWORD", value)


def test_connconfig_keeps_keepalive_in_aliyuns_range() -> None:
    assert connconfig_command(300) == 'AT+MQTTCONNCFG=0,300,0,"","",0,0'
    assert connconfig_command(5) == 'AT+MQTTCONNCFG=0,30,0,"","",0,0'
    assert connconfig_command(7200) == 'AT+MQTTCONNCFG=0,1200,0,"","",0,0'


def test_connect_command() -> None:
    host = f"{PK}.iot-as-mqtt.cn-shanghai.aliyuncs.com"
    assert connect_command(host, 1883) == f'AT+MQTTCONN=0,"{host}",1883,0'


@pytest.mark.parametrize(
    ("host", "port", "why"),
    [
        ("h" * 129, 1883, "longer than 128"),
        ('a",1,"b', 1883, "cannot carry"),
        ("a\\b", 1883, "cannot carry"),
        ("host", 0, "out of range"),
        ("host", 65536, "out of range"),
    ],
)
def test_connect_refusals(host: str, port: int, why: str) -> None:
    with pytest.raises(UnsafeValue, match=why):
        connect_command(host, port)


def test_subscribe_and_publish_commands() -> None:
    assert subscribe_command(TOPIC) == f'AT+MQTTSUB=0,"{TOPIC}",1'
    assert subscribe_command(TOPIC, 0) == f'AT+MQTTSUB=0,"{TOPIC}",0'
    assert publish_command(TOPIC, 42, 1) == f'AT+MQTTPUBRAW=0,"{TOPIC}",42,1,0'


@pytest.mark.parametrize(
    "topic", ["/a,b", '/a"b', "/a\\b", "/a\r\nAT+RST", "/温度", "", "/" + "t" * 128]
)
def test_unsafe_topics_are_refused(topic: str) -> None:
    with pytest.raises(UnsafeValue):
        subscribe_command(topic)
    with pytest.raises(UnsafeValue):
        publish_command(topic, 1, 0)


def test_a_topic_at_the_manuals_limit_fits_the_line() -> None:
    topic = "/" + "t" * 127
    assert len((publish_command(topic, 5760, 1) + "\r\n").encode()) <= 256


def test_lines_are_checked_against_256_bytes_with_their_cr_lf() -> None:
    assert checked_line("A" * 254) == "A" * 254
    with pytest.raises(UnsafeValue, match="AT\\+X would be longer than the W800's 256-byte line"):
        checked_line("AT+X=" + "1" * 250)


@pytest.mark.parametrize(
    ("lines", "up"),
    [
        (['+MQTTCONN:0,4,1,"host",1883,"",0'], True),
        (['+MQTTCONN:0,6,1"host",1883,"",0'], True),  # the manual's missing comma
        (['+MQTTCONN:0,5,2,"host",443,"",0'], True),
        (['+MQTTCONN:0,3,1,"host",1883,"",0'], False),
        (["+MQTTCONN:0,0"], False),
        ([], False),
    ],
)
def test_session_state(lines: list[str], up: bool) -> None:
    assert session_connected(lines) is up


def test_parse_subrecv_takes_the_counted_data() -> None:
    data = '{"a":"x,y","b":"say \\"hi\\""}\r\nline2'
    text = f'+MQTTSUBRECV:0,"{TOPIC}",{len(data.encode())},{data}'
    assert parse_subrecv(text) == InboundMessage(TOPIC, data.encode())
    assert parse_subrecv(f"+MQTTSUBRECV:0,{TOPIC},2,hi") == InboundMessage(TOPIC, b"hi")
    assert parse_subrecv("+MQTTSUBRECV:garbage") is None


async def test_subrecv_urcs_are_framed_by_length() -> None:
    """Data with CR/LF, quotes, commas and an embedded "OK" line arrive intact, in chunks."""
    channel = AtChannel()
    events = Events()
    W800(channel, LinkSettings(DeviceIdentity(PK, DN, DS)), events)
    first = b'{"params":{"PowerSwitch":1},"text":"a,\\"b\\"\r\nOK\r\n"}'
    second = "温度".encode()
    stream = (
        f'\r\n+MQTTSUBRECV:0,"{TOPIC}",{len(first)},'.encode()
        + first
        + f'\r\n+MQTTSUBRECV:0,"{TOPIC}",{len(second)},'.encode()
        + second
        + b"\r\n"
    )
    for start in range(0, len(stream), 7):
        channel.data_received(stream[start : start + 7])
    assert events.messages == [InboundMessage(TOPIC, first), InboundMessage(TOPIC, second)]


async def test_disconnected_urc_is_a_loss_only_for_a_live_session() -> None:
    channel = AtChannel()
    events = Events()
    W800(channel, LinkSettings(DeviceIdentity(PK, DN, DS)), events)
    # Before any session (e.g. the URC of our own AT+MQTTCLEAN): not a loss.
    channel.data_received(b"\r\n+MQTTDISCONNECTED:0\r\n")
    assert events.lost == []


# --- against the emulated module, over a real pty ----------------------------------------


@pytest.fixture
def device(cloud: AliyunCloud) -> Device:
    return cloud.add_device(PK, DN, DS)


@pytest.fixture
async def module(tmp_path: Path, cloud: AliyunCloud) -> AsyncIterator[ModuleEmulator]:
    async with ModuleEmulator("w800", link=tmp_path / "ttyW800", mqtt_port=cloud.mqtt_port) as emu:
        yield emu


def make_dialect(channel: AtChannel, events: Events, endpoint: Endpoint | None = None) -> W800:
    return W800(channel, LinkSettings(DeviceIdentity(PK, DN, DS), endpoint or Endpoint()), events)


@pytest.fixture
async def online(channel: AtChannel, device: Device) -> tuple[W800, Events]:
    events = Events()
    dialect = make_dialect(channel, events)
    await dialect.initialize()
    await dialect.attach()
    await dialect.connect()
    return dialect, events


async def test_connect_sends_the_manuals_sequence(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, online: tuple[W800, Events]
) -> None:
    dialect, _ = online
    creds = mqtt_credentials(PK, DN, DS)
    assert module.received == [
        "ATE0",
        "AT+CWJAP?",
        "AT+MQTTCLEAN=0",
        'AT+MQTTUSERCFG=0,1,"c","u","p",0,0,""',
        f"AT+MQTTLONGCLIENTID=0,{len(creds.client_id)}",
        f"AT+MQTTLONGUSERNAME=0,{len(creds.username)}",
        "AT+MQTTLONGPASSWORD=0,64",
        'AT+MQTTCONNCFG=0,300,0,"","",0,0',
        f'AT+MQTTCONN=0,"{PK}.iot-as-mqtt.cn-shanghai.aliyuncs.com",1883,0',
    ]
    personality = module.personality
    assert isinstance(personality, W800Module)
    assert (personality.client_id, personality.username) == (creds.client_id, creds.username)
    assert cloud.is_online(device)
    assert await dialect.is_connected()
    await dialect.disconnect()
    assert not await dialect.is_connected()
    assert not cloud.is_online(device)


async def test_tls_uses_scheme_2_and_securemode_2(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, channel: AtChannel
) -> None:
    dialect = make_dialect(channel, Events(), Endpoint(tls=True))
    await dialect.initialize()
    await dialect.connect()
    assert 'AT+MQTTUSERCFG=0,2,"c","u","p",0,0,""' in module.received
    assert module.mqtt.target == (f"{PK}.iot-as-mqtt.cn-shanghai.aliyuncs.com", 443, True)
    assert isinstance(module.personality, W800Module)
    assert "securemode=2," in module.personality.client_id
    assert cloud.is_online(device)


async def test_the_password_is_masked_and_never_on_a_command_line(
    device: Device, module: ModuleEmulator, channel: AtChannel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dialect = make_dialect(channel, Events())
    await dialect.initialize()
    await dialect.connect()
    password = mqtt_credentials(PK, DN, DS).password
    assert not any(password in line for line in module.received)
    assert password not in caplog.text
    assert DS not in caplog.text


async def test_wifi_lost_just_before_connecting_is_not_a_refusal(
    device: Device, module: ModuleEmulator, channel: AtChannel
) -> None:
    dialect = make_dialect(channel, Events())
    await dialect.initialize()
    await dialect.attach()
    module.registered = False
    with pytest.raises(NoNetwork, match="not joined"):
        await dialect.connect()


async def test_subscriptions_within_the_limit(
    module: ModuleEmulator, online: tuple[W800, Events]
) -> None:
    dialect, _ = online
    topics = [f"/{PK}/{DN}/user/t{n}" for n in range(10)]
    await dialect.subscribe([*topics[:5], topics[0]])  # a duplicate is sent once
    await dialect.subscribe(topics[:2])  # ALREADY SUBSCRIBE counts as done
    await dialect.subscribe(topics[5:])
    assert [line for line in module.received if line.startswith("AT+MQTTSUB=")] == [
        *(f'AT+MQTTSUB=0,"{topic}",1' for topic in topics[:5]),
        *(f'AT+MQTTSUB=0,"{topic}",1' for topic in topics[:2]),
        *(f'AT+MQTTSUB=0,"{topic}",1' for topic in topics[5:]),
    ]
    with pytest.raises(LinkError, match="no more than 10 subscriptions"):
        await dialect.subscribe([f"/{PK}/{DN}/user/eleven"])
    sent = len(module.received)
    with pytest.raises(UnsafeValue, match="at most 10 topics"):
        await dialect.subscribe([f"/{PK}/{DN}/user/n{n}" for n in range(11)])
    with pytest.raises(UnsafeValue):
        await dialect.subscribe([f"/{PK}/{DN}/user/ok", "/bad,topic"])
    assert len(module.received) == sent  # refused before anything was sent


async def test_publish_carries_any_bytes(
    cloud: AliyunCloud, device: Device, online: tuple[W800, Events]
) -> None:
    dialect, _ = online
    text = 'a,"b"\r\n>OK\r\nERROR\x1a温度'
    message = {"id": "5", "version": "1.0", "params": {"Text": text}, "method": PROPERTY_POST}
    # Raw CR LF between the JSON tokens, quotes, commas, ">" and UTF-8: carried as counted.
    payload = json.dumps(message, ensure_ascii=False, indent=1).replace("\n", "\r\n").encode()
    assert b"\r\n" in payload
    assert b">OK" in payload
    await dialect.publish(f"/sys/{PK}/{DN}/thing/event/property/post", payload, qos=1)
    post = await cloud.wait_post(device)
    assert post["params"] == {"Text": text}


async def test_publish_refusals_send_nothing(
    module: ModuleEmulator, online: tuple[W800, Events]
) -> None:
    dialect, _ = online
    sent = len(module.received)
    topic = f"/sys/{PK}/{DN}/thing/event/property/post"
    for payload, qos, why in [
        (b"", 0, "empty"),
        (b"x" * 5761, 0, "at most 5760"),
        (b"{}", 2, "QoS"),
    ]:
        with pytest.raises(UnsafeValue, match=why):
            await dialect.publish(topic, payload, qos)
    with pytest.raises(UnsafeValue):
        await dialect.publish("/a,b", b"{}")
    assert len(module.received) == sent
    await dialect.publish(topic, b"x" * 5760)  # the manual's largest


@pytest.mark.parametrize("final", ["+MQTTPUB:FAIL", "ERROR"])
async def test_a_failed_publish_is_publish_failed(
    module: ModuleEmulator, online: tuple[W800, Events], final: str
) -> None:
    dialect, _ = online
    module.fail_next("AT+MQTTPUBRAW", final)
    with pytest.raises(PublishFailed, match=final.replace("+", "\\+")):
        await dialect.publish(f"/sys/{PK}/{DN}/thing/event/property/post", b"{}")


async def test_inbound_data_is_framed_by_length_even_inside_a_response(
    module: ModuleEmulator, online: tuple[W800, Events]
) -> None:
    dialect, events = online
    text = '{"a":"x,y","q":"\\"hi\\""}\r\nOK\r\n+MQTTPUB:OK\r\n温度'
    data = text.encode()
    module.urc_inside_next(f'+MQTTSUBRECV:0,"{TOPIC}",{len(data)},{text}')
    assert await dialect.is_connected()
    assert events.messages == [InboundMessage(TOPIC, data)]


async def test_a_lost_session_is_reported_once(
    module: ModuleEmulator, online: tuple[W800, Events]
) -> None:
    dialect, events = online
    await module.drop_link()
    async with asyncio.timeout(2):
        await events.changed.wait()
    assert not await dialect.is_connected()
    assert events.lost == ["the W800 reported +MQTTDISCONNECTED"]


async def test_disconnect_is_not_a_loss(
    module: ModuleEmulator, online: tuple[W800, Events]
) -> None:
    dialect, events = online
    await dialect.disconnect()
    assert await dialect.channel.command("AT") == []
    assert events.lost == []


async def test_an_overlong_host_is_refused_before_sending(
    module: ModuleEmulator, channel: AtChannel
) -> None:
    endpoint = Endpoint(host="h" * 121 + ".example")
    dialect = W800(channel, LinkSettings(DeviceIdentity(PK, DN, DS), endpoint), Events())
    with pytest.raises(UnsafeValue, match="longer than 128"):
        await dialect.connect()
    assert module.received == []


# --- AT+MQTTCONN answered in the orders ESP-AT firmware uses too ---------------------------


class ScriptedModule(asyncio.Transport):
    """A module answering each command line from a script (``OK`` by default) and each
    prompted data block with ``OK``."""

    def __init__(self, channel: AtChannel, script: dict[str, bytes]) -> None:
        super().__init__()
        self.channel = channel
        self.script = script
        channel.connection_made(self)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        answer = b"\r\nOK\r\n"
        if data.endswith(b"\r"):
            answer = self.script.get(data[:-1].decode().split("=", 1)[0], answer)
        asyncio.get_running_loop().call_soon(self.channel.data_received, answer)


_PROMPTED = {
    f"AT+MQTTLONG{field}": b"\r\nOK\r\n>" for field in ("CLIENTID", "USERNAME", "PASSWORD")
}
_JOINED = {"AT+CWJAP?": b'\r\n+CWJAP:"ssid","a4:56:02:7b:3c:11",6,-52\r\n\r\nOK\r\n'}


@pytest.mark.parametrize(
    ("answer", "up"),
    [
        (b'\r\nOK\r\n\r\n+MQTTCONNECTED:0,1,"h",1883,"",0\r\n', True),  # the manual
        (b'\r\n+MQTTCONNECTED:0,1,"h",1883,"",0\r\n\r\nOK\r\n', True),  # ESP-AT
        (b"\r\nOK\r\n\r\n+MQTTDISCONNECTED:0\r\n", False),
        (b"\r\n+MQTTDISCONNECTED:0\r\n\r\nERROR\r\n", False),
        (b"\r\nERROR\r\n", False),
    ],
)
async def test_connect_outcomes(answer: bytes, up: bool) -> None:
    channel = AtChannel()
    ScriptedModule(channel, {**_PROMPTED, **_JOINED, "AT+MQTTCONN": answer})
    events = Events()
    dialect = make_dialect(channel, events)
    if up:
        await dialect.connect()
    else:
        with pytest.raises(AuthRefused, match="check the device secret"):
            await dialect.connect()
    channel.data_received(b"\r\n+MQTTDISCONNECTED:0\r\n")
    assert events.lost == (["the W800 reported +MQTTDISCONNECTED"] if up else [])


async def test_reconnects_after_a_loss_by_cleaning_first(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, online: tuple[W800, Events]
) -> None:
    """With reconnect 0 the module refuses AT+MQTTCONN after a loss until AT+MQTTCLEAN."""
    dialect, events = online
    await module.drop_link()
    async with asyncio.timeout(2):
        await events.changed.wait()
    await dialect.connect()
    assert await dialect.is_connected()
    assert cloud.is_online(device)


async def test_ready_means_the_module_restarted(module: ModuleEmulator, channel: AtChannel) -> None:
    restarted: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    channel.on_restart = restarted.set_result
    await module.restart()
    async with asyncio.timeout(2):
        assert await restarted == "ready"

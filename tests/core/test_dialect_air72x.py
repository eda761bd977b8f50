"""Air72x dialect: exact commands, URC and reply parsing, refusals (seed 002)."""

from __future__ import annotations

import json
import logging

import pytest

from custom_components.aliyun_iot_at.core.channel import AtChannel
from custom_components.aliyun_iot_at.core.dialects import dialect_class
from custom_components.aliyun_iot_at.core.dialects.air72x import (
    MAX_PAYLOAD,
    Air72xDialect,
    apn_command,
    check_payload,
    firmware_version,
    mconnect_command,
    mpubex_command,
    msub_command,
    parse_auth_reply,
    parse_msub,
    start_command,
)
from custom_components.aliyun_iot_at.core.dialects.base import (
    DeviceIdentity,
    InboundMessage,
    LinkSettings,
    ModuleInfo,
)
from custom_components.aliyun_iot_at.core.errors import AuthRefused, LinkError, UnsafeValue

from .conftest import Events

# The seed's example device.
PK = "b0FMK1Ga5cp"
DN = "862991419835241"
DS = "y7MTCG6Gk33Ux26bbWSpANl4OaI0bg5Q"
IOT_ID = "jlvFGfQ11FlGOEJ4RoZU001013ba00"
IOT_TOKEN = "613d9cb0946741df98db1c50255a9dd0"
TOPIC = f"/sys/{PK}/{DN}/thing/service/property/set"


@pytest.fixture
async def fed(events: Events) -> tuple[AtChannel, Air72xDialect, Events]:
    """A dialect on a channel fed by hand (no port): what the module says goes straight in."""
    channel = AtChannel()
    return channel, Air72xDialect(channel, LinkSettings(DeviceIdentity(PK, DN, DS)), events), events


def test_registered_under_its_name() -> None:
    assert dialect_class("air72x") is Air72xDialect
    assert Air72xDialect.max_payload == MAX_PAYLOAD == 4100
    assert Air72xDialect.supports_tls


@pytest.mark.parametrize(
    "info",
    [
        ModuleInfo("AirM2M", "Air724UG"),
        ModuleInfo(None, None, "AirM2M_Air72xUy_V409_LTE_AT"),
        ModuleInfo("Luat", None),
        ModuleInfo(None, "AIR720UH"),
    ],
)
def test_recognises_the_module(info: ModuleInfo) -> None:
    assert Air72xDialect.matches(info)


@pytest.mark.parametrize(
    "info", [ModuleInfo("Quectel", "EC600S"), ModuleInfo("CMIOT", "ML302"), ModuleInfo()]
)
def test_does_not_claim_other_modules(info: ModuleInfo) -> None:
    assert not Air72xDialect.matches(info)


@pytest.mark.parametrize(
    ("lines", "version"),
    [
        (["AirM2M_Air72xUy_V409_LTE_AT"], 409),
        (["+CGMR: AirM2M_Air724UG_V401_LTE_AT"], 401),
        (["AirM2M_Air724UG_V1125_LTE_AT"], 1125),
        (["garbage", "AirM2M_Air720_V4"], 4),
        (["Revision: EC600SCNAAR01A01M16"], None),
        ([], None),
    ],
)
def test_firmware_version(lines: list[str], version: int | None) -> None:
    assert firmware_version(lines) == version


def test_apn_commands() -> None:
    assert apn_command("CMIOT") == 'AT+SAPBR=3,1,"APN","CMIOT"'
    assert apn_command("") == 'AT+SAPBR=3,1,"APN",""'
    for bad in ('cmnet",1', "cm\rnet", "a" * 65):
        with pytest.raises(UnsafeValue):
            apn_command(bad)


def test_tls_picks_the_seeds_sslmipstart() -> None:
    host = f"{PK}.iot-as-mqtt.cn-shanghai.aliyuncs.com"
    assert start_command(host, 1883, tls=True) == f'AT+SSLMIPSTART="{host}",1883'
    assert start_command(host, 1883, tls=False) == f'AT+MIPSTART="{host}",1883'
    with pytest.raises(UnsafeValue):
        start_command('evil",1\rAT+CFUN=0', 1883, tls=True)


def test_mconnect_keeps_aliyuns_keepalive_range() -> None:
    assert mconnect_command(300) == "AT+MCONNECT=1,300"
    assert mconnect_command(5) == "AT+MCONNECT=1,30"
    assert mconnect_command(99999) == "AT+MCONNECT=1,1200"


def test_subscribe_command() -> None:
    assert msub_command(TOPIC) == f'AT+MSUB="{TOPIC}",1'
    for bad in ('/a"b', "/a\rAT", "/" + "x" * 256):
        with pytest.raises(UnsafeValue):
            msub_command(bad)


def test_publish_command_is_length_prefixed() -> None:
    topic = f"/sys/{PK}/{DN}/thing/event/property/post"
    assert mpubex_command(topic, 1, 57) == f'AT+MPUBEX="{topic}",1,0,57'
    for bad in ('/a"b', "/a\r\nAT+CFUN=0", "/" + "x" * 256, "", "/ü"):
        with pytest.raises(UnsafeValue):
            mpubex_command(bad, 0, 1)


def test_payloads_the_module_cannot_carry_are_refused() -> None:
    check_payload(b'{"a":"x,\\"y\\"\r\n"}')
    check_payload(b"x" * MAX_PAYLOAD)
    for bad, why in (
        (b"", "empty"),
        (b"x" * (MAX_PAYLOAD + 1), "at most 4100"),
        (b"ab\x1acd", "Ctrl-Z"),
        (b"ab\x1bcd", "ESC"),
    ):
        with pytest.raises(UnsafeValue, match=why):
            check_payload(bad)


def test_msub_parsing() -> None:
    assert parse_msub(f'+MSUB: "{TOPIC}",11 byte,server send') == InboundMessage(
        TOPIC, b"server send"
    )
    assert parse_msub('+MSUB:"/t",2 bytes,{}') == InboundMessage("/t", b"{}")
    assert parse_msub("+MSUB: 0") is None


def test_auth_reply_of_the_seed() -> None:
    body = json.dumps(
        {"code": 200, "data": {"iotId": IOT_ID, "iotToken": IOT_TOKEN}, "message": "success"}
    )
    assert parse_auth_reply(200, body) == (IOT_ID, IOT_TOKEN, None, None)


def test_auth_reply_with_mqtt_resources() -> None:
    data = {
        "iotId": IOT_ID,
        "iotToken": IOT_TOKEN,
        "resources": {"mqtt": {"host": "iot-as-mqtt.example", "port": 1883}},
    }
    body = json.dumps({"code": 200, "data": data, "message": "success"})
    assert parse_auth_reply(200, body) == (IOT_ID, IOT_TOKEN, "iot-as-mqtt.example", 1883)


@pytest.mark.parametrize(
    "body",
    [
        '{"code":401,"data":{},"message":"sign mismatch"}',
        '{"code":460,"message":"missing parameter: sign"}',
        '{"code":"6100"}',
    ],
)
def test_auth_refusals(body: str) -> None:
    with pytest.raises(AuthRefused, match="refused the device"):
        parse_auth_reply(200, body)


@pytest.mark.parametrize(
    "body", ["", "<html>502</html>", "[1]", '{"code":200,"data":{"iotId":"x"}}']
)
def test_unreadable_auth_replies(body: str) -> None:
    with pytest.raises(LinkError) as caught:
        parse_auth_reply(502, body)
    assert not isinstance(caught.value, AuthRefused)


async def test_messages_are_cut_by_their_length(
    fed: tuple[AtChannel, Air72xDialect, Events],
) -> None:
    channel, _, events = fed
    tricky = b'{"id":"1","params":{"t":"a,\\"b\\"\r\n+MSUB: x\r\nOK"}}'
    head = f'+MSUB: "{TOPIC}",{len(tricky)} byte,'.encode()
    # In pieces, as a serial port delivers it: the header first, the payload split.
    channel.data_received(b"\r\n" + head[:9])
    channel.data_received(head[9:] + tricky[:10])
    assert events.messages == []
    channel.data_received(tricky[10:] + b"\r\n" + b'+MSUB: "/t",2 byte,{}\r\n')
    assert events.messages == [InboundMessage(TOPIC, tricky), InboundMessage("/t", b"{}")]


async def test_utf8_payload_length_counts_bytes(
    fed: tuple[AtChannel, Air72xDialect, Events],
) -> None:
    channel, _, events = fed
    payload = '{"name":"客厅"}'.encode()
    channel.data_received(f'+MSUB: "/t",{len(payload)} byte,'.encode() + payload + b"\r\n")
    assert events.messages == [InboundMessage("/t", payload)]


async def test_closed_without_a_session_is_no_loss(
    fed: tuple[AtChannel, Air72xDialect, Events],
) -> None:
    channel, _, events = fed
    channel.data_received(b"\r\nCLOSED\r\n")  # e.g. after AT+MIPCLOSE while connecting
    assert events.lost == []


async def test_http_reply_credentials_never_reach_the_log(
    fed: tuple[AtChannel, Air72xDialect, Events], caplog: pytest.LogCaptureFixture
) -> None:
    channel, _, _ = fed
    body = (
        f'{{"code":200,"data":{{"iotId":"{IOT_ID}","iotToken":"{IOT_TOKEN}"}},"message":"success"}}'
    ).encode()
    caplog.set_level(logging.DEBUG)
    channel.data_received(f"\r\n+HTTPREAD: {len(body)}\r\n".encode() + body + b"\r\nOK\r\n")
    assert IOT_TOKEN not in caplog.text
    assert IOT_ID not in caplog.text
    assert channel.mask(f"{IOT_ID}/{IOT_TOKEN}") == "******/******"

"""Quectel dialect: exact commands, result and URC parsing, refusals (seed 004)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
import logging
from pathlib import Path
import socket

import pytest

from custom_components.aliyun_iot_at.core.channel import AtChannel
from custom_components.aliyun_iot_at.core.dialects import dialect_class, guess_dialect
from custom_components.aliyun_iot_at.core.dialects.base import (
    DeviceIdentity,
    Endpoint,
    InboundMessage,
    LinkSettings,
    ModuleInfo,
)
from custom_components.aliyun_iot_at.core.dialects.quectel import (
    MessageIds,
    QuectelDialect,
    apn_command,
    client_opened,
    configure_commands,
    connect_command,
    connect_failure,
    open_command,
    open_failure,
    parse_codes,
    parse_recv,
    publish_command,
    session_connected,
    stat_reason,
    subscribe_command,
)
from custom_components.aliyun_iot_at.core.errors import (
    AuthRefused,
    LinkError,
    NoNetwork,
    PublishFailed,
    SimNotReady,
    UnsafeValue,
)
from testbed.cloud import AliyunCloud
from testbed.emulator import ModuleEmulator

from .conftest import Events, emulated

# The seed's own example triple and topics.
PK = "a1wFylTxYeD"
DN = "co_0001"
DS = "7ab0c4b3532b5783df5fdc58a2895d7a"
IDENTITY = DeviceIdentity(PK, DN, DS)
SET_TOPIC = f"/sys/{PK}/{DN}/thing/service/property/set"
POST_TOPIC = f"/sys/{PK}/{DN}/thing/event/property/post"


def settings(endpoint: Endpoint | None = None, keepalive: int = 300, apn: str = "") -> LinkSettings:
    return LinkSettings(IDENTITY, endpoint or Endpoint(), keepalive, apn)


def test_registered_under_its_name() -> None:
    assert dialect_class("quectel") is QuectelDialect
    assert QuectelDialect.reports_link_loss is True
    assert QuectelDialect.supports_tls is True


@pytest.mark.parametrize(
    "info",
    [
        ModuleInfo("Quectel", "EC600S"),
        ModuleInfo("QUECTEL", "EC200S"),
        ModuleInfo("Quectel_Ltd", "EG912Y"),
        ModuleInfo("Quectel", "EC800N"),
    ],
)
def test_recognises_the_qmt_family(info: ModuleInfo) -> None:
    assert QuectelDialect.matches(info)
    assert guess_dialect(info) == "quectel"


@pytest.mark.parametrize(
    "info", [ModuleInfo("CMIOT", "ML302-DNLM"), ModuleInfo(None, "EC600S"), ModuleInfo()]
)
def test_does_not_claim_other_modules(info: ModuleInfo) -> None:
    assert not QuectelDialect.matches(info)


# --- commands -----------------------------------------------------------------------------


def test_configuration_follows_the_seed() -> None:
    assert configure_commands(settings(keepalive=60)) == [
        'AT+QMTCFG="recv/mode",0,0,1',
        f'AT+QMTCFG="aliauth",0,"{PK}","{DN}","{DS}"',
        'AT+QMTCFG="keepalive",0,60',
        'AT+QMTCFG="ssl",0,0',
    ]


def test_tls_and_keepalive_bounds() -> None:
    commands = configure_commands(settings(Endpoint(tls=True), keepalive=5))
    assert commands[2:] == ['AT+QMTCFG="keepalive",0,30', 'AT+QMTCFG="ssl",0,1,2']
    commands = configure_commands(settings(keepalive=99999))
    assert commands[2] == 'AT+QMTCFG="keepalive",0,1200'


@pytest.mark.parametrize(
    ("identity", "what"),
    [
        (DeviceIdentity('a1",1', DN, DS), "product key contains"),
        (DeviceIdentity(PK, "温度", DS), "device name contains non-ASCII"),
        (DeviceIdentity(PK, DN, 'ab"cd'), "device secret contains"),
        (DeviceIdentity(PK, DN, "ab\rAT+QMTDISC=0"), "device secret contains a control"),
        (DeviceIdentity(PK, DN, ""), "device secret is empty"),
    ],
)
def test_unsafe_triples_are_refused(identity: DeviceIdentity, what: str) -> None:
    with pytest.raises(UnsafeValue, match=what) as caught:
        configure_commands(LinkSettings(identity))
    assert not identity.device_secret or identity.device_secret not in str(caught.value)


def test_apn_command() -> None:
    assert apn_command("CMNET") == 'AT+QICSGP=1,1,"CMNET","","",1'
    for bad in ('CM"NET', "CM\r\nNET", "a" * 101):
        with pytest.raises(UnsafeValue):
            apn_command(bad)


def test_open_command() -> None:
    host = "iot-as-mqtt.cn-shanghai.aliyuncs.com"
    assert open_command(host, 1883) == f'AT+QMTOPEN=0,"{host}",1883'
    assert open_command("h" * 100, 443) == f'AT+QMTOPEN=0,"{"h" * 100}",443'
    with pytest.raises(UnsafeValue, match="longer than 100"):
        open_command("h" * 101, 1883)
    with pytest.raises(UnsafeValue, match="out of range"):
        open_command(host, 65536)
    with pytest.raises(UnsafeValue):
        open_command('h",1883\rAT', 1883)


def test_connect_command() -> None:
    assert connect_command("clientExample_0") == 'AT+QMTCONN=0,"clientExample_0"'
    assert connect_command(f"{PK}.{DN}") == f'AT+QMTCONN=0,"{PK}.{DN}"'
    for bad in ("a|b", "a,b", "a=b", "c" * 65, 'a"b'):
        with pytest.raises(UnsafeValue):
            connect_command(bad)


def test_subscribe_command() -> None:
    assert subscribe_command(1, SET_TOPIC, 0) == f'AT+QMTSUB=0,1,"{SET_TOPIC}",0'
    assert subscribe_command(7, SET_TOPIC) == f'AT+QMTSUB=0,7,"{SET_TOPIC}",1'
    with pytest.raises(UnsafeValue, match="QoS"):
        subscribe_command(1, SET_TOPIC, 2)
    for bad in ('/a"b', "/a\r\nAT", "/温度"):
        with pytest.raises(UnsafeValue):
            subscribe_command(1, bad)


def test_publish_command_is_the_seeds_example() -> None:
    assert publish_command(0, POST_TOPIC, 103, 0) == f'AT+QMTPUBEX=0,0,0,0,"{POST_TOPIC}",103'
    assert publish_command(9, POST_TOPIC, 2, 1) == f'AT+QMTPUBEX=0,9,1,0,"{POST_TOPIC}",2'
    with pytest.raises(UnsafeValue, match="QoS"):
        publish_command(1, POST_TOPIC, 2, 2)


def test_message_ids_rotate_through_1_to_65535() -> None:
    ids = MessageIds()
    assert [ids.next() for _ in range(3)] == [1, 2, 3]
    for _ in range(65532):
        ids.next()
    assert [ids.next() for _ in range(2)] == [1, 2]


# --- answers ------------------------------------------------------------------------------

SEED_PAYLOAD = (
    b'{"method":"thing.service.property.set","id":"220958108",'
    b'"params":{"PowerSwitch_1":1},"version":"1.0.0"}'
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # The seed's own URC (its length, 103, is right).
        (
            f'+QMTRECV: 0,0,"{SET_TOPIC}",103,"{SEED_PAYLOAD.decode()}"',
            InboundMessage(SET_TOPIC, SEED_PAYLOAD),
        ),
        # Quotes, commas, CR LF, even an "OK" line inside the payload: the length rules.
        (
            f'+QMTRECV: 0,5,"{SET_TOPIC}",13,"a","b"\r\nOK\r\n,"',
            InboundMessage(SET_TOPIC, b'a","b"\r\nOK\r\n,'),
        ),
        # The length counts bytes, not characters.
        (f'+QMTRECV: 0,0,"{SET_TOPIC}",6,"温度"', InboundMessage(SET_TOPIC, "温度".encode())),
        # Without the length (recv/mode not taking effect): up to the line's last quote.
        (f'+QMTRECV: 0,0,"{SET_TOPIC}","{{"a":"x,y"}}"', InboundMessage(SET_TOPIC, b'{"a":"x,y"}')),
        (f'+QMTRECV:0,0,"{SET_TOPIC}",0,""', InboundMessage(SET_TOPIC, b"")),
    ],
)
def test_parse_recv(text: str, message: InboundMessage) -> None:
    assert parse_recv(text) == message


@pytest.mark.parametrize(
    "text",
    [
        f'+QMTRECV: 0,0,"{SET_TOPIC}",5,"abc"',  # shorter than its length
        f'+QMTRECV: 0,0,"{SET_TOPIC}",2,"abc"',  # longer than its length
        "+QMTRECV: 0,3",  # buffer mode's notice: not asked for
        f"+QMTRECV: 0,0,{SET_TOPIC},{{}}",
    ],
)
def test_parse_recv_refuses_malformed(text: str) -> None:
    assert parse_recv(text) is None


def test_parse_codes() -> None:
    assert parse_codes(" 0,0,4") == (0, 0, 4)
    assert parse_codes("0,-1") == (0, -1)
    assert parse_codes(' 0,"host",1883') is None
    assert parse_codes("") is None


def test_session_state_queries() -> None:
    assert session_connected(["+QMTCONN: 0,3"])
    assert not session_connected(["+QMTCONN: 0,1"])
    assert not session_connected(["+QMTCONN: 1,3"])
    assert not session_connected([])
    assert client_opened(['+QMTOPEN: 0,"iot-as-mqtt.cn-shanghai.aliyuncs.com",1883'])
    assert not client_opened(['+QMTOPEN: 2,"h",1883'])
    assert not client_opened([])


def test_stat_reasons() -> None:
    assert stat_reason(2) == "+QMTSTAT: 0,2 (sending PINGREQ timed out or failed)"
    assert stat_reason(9) == "+QMTSTAT: 0,9 (unknown error)"


@pytest.mark.parametrize(
    ("result", "error", "text"),
    [
        (3, NoNetwork, "no data connection: +QMTOPEN: 0,3 (failed to activate the PDP context)"),
        (4, LinkError, "cannot resolve broker.example: +QMTOPEN: 0,4 (failed to parse the"),
        (5, LinkError, "connect to broker.example:8883: +QMTOPEN: 0,5 (network connection"),
        (-1, LinkError, "connect to broker.example:8883: +QMTOPEN: 0,-1 (failed to open the"),
        (1, LinkError, "+QMTOPEN: 0,1 (wrong parameter)"),
    ],
)
def test_open_failures(result: int, error: type[LinkError], text: str) -> None:
    failure = open_failure(result, "broker.example", 8883)
    assert type(failure) is error
    assert text in str(failure)


@pytest.mark.parametrize(
    ("codes", "error", "text"),
    [
        ((0, 4), AuthRefused, "credentials: +QMTCONN: 0,0,4 (bad user name or password)"),
        ((0, 5), AuthRefused, "credentials: +QMTCONN: 0,0,5 (not authorized)"),
        ((0, 2), LinkError, "refused the session: +QMTCONN: 0,0,2 (identifier rejected)"),
        ((0, 3), LinkError, "+QMTCONN: 0,0,3 (server unavailable)"),
        ((2,), LinkError, "got no answer: +QMTCONN: 0,2 (failed to send)"),
    ],
)
def test_connect_failures(codes: tuple[int, ...], error: type[LinkError], text: str) -> None:
    failure = connect_failure(codes)
    assert type(failure) is error
    assert text in str(failure)


def test_an_accepted_connect_is_no_failure() -> None:
    assert connect_failure((0, 0)) is None
    assert connect_failure((0,)) is None


# --- against the emulated module over a pty ------------------------------------------------


@pytest.fixture
async def module(tmp_path: Path, offline_port: int) -> AsyncIterator[ModuleEmulator]:
    """No broker: the module's MQTT cannot get through (tests needing one use ``cloud``)."""
    async with ModuleEmulator("quectel", link=tmp_path / "tty", mqtt_port=offline_port) as emulator:
        yield emulator


async def new_dialect(
    channel: AtChannel, events: Events, link: LinkSettings | None = None
) -> QuectelDialect:
    dialect = QuectelDialect(channel, link or settings(), events)
    await dialect.initialize()
    return dialect


async def test_attach_follows_the_seed(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    dialect = await new_dialect(channel, events, settings(apn="CMIOT"))
    await dialect.attach()
    assert module.received[-4:] == [
        "AT+CPIN?",
        "AT+CEREG?",
        'AT+QICSGP=1,1,"CMIOT","","",1',
        "AT+QIACT=1",
    ]
    assert (await channel.command("AT+QICSGP=1"))[0] == '+QICSGP: 1,"CMIOT","","",1'
    # Again, with the context up: QIACT answers ERROR, the query shows it active.
    await dialect.attach()
    assert module.received[-2:] == ["AT+QIACT=1", "AT+QIACT?"]


async def test_without_an_apn_the_modules_default_stays(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    dialect = await new_dialect(channel, events)
    await dialect.attach()
    assert not any(line.startswith("AT+QICSGP") for line in module.received)


async def test_registered_on_gprs_only_will_do(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    dialect = await new_dialect(channel, events)
    module.fail_next("AT+CEREG?", "ERROR")
    await dialect.attach()
    assert module.received[-3:] == ["AT+CEREG?", "AT+CGREG?", "AT+QIACT=1"]


async def test_attach_failures(module: ModuleEmulator, channel: AtChannel, events: Events) -> None:
    dialect = await new_dialect(channel, events, replace(settings(), attach_timeout=0))
    module.registered = False
    with pytest.raises(NoNetwork, match="CGREG"):
        await dialect.attach()
    module.sim_ready = False
    with pytest.raises(SimNotReady):
        await dialect.attach()


async def test_a_context_that_cannot_come_up_is_no_network(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    dialect = await new_dialect(channel, events)
    module.fail_next("AT+QIACT=1", "+CME ERROR: 30")  # no network service
    with pytest.raises(NoNetwork, match="AT\\+QIACT=1: \\+CME ERROR: 30"):
        await dialect.attach()


async def test_connect_sends_the_seeds_sequence(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    dialect = await new_dialect(channel, events, settings(Endpoint("us-west-1", tls=True)))
    with pytest.raises(LinkError, match="got no answer: \\+QMTCONN: 0,2"):
        await dialect.connect()  # nothing listens behind the module
    host = f"{PK}.iot-as-mqtt.us-west-1.aliyuncs.com"
    assert module.received[-6:] == [
        *configure_commands(settings(Endpoint(tls=True))),
        f'AT+QMTOPEN=0,"{host}",443',
        f'AT+QMTCONN=0,"{PK}.{DN}"',
    ]
    assert module.mqtt.target == (host, 443, True)


async def test_a_client_left_open_is_closed_and_opened_again(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    await channel.command('AT+QMTOPEN=0,"left.over",1883')
    dialect = await new_dialect(channel, events)
    with pytest.raises(LinkError, match="got no answer"):
        await dialect.connect()
    opens = [line for line in module.received if line.startswith("AT+QMTOPEN=0,")]
    assert opens[-2:] == [open_command(f"{PK}.iot-as-mqtt.cn-shanghai.aliyuncs.com", 1883)] * 2
    assert module.received[-3:-1] == ["AT+QMTCLOSE=0", opens[-1]]


async def test_open_results_reach_the_user(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    dialect = await new_dialect(channel, events, settings(Endpoint(host="no such host")))
    with pytest.raises(LinkError, match="cannot resolve no such host: \\+QMTOPEN: 0,4"):
        await dialect.connect()
    dialect = await new_dialect(channel, events)
    module.registered = False
    with pytest.raises(NoNetwork, match="\\+QMTOPEN: 0,3"):
        await dialect.connect()


async def test_a_connection_closed_during_connect_fails_it(
    tmp_path: Path, socket_enabled: None, events: Events
) -> None:
    with socket.socket() as silent:  # takes the TCP connection, never answers CONNECT
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.setblocking(False)
        port = silent.getsockname()[1]
        async with emulated("quectel", tmp_path / "tty", port) as (module, channel):
            dialect = await new_dialect(channel, events)
            connecting = asyncio.create_task(dialect.connect())
            # The module dials out once it took AT+QMTCONN.
            peer, _ = await asyncio.get_running_loop().sock_accept(silent)
            module.inject(b"\r\n+QMTSTAT: 0,4\r\n")
            with pytest.raises(LinkError, match="closed during the MQTT CONNECT") as caught:
                await connecting
        peer.close()
    assert "+QMTSTAT: 0,4 (receiving CONNACK timed out or failed)" in str(caught.value)
    assert events.lost == []


async def test_a_refused_configuration_names_the_command_without_the_secret(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    dialect = await new_dialect(channel, events)
    module.fail_next('AT+QMTCFG="aliauth"', "ERROR")
    with pytest.raises(LinkError, match='AT\\+QMTCFG="aliauth"') as caught:
        await dialect.connect()
    assert DS not in str(caught.value)
    assert not any(line.startswith("AT+QMTOPEN") for line in module.received)


async def test_unsafe_values_are_refused_before_anything_is_sent(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    bad_client = replace(settings(), client_id="a,b")
    dialect = await new_dialect(channel, events, bad_client)
    with pytest.raises(UnsafeValue, match="client id"):
        await dialect.connect()
    assert not any(line.startswith("AT+QMT") for line in module.received)


async def test_without_a_session_mqtt_commands_fail_typed(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    dialect = await new_dialect(channel, events)
    with pytest.raises(PublishFailed, match="publishing to"):
        await dialect.publish(POST_TOPIC, b"{}")
    with pytest.raises(LinkError, match="subscribing to"):
        await dialect.subscribe([SET_TOPIC])
    assert await dialect.is_connected() is False
    received = len(module.received)
    with pytest.raises(UnsafeValue, match="at most 10 topics"):
        await dialect.subscribe([f"{SET_TOPIC}/{n}" for n in range(11)])
    with pytest.raises(UnsafeValue, match="empty"):
        await dialect.publish(POST_TOPIC, b"")
    with pytest.raises(UnsafeValue, match="at most 4096 bytes"):
        await dialect.publish(POST_TOPIC, b"x" * 4097)
    with pytest.raises(UnsafeValue, match="QoS"):
        await dialect.publish(POST_TOPIC, b"{}", qos=2)
    assert len(module.received) == received  # refused, not sent


async def test_disconnect_closes_a_client_that_never_connected(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    await channel.command('AT+QMTOPEN=0,"left.over",1883')
    dialect = await new_dialect(channel, events)
    await dialect.disconnect()
    assert module.received[-3:] == ["AT+QMTDISC=0", "AT+QMTOPEN?", "AT+QMTCLOSE=0"]
    assert await channel.command("AT+QMTOPEN?") == []


async def test_messages_are_framed_by_their_length(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    await new_dialect(channel, events)
    payload = b'{"a":"x,\\"y\\""}\r\nOK\r\n+QMTSTAT: 0,1\r\n'
    urc = f'\r\n+QMTRECV: 0,0,"{SET_TOPIC}",{len(payload)},"'.encode() + payload + b'"\r\n'
    for start in range(0, len(urc), 7):  # in small pieces, as a slow port delivers it
        module.inject(urc[start : start + 7])
    await channel.command("AT")  # the URC was read before this answer
    assert events.messages == [InboundMessage(SET_TOPIC, payload)]
    assert events.lost == []


# --- with the local cloud behind the module --------------------------------------------------


@pytest.fixture
async def connected(
    cloud: AliyunCloud, tmp_path: Path, events: Events
) -> AsyncIterator[tuple[ModuleEmulator, AtChannel, QuectelDialect]]:
    """A dialect with its session up, through the emulated module to the cloud."""
    cloud.add_device(PK, DN, DS)
    async with emulated("quectel", tmp_path / "tty", cloud.mqtt_port) as (emulator, channel):
        dialect = await new_dialect(channel, events)
        await dialect.attach()
        await dialect.connect()
        await dialect.subscribe([SET_TOPIC, SET_TOPIC])  # a duplicate is subscribed once
        yield emulator, channel, dialect


async def test_a_connected_session(
    connected: tuple[ModuleEmulator, AtChannel, QuectelDialect], events: Events
) -> None:
    module, _, dialect = connected
    assert await dialect.is_connected() is True
    assert [line for line in module.received if line.startswith("AT+QMTSUB")] == [
        f'AT+QMTSUB=0,1,"{SET_TOPIC}",1'
    ]
    await dialect.publish(POST_TOPIC, b'{"id":"1"}', qos=1)
    await dialect.publish(POST_TOPIC, b'{"id":"2"}')
    assert [line for line in module.received if line.startswith("AT+QMTPUBEX")] == [
        f'AT+QMTPUBEX=0,2,1,0,"{POST_TOPIC}",10',
        f'AT+QMTPUBEX=0,0,0,0,"{POST_TOPIC}",10',
    ]


async def test_qmtstat_reports_the_loss_once_with_its_meaning(
    connected: tuple[ModuleEmulator, AtChannel, QuectelDialect], events: Events
) -> None:
    module, channel, _ = connected
    module.inject(b"\r\n+QMTSTAT: 3,1\r\n")  # another client: not ours
    module.inject(b"\r\n+QMTSTAT: 0,7\r\n\r\n+QMTSTAT: 0,1\r\n")
    await channel.command("AT")
    assert events.lost == [
        "the module reported +QMTSTAT: 0,7 (the link is not alive or the server is unavailable)"
    ]


async def test_disconnect_ends_the_session(
    cloud: AliyunCloud, connected: tuple[ModuleEmulator, AtChannel, QuectelDialect], events: Events
) -> None:
    module, _, dialect = connected
    await dialect.disconnect()
    assert module.received[-2:] == ["AT+QMTDISC=0", "AT+QMTOPEN?"]  # DISC closed it as well
    assert await dialect.is_connected() is False
    assert not module.mqtt.connected
    assert events.lost == []  # asked for: not a loss


async def test_the_secret_never_reaches_the_log(
    connected: tuple[ModuleEmulator, AtChannel, QuectelDialect],
    caplog: pytest.LogCaptureFixture,
) -> None:
    module, _, dialect = connected
    caplog.set_level(logging.DEBUG)
    await dialect.connect()  # again: the client is still open, so it is closed first
    assert 'AT+QMTCFG="aliauth"' in caplog.text
    assert "AT+QMTCLOSE=0" in caplog.text
    assert DS not in caplog.text
    assert DS in "".join(module.received)  # it did go to the module

"""ML302 dialect: exact commands, URC parsing, refusals (seed 001)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
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
from custom_components.aliyun_iot_at.core.dialects.ml302 import (
    Ml302Dialect,
    configure_commands,
    describe,
    parse_recv,
    publish_command,
    region_code,
    subscribe_command,
)
from custom_components.aliyun_iot_at.core.errors import (
    AtCommandError,
    AuthRefused,
    CmeError,
    LinkError,
    NoNetwork,
    PublishFailed,
    SimNotReady,
    UnsafeValue,
)
from testbed.emulator import ModuleEmulator

from .conftest import Events

PK = "a1pnQWj9dvs"
DN = "test"
DS = "C5LTDEyQj6wMXh8KaNICzvCSgi69Ysj8"
IDENTITY = DeviceIdentity(PK, DN, DS)
TOPIC = f"/{PK}/{DN}/user/test"


def settings(endpoint: Endpoint | None = None, keepalive: int = 300) -> LinkSettings:
    return LinkSettings(IDENTITY, endpoint or Endpoint(), keepalive)


def test_registered_under_its_name() -> None:
    assert dialect_class("ml302") is Ml302Dialect
    assert Ml302Dialect.reports_link_loss is False


def test_recognises_the_module() -> None:
    assert Ml302Dialect.matches(ModuleInfo("CMIOT", "ML302-DNLM"))
    assert not Ml302Dialect.matches(ModuleInfo("Quectel", "EC600S"))
    assert not Ml302Dialect.matches(ModuleInfo())


def test_configure_sequence_follows_the_manual_example() -> None:
    assert configure_commands(settings(keepalive=60)) == [
        f'AT+ALYPRODUCTKEY="{PK}"',
        f'AT+ALYDEVICENAME="{DN}"',
        f'AT+ALYDEVICESECRET="{DS}"',
        "AT+ALYCONNECTCFG=0,1883,0",
        "AT+ALYMQTTCFG=1,5000,60000",
    ]


def test_tls_region_port_and_keepalive_bounds() -> None:
    commands = configure_commands(
        settings(endpoint=Endpoint("eu-central-1", tls=True), keepalive=5)
    )
    assert commands[3:] == ["AT+ALYCONNECTCFG=4,443,1", "AT+ALYMQTTCFG=1,5000,30000"]
    commands = configure_commands(settings(endpoint=Endpoint(port=8883, tls=True), keepalive=9999))
    assert commands[3:] == ["AT+ALYCONNECTCFG=0,8883,1", "AT+ALYMQTTCFG=1,5000,1200000"]


@pytest.mark.parametrize(
    ("region", "code"),
    [
        ("cn-shanghai", 0),
        ("ap-southeast-1", 1),
        ("ap-northeast-1", 2),
        ("us-west-1", 3),
        ("eu-central-1", 4),
    ],
)
def test_region_codes(region: str, code: int) -> None:
    assert region_code(Endpoint(region), PK) == code


def test_a_typed_public_host_maps_to_its_region() -> None:
    host = f"{PK}.IOT-AS-MQTT.ap-northeast-1.aliyuncs.com"
    assert region_code(Endpoint(host=host), PK) == 2


@pytest.mark.parametrize(
    "endpoint",
    [Endpoint(host="iot-06z00abc.mqtt.iothub.aliyuncs.com"), Endpoint("us-east-1")],
)
def test_unreachable_endpoints_are_refused(endpoint: Endpoint) -> None:
    with pytest.raises(LinkError, match="ML302 cannot connect"):
        region_code(endpoint, PK)


@pytest.mark.parametrize(
    ("identity", "what"),
    [
        (DeviceIdentity("a" * 21, DN, DS), "product key is longer than 20"),
        (DeviceIdentity(PK, "d" * 33, DS), "device name is longer than 32"),
        (DeviceIdentity(PK, DN, "s" * 65), "device secret is longer than 64"),
        (DeviceIdentity(PK, 'x",1', DS), "device name contains"),
        (DeviceIdentity(PK, DN, "ab\rAT+X"), "device secret contains a control"),
    ],
)
def test_unsafe_triples_are_refused(identity: DeviceIdentity, what: str) -> None:
    with pytest.raises(UnsafeValue, match=what) as caught:
        configure_commands(LinkSettings(identity))
    assert identity.device_secret not in str(caught.value)


def test_subscribe_command() -> None:
    assert subscribe_command(TOPIC) == f'AT+ALYMQTTSUB="{TOPIC}",1'
    assert subscribe_command(TOPIC, 0) == f'AT+ALYMQTTSUB="{TOPIC}",0'
    for bad in ("/a,b", '/a"b', "/a\r\nAT"):
        with pytest.raises(UnsafeValue):
            subscribe_command(bad)


def test_publish_escapes_quotes_like_the_manual() -> None:
    command = publish_command(TOPIC, b'{"message":"hello!"}', 0, 1024)
    assert command == f'AT+ALYMQTTPUB="{TOPIC}",0,"{{\\"message\\":\\"hello!\\"}}"'


def test_publish_carries_commas_and_utf8() -> None:
    payload = '{"a":1,"t":"温度, 高"}'.encode()
    command = publish_command(TOPIC, payload, 1, 1024)
    assert command == f'AT+ALYMQTTPUB="{TOPIC}",1,"{{\\"a\\":1,\\"t\\":\\"温度, 高\\"}}"'


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b'{"a":"x\\"y"}', "contains '\\\\\\\\'"),
        (b'{"a":"line\nbreak"}', "control character"),
        (b"ctrl-z\x1a", "control character"),
        (b"\xff\xfe", "not UTF-8"),
        (b"", "empty"),
        (b'"' * 513, "longer than 1024 bytes once escaped"),
    ],
)
def test_publish_refuses_what_it_cannot_carry(payload: bytes, why: str) -> None:
    with pytest.raises(UnsafeValue, match=why):
        publish_command(TOPIC, payload, 0, 1024)


def test_publish_payload_at_the_limit() -> None:
    assert publish_command(TOPIC, b'"' * 512, 0, 1024).endswith('\\"' * 512 + '"')


def test_publish_refuses_qos2_and_unsafe_topics() -> None:
    with pytest.raises(UnsafeValue, match="QoS"):
        publish_command(TOPIC, b"{}", 2, 1024)
    with pytest.raises(UnsafeValue):
        publish_command('/a"b', b"{}", 0, 1024)


@pytest.mark.parametrize(
    ("line", "topic", "payload"),
    [
        # The manual's example: no space after the colon.
        (f'+MQTTRECV:{TOPIC},{{"message":"hello!"}}', TOPIC, b'{"message":"hello!"}'),
        # The syntax line: a space after the colon; the payload keeps its commas and quotes.
        (f'+MQTTRECV: {TOPIC},{{"a":"x,y","b":[1,2]}}', TOPIC, b'{"a":"x,y","b":[1,2]}'),
        (f'+MQTTRECV: "{TOPIC}",plain, text', TOPIC, b"plain, text"),
        (f"+ MQTTRECV: {TOPIC},温度", TOPIC, "温度".encode()),
        (f"+MQTTRECV: {TOPIC},", TOPIC, b""),
    ],
)
def test_parse_recv(line: str, topic: str, payload: bytes) -> None:
    assert parse_recv(line) == InboundMessage(topic, payload)


@pytest.mark.parametrize("line", ["+MQTTRECV: no-comma", "+MQTTRECV: ,payload", "+OTHER: a,b"])
def test_parse_recv_refuses_malformed(line: str) -> None:
    assert parse_recv(line) is None


def test_describe_names_the_manual_meaning() -> None:
    cme = CmeError("AT+ALYMQTTOPEN", "+CME ERROR: 704", "CME", 704)
    assert describe(cme) == "+CME ERROR: 704 (no device secret)"
    assert describe(AtCommandError("AT", "ERROR")) == "ERROR"


# --- against the emulated module over a pty (no cloud: the broker port is closed) ----------


@pytest.fixture
async def module(tmp_path: Path, offline_port: int) -> AsyncIterator[ModuleEmulator]:
    async with ModuleEmulator("ml302", link=tmp_path / "tty", mqtt_port=offline_port) as emulator:
        yield emulator


async def new_dialect(channel: AtChannel, events: Events, link: LinkSettings) -> Ml302Dialect:
    dialect = Ml302Dialect(channel, link, events)
    await dialect.initialize()
    return dialect


async def test_connect_configures_the_module_before_opening(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    dialect = await new_dialect(channel, events, settings(Endpoint("us-west-1", tls=True)))
    await dialect.attach()
    with pytest.raises(NoNetwork, match="700 \\(network error\\)"):
        await dialect.connect()  # the broker cannot be reached: +CME ERROR: 700
    assert module.received[-7:] == [
        "AT+ALYMQTTCLOSE",  # answered 705 (nothing open) and ignored
        *configure_commands(settings(Endpoint("us-west-1", tls=True))),
        "AT+ALYMQTTOPEN",
    ]
    assert module.mqtt.target == (f"{PK}.iot-as-mqtt.us-west-1.aliyuncs.com", 443, True)


@pytest.mark.parametrize(
    ("answer", "error", "text"),
    [
        ("+CME ERROR: 701", LinkError, "no product key"),
        ("+CME ERROR: 703", LinkError, "no device name"),
        ("+CME ERROR: 704", LinkError, "no device secret"),
        ("+CME ERROR: 707", LinkError, "MQTT already open"),
        ("ERROR", AuthRefused, "refused the device's credentials"),
    ],
)
async def test_open_failures_are_typed(
    module: ModuleEmulator,
    channel: AtChannel,
    events: Events,
    answer: str,
    error: type[LinkError],
    text: str,
) -> None:
    dialect = await new_dialect(channel, events, settings())
    module.fail_next("AT+ALYMQTTOPEN", answer)
    with pytest.raises(error, match=text) as caught:
        await dialect.connect()
    assert type(caught.value) is error


async def test_a_plain_error_off_network_is_no_network(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    dialect = await new_dialect(channel, events, settings())
    module.fail_next("AT+ALYMQTTOPEN", "ERROR")
    module.registered = False
    with pytest.raises(NoNetwork):
        await dialect.connect()


async def test_a_refused_configuration_names_the_command_without_the_secret(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    dialect = await new_dialect(channel, events, settings())
    module.fail_next("AT+ALYDEVICESECRET", "+CME ERROR: 706")
    with pytest.raises(LinkError, match="operation not allowed") as caught:
        await dialect.connect()
    assert "AT+ALYDEVICESECRET" in str(caught.value)
    assert DS not in str(caught.value)


async def test_a_typed_host_is_refused_before_anything_is_sent(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    custom = Endpoint(host="iot-06z00abc.mqtt.iothub.aliyuncs.com")
    dialect = await new_dialect(channel, events, settings(custom))
    with pytest.raises(LinkError, match="only knows Aliyun's public regions"):
        await dialect.connect()
    assert not [line for line in module.received if line.startswith("AT+ALY")]


async def test_attach_failures(module: ModuleEmulator, channel: AtChannel, events: Events) -> None:
    dialect = await new_dialect(channel, events, replace(settings(), attach_timeout=0))
    module.registered = False
    with pytest.raises(NoNetwork, match="CEREG"):
        await dialect.attach()
    module.sim_ready = False
    with pytest.raises(SimNotReady):
        await dialect.attach()


async def test_without_a_session_mqtt_commands_fail_typed(
    channel: AtChannel, events: Events
) -> None:
    dialect = await new_dialect(channel, events, settings())
    with pytest.raises(PublishFailed, match="705 \\(invalid operation\\)"):
        await dialect.publish(TOPIC, b"{}")
    with pytest.raises(LinkError, match="subscribing to"):
        await dialect.subscribe([TOPIC])
    with pytest.raises(LinkError, match="at most 10 topics"):
        await dialect.subscribe([f"{TOPIC}/{n}" for n in range(11)])
    assert await dialect.is_connected() is False


async def test_the_probe_is_a_tiny_ntp_request(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    dialect = await new_dialect(channel, events, settings())
    await dialect.is_connected()
    probe = module.received[-1]
    prefix = f'AT+ALYMQTTPUB="/ext/ntp/{PK}/{DN}/request",0,"{{\\"deviceSendTime\\":\\"'
    assert probe.startswith(prefix)
    assert probe.endswith('\\"}"')


async def test_messages_arrive_even_inside_a_command_answer(
    module: ModuleEmulator, channel: AtChannel, events: Events
) -> None:
    dialect = await new_dialect(channel, events, settings())
    module.urc_inside_next(f'+MQTTRECV:{TOPIC},{{"a":"x,y","q":"say \\"hi\\""}}')
    assert await dialect.is_connected() is False  # the probe's 705 is still its answer
    module.inject(f"\r\n+MQTTRECV:{TOPIC},温度,1\r\n".encode())
    await channel.command("AT")  # the URC was read before this answer
    assert events.messages == [
        InboundMessage(TOPIC, b'{"a":"x,y","q":"say \\"hi\\""}'),
        InboundMessage(TOPIC, "温度,1".encode()),
    ]


async def test_the_secret_never_reaches_the_log(
    channel: AtChannel, events: Events, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dialect = await new_dialect(channel, events, settings())
    with pytest.raises(NoNetwork):
        await dialect.connect()
    assert "AT+ALYDEVICESECRET" in caplog.text
    assert DS not in caplog.text

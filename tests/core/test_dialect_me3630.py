"""ME3630 dialect: exact commands, URC parsing, refusals (seed 000)."""

from __future__ import annotations

from collections.abc import AsyncIterator
import contextlib
from pathlib import Path
import re

import pytest

from custom_components.aliyun_iot_at.core.channel import AtChannel
from custom_components.aliyun_iot_at.core.dialects import dialect_class, guess_dialect
from custom_components.aliyun_iot_at.core.dialects.base import (
    DeviceIdentity,
    InboundMessage,
    LinkSettings,
    ModuleInfo,
)
from custom_components.aliyun_iot_at.core.dialects.me3630 import (
    ATTACH,
    MAX_TOPIC,
    Me3630,
    auth_command,
    firmware_version,
    parse_publish,
    publish_command,
    subscribe_command,
    topic_field,
)
from custom_components.aliyun_iot_at.core.errors import (
    AuthRefused,
    LinkError,
    NoNetwork,
    UnsafeValue,
)
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator
from testbed.emulator.host import HostPort
from testbed.emulator.me3630 import Me3630 as Me3630Module

from .conftest import Events, emulated

# The manual's own example triple.
PK = "tE5jVn6MWfi"
DN = "l1mKM0xGE6ia1KifkKaS"
DS = "3JfdFK4B56bRWfR5SSiEaaJYGO7PsSRh"
SETTINGS = LinkSettings(DeviceIdentity(PK, DN, DS))
TOPIC = f"/{PK}/{DN}/data"


def test_registered_under_its_name() -> None:
    cls = dialect_class("me3630")
    assert cls is Me3630
    assert (cls.max_topics, cls.max_payload, cls.supports_tls) == (8, 255, False)
    assert cls.reports_link_loss is False


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (ModuleInfo("ZTE INCORPORATED", "ME3630", "AL_ME3630C1CV1.0B01"), True),
        (ModuleInfo("zte", "ME3630-C1C"), True),
        (ModuleInfo(None, None, "AL_ME3630C1CV1.0B03"), True),
        (ModuleInfo("Quectel", "EC600S"), False),
        (ModuleInfo("SIMCOM", "ME3630"), False),
        (ModuleInfo("ZTE", "MF823"), False),
        (ModuleInfo(), False),
    ],
)
def test_recognises_the_module(info: ModuleInfo, expected: bool) -> None:
    assert Me3630.matches(info) is expected


def test_identified_as_me3630_only() -> None:
    assert guess_dialect(ModuleInfo("ZTE", "ME3630", "AL_ME3630C1CV1.0B01")) == "me3630"


@pytest.mark.parametrize(
    ("firmware", "version"),
    [
        ("AL_ME3630C1CV1.0B01", (1, 0, 1)),
        ("+CGMR: AL_ME3630C1CV1.0B12", (1, 0, 12)),
        ("al_me3630c1cv2.1b03", (2, 1, 3)),
        ("ME3630_V0.9B07", (0, 9, 7)),
        ("EC600SCNAAR01A05M08", None),
    ],
)
def test_firmware_version(firmware: str, version: tuple[int, int, int] | None) -> None:
    assert firmware_version(firmware) == version


def test_auth_command_is_unquoted_like_the_manual() -> None:
    assert auth_command(SETTINGS) == f"AT+CLOUDAUTH={PK},{DN},{DS}"


@pytest.mark.parametrize(
    ("identity", "why"),
    [
        (DeviceIdentity("a,b", DN, DS), "product key contains ','"),
        (DeviceIdentity(PK, 'x"y', DS), "device name contains '\"'"),
        (DeviceIdentity(PK, "x y", DS), "device name contains ' '"),
        (DeviceIdentity(PK, DN, "s" * 65), "device secret is longer than 64"),
        (DeviceIdentity(PK, DN, "ab\rAT+CLOUDDISCONN"), "device secret contains a control"),
        (DeviceIdentity(PK, "设备", DS), "device name contains non-ASCII"),
    ],
)
def test_unsafe_triples_are_refused(identity: DeviceIdentity, why: str) -> None:
    with pytest.raises(UnsafeValue, match=why) as caught:
        auth_command(LinkSettings(identity))
    assert identity.device_secret not in str(caught.value)


def test_subscribe_one_topic_per_command() -> None:
    assert subscribe_command(TOPIC) == f"AT+CLOUDSUB={TOPIC},1"
    assert subscribe_command(TOPIC, 0) == f"AT+CLOUDSUB={TOPIC},0"


def test_topic_limit_is_named() -> None:
    longest = "/" + "t" * (MAX_TOPIC - 1)
    assert topic_field(longest) == longest
    with pytest.raises(UnsafeValue, match=r"at most 64 bytes; '/t+' has 65"):
        topic_field(longest + "t")


@pytest.mark.parametrize(("dn_len", "fits"), [(20, True), (21, False), (32, False)])
def test_alink_topics_fit_only_for_short_device_names(dn_len: int, fits: bool) -> None:
    # With an 11-character product key the property set topic is 44 bytes plus the device
    # name: the manual's 20-character name just fits, Aliyun's longest (32) cannot.
    topic = f"/sys/{PK}/{'d' * dn_len}/thing/service/property/set"
    if fits:
        assert subscribe_command(topic) == f"AT+CLOUDSUB={topic},1"
        assert publish_command(topic, b"{}") == f"AT+CLOUDPUB={topic},0,2"
    else:
        with pytest.raises(UnsafeValue, match="at most 64 bytes"):
            subscribe_command(topic)
        with pytest.raises(UnsafeValue, match="at most 64 bytes"):
            publish_command(topic, b"{}")


@pytest.mark.parametrize("topic", ["/a,b", '/a"b', "/a b", "/a\r\nAT+CLOUDDISCONN", ""])
def test_unsafe_topics_are_refused(topic: str) -> None:
    with pytest.raises(UnsafeValue):
        subscribe_command(topic)
    with pytest.raises(UnsafeValue):
        publish_command(topic, b"{}")


def test_publish_goes_in_length_mode() -> None:
    payload = b'{"id":"1","params":{"PowerSwitch":1},"method":"thing.event.property.post"}'
    assert publish_command(TOPIC, payload, 1) == f"AT+CLOUDPUB={TOPIC},1,{len(payload)}"


def test_publish_carries_commas_quotes_line_breaks_and_utf8() -> None:
    payload = '{"t":"温度, \\"高\\"\r\nOK"}'.encode()
    assert publish_command(TOPIC, payload) == f"AT+CLOUDPUB={TOPIC},0,{len(payload)}"


def test_publish_at_the_limit() -> None:
    assert publish_command(TOPIC, b"x" * 255).endswith(",0,255")


@pytest.mark.parametrize(
    ("payload", "qos", "why"),
    [
        (b"x" * 256, 0, "at most 255 bytes per message; this one has 256"),
        (b"", 0, "empty"),
        (b"abc\x1a", 0, "Ctrl-Z or ESC"),
        (b"\x1b", 0, "Ctrl-Z or ESC"),
        (b"{}", 2, "QoS 0 and 1"),
    ],
)
def test_publish_refuses_what_it_cannot_carry(payload: bytes, qos: int, why: str) -> None:
    with pytest.raises(UnsafeValue, match=re.escape(why)):
        publish_command(TOPIC, payload, qos)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # The manual's example: no space after the colon, a space inside the message.
        (f"+CLOUDPUBLISH:0,{TOPIC},11,hello world", InboundMessage(TOPIC, b"hello world")),
        (
            f'+CLOUDPUBLISH: 7,{TOPIC},17,{{"a":"x,y","b":1}}',
            InboundMessage(TOPIC, b'{"a":"x,y","b":1}'),
        ),
        (f"+CLOUDPUBLISH:1,{TOPIC},4,a\r\nb", InboundMessage(TOPIC, b"a\r\nb")),
    ],
)
def test_parse_publish(text: str, message: InboundMessage) -> None:
    assert parse_publish(text) == message


@pytest.mark.parametrize(
    "text", ["+CLOUDPUBLISH: x,/t,1,a", "+CLOUDPUBLISH:0,/t,a", "+CLOUDSUBACK: <OK>"]
)
def test_parse_publish_refuses_malformed(text: str) -> None:
    assert parse_publish(text) is None


async def test_inbound_messages_are_cut_by_their_length(events: Events) -> None:
    """Bytes in arbitrary pieces: the message's own CR/LF, quotes and 'OK' stay inside it."""
    channel = AtChannel()
    Me3630(channel, SETTINGS, events)
    body = '{"method":"thing.service.property.set","params":{"t":"a,\\"b\\"\r\nOK\r\n温"}}'
    payload = body.encode()
    stream = (
        f"\r\n+CLOUDPUBLISH:3,{TOPIC},{len(payload)},".encode()
        + payload
        + b"\r\n+CLOUDPUBLISH:4,/t,2,hi\r\n"
    )
    for start in range(0, len(stream), 7):
        channel.data_received(stream[start : start + 7])
    assert events.messages == [InboundMessage(TOPIC, payload), InboundMessage("/t", b"hi")]


@pytest.mark.parametrize(
    ("line", "camped"),
    [
        ('+ZPAS: "LTE","CS_PS","FDD"', True),
        ('+ZPAS: "GSM","CS_PS"', True),
        ("+ZPAS: LTE,PS_ONLY", True),
        ('+ZPAS: "NO SERVICE"', False),
        ('+ZPAS: "LIMITED SERVICE"', False),
        ("+ZPAS: NO SERVICE", False),
    ],
)
def test_network_state_reading(line: str, camped: bool) -> None:
    step = ATTACH[1]
    assert step.expect is not None
    assert bool(re.match(step.expect, line)) is camped


# --- over a pty, against the emulated module and the local cloud ---------------------------


class Session:
    """A dialect on a channel to the emulated module."""

    def __init__(self, module: ModuleEmulator, channel: AtChannel, settings: LinkSettings):
        self.module = module
        self.channel = channel
        self.events = Events()
        self.dialect = Me3630(channel, settings, self.events)

    @property
    def personality(self) -> Me3630Module:
        personality = self.module.personality
        assert isinstance(personality, Me3630Module)
        return personality

    async def up(self) -> None:
        await self.dialect.initialize()
        await self.dialect.attach()
        await self.dialect.connect()


@pytest.fixture
def device(cloud: AliyunCloud) -> Device:
    return cloud.add_device(PK, DN, DS)


@contextlib.asynccontextmanager
async def _session(
    tmp_path: Path, mqtt_port: int, settings: LinkSettings = SETTINGS, firmware: str | None = None
) -> AsyncIterator[Session]:
    async with emulated("me3630", tmp_path / "tty", mqtt_port, firmware=firmware) as running:
        yield Session(*running, settings)


@pytest.fixture
async def session(tmp_path: Path, cloud: AliyunCloud, device: Device) -> AsyncIterator[Session]:
    async with _session(tmp_path, cloud.mqtt_port) as running:
        yield running


@pytest.fixture
async def offline(tmp_path: Path, offline_port: int) -> AsyncIterator[Session]:
    """The module with no cloud behind it."""
    async with _session(tmp_path, offline_port) as running:
        yield running


async def test_old_firmware_is_refused(tmp_path: Path, offline_port: int) -> None:
    async with _session(tmp_path, offline_port, firmware="AL_ME3630C1CV0.9B05") as old:
        with pytest.raises(LinkError, match=r"AL_ME3630C1CV0\.9B05 .*AL_ME3630C1CV1\.0B01 or"):
            await old.dialect.initialize()


@pytest.mark.parametrize("result_first", [False, True])
async def test_connects_with_the_manual_sequence(
    session: Session, cloud: AliyunCloud, device: Device, result_first: bool
) -> None:
    session.personality.auth_result_first = result_first
    await session.up()
    assert cloud.is_online(device)
    assert session.module.received == [
        "ATE0",
        "AT+CMEE=1",
        "AT+CGMR",
        "AT+CPIN?",
        "AT+ZPAS?",
        "AT+ZECMCALL=1",
        "AT+CLOUDDISCONN",
        f"AT+CLOUDAUTH={PK},{DN},{DS}",
        "AT+CLOUDCONN",
    ]


async def test_apn_is_set_before_dialling(tmp_path: Path, cloud: AliyunCloud) -> None:
    settings = LinkSettings(SETTINGS.identity, apn="CMIOT")
    async with _session(tmp_path, cloud.mqtt_port, settings) as running:
        await running.dialect.initialize()
        await running.dialect.attach()
        assert running.module.received[-2:] == ['AT+CGDCONT=1,"IP","CMIOT"', "AT+ZECMCALL=1"]
        assert running.personality.apn == "CMIOT"


@pytest.mark.parametrize("result_first", [False, True])
async def test_wrong_secret_is_refused(
    tmp_path: Path, cloud: AliyunCloud, device: Device, result_first: bool
) -> None:
    wrong = "0" * len(DS)
    settings = LinkSettings(DeviceIdentity(PK, DN, wrong))
    async with _session(tmp_path, cloud.mqtt_port, settings) as running:
        running.personality.auth_result_first = result_first
        with pytest.raises(AuthRefused, match=r"\+ALIAUTH: FAIL") as caught:
            await running.up()
        assert wrong not in str(caught.value)
        assert not cloud.is_online(device)


@pytest.mark.parametrize("result_first", [False, True])
async def test_unreachable_cloud_means_no_network(offline: Session, result_first: bool) -> None:
    # +CME ERROR after the OK (the description's order) or as the final (the example's).
    offline.personality.auth_result_first = result_first
    with pytest.raises(NoNetwork, match="could not reach Aliyun") as caught:
        await offline.up()
    assert DS not in str(caught.value)


async def test_unknown_cloudauth_names_the_firmware(offline: Session) -> None:
    offline.module.fail_next("AT+CLOUDAUTH", "ERROR")
    with pytest.raises(LinkError, match=r"AL_ME3630C1CV1\.0B01 or later") as caught:
        await offline.up()
    assert DS not in str(caught.value)


async def test_failed_data_call_means_no_network(offline: Session) -> None:
    offline.module.fail_next("AT+ZECMCALL", "+CME ERROR: 30")
    with pytest.raises(NoNetwork, match="ZECMCALL"):
        await offline.up()


async def test_subscribes_one_topic_per_command(session: Session) -> None:
    await session.up()
    topics = [f"/sys/{PK}/{DN}/thing/service/property/set", TOPIC]
    await session.dialect.subscribe(topics)
    assert session.module.received[-2:] == [f"AT+CLOUDSUB={t},1" for t in topics]
    assert session.personality.topics == set(topics)


async def test_refused_subscription(session: Session) -> None:
    await session.up()
    foreign = f"/sys/{PK}/other/thing/service/property/set"
    with pytest.raises(LinkError, match=r"subscribing to .*other.*\+CMD ERROR: 128"):
        await session.dialect.subscribe([foreign])


async def test_subscriptions_beyond_the_limits_are_not_sent(session: Session) -> None:
    await session.up()
    sent = len(session.module.received)
    with pytest.raises(UnsafeValue, match="at most 8 topics"):
        await session.dialect.subscribe([f"{TOPIC}{i}" for i in range(9)])
    with pytest.raises(UnsafeValue, match="at most 64 bytes"):
        await session.dialect.subscribe([TOPIC, f"/sys/{PK}/{'d' * 32}/thing/service/property/set"])
    assert len(session.module.received) == sent


async def test_messages_travel_both_ways_intact(session: Session) -> None:
    """Length mode out, length-framed URC in: commas, quotes, CR/LF and UTF-8 survive."""
    await session.up()
    await session.dialect.subscribe([TOPIC])
    body = '{"a":"x,y","q":"\\"OK\\"","t":"温度"}\r\nOK\r\n+CLOUDPUBLISH:9,/x,1,z'
    payload = (body + "#" * (255 - len(body.encode()))).encode()
    await session.dialect.publish(TOPIC, payload, qos=1)
    assert await session.events.next_message() == InboundMessage(TOPIC, payload)
    assert session.module.received[-1] == f"AT+CLOUDPUB={TOPIC},1,255"


async def test_silent_drop_is_found_by_the_probe(session: Session, cloud: AliyunCloud) -> None:
    await session.up()
    assert await session.dialect.is_connected()
    assert session.module.received[-1].startswith(f"AT+CLOUDPUB=/ext/ntp/{PK}/{DN}/request,0,")
    await session.module.drop_link()
    assert not await session.dialect.is_connected()
    assert session.events.lost == []  # the module said nothing


async def test_kick_is_found_by_the_probe(
    session: Session, cloud: AliyunCloud, device: Device
) -> None:
    await session.up()
    assert await cloud.kick(device)
    assert not await session.dialect.is_connected()


async def test_disconnect(session: Session, cloud: AliyunCloud, device: Device) -> None:
    await session.up()
    await session.dialect.disconnect()
    await cloud.wait_offline(device)
    assert session.module.received[-1] == "AT+CLOUDDISCONN"


async def test_emulator_plays_the_manuals_example(
    tmp_path: Path, cloud: AliyunCloud, device: Device
) -> None:
    """Section 2 of the manual, line by line (the example's order: verdicts before OK)."""
    data1, data2 = f"{TOPIC}1", f"{TOPIC}2"
    async with ModuleEmulator(
        "me3630", link=tmp_path / "tty", mqtt_port=cloud.mqtt_port, echo=False
    ) as module:
        personality = module.personality
        assert isinstance(personality, Me3630Module)
        personality.auth_result_first = True
        with HostPort(module.path).open() as host:
            for command, answer in [
                ("AT+CPIN?", b"\r\n+CPIN: READY\r\n\r\nOK\r\n"),
                ("AT+ZPAS?", b'\r\n+ZPAS: "LTE","CS_PS","FDD"\r\n\r\nOK\r\n'),
                ("AT+ZECMCALL=1", b"\r\n+ZECMCALL: CONNECT\r\n\r\nOK\r\n"),
                (f"AT+CLOUDAUTH={PK},{DN},{DS}", b"\r\n+ALIAUTH: OK\r\n\r\nOK\r\n"),
                ("AT+CLOUDCONN", b"\r\nOK\r\n"),
                (f"AT+CLOUDSUB={data1},0,{data2},0", b"\r\n+CLOUDSUBACK: <OK>\r\n\r\nOK\r\n"),
                (f"AT+CLOUDPUB={data1},0,helloworld", b"\r\nOK\r\n"),
            ]:
                assert await host.command(command) == answer
            echo = f"\r\n+CLOUDPUBLISH:0,{data1},10,helloworld\r\n".encode()
            assert await host.read_until(echo) == echo
            assert await host.command(f"AT+CLOUDPUB={data1},0,a,b") == b"\r\nERROR\r\n"
            assert await host.command(f"AT+CLOUDUNSUB={data1}") == b"\r\nOK\r\n"
            assert personality.topics == {data2}
            assert await host.command("AT+CLOUDDISCONN") == b"\r\nOK\r\n"
            await cloud.wait_offline(device)
            assert await host.command("AT+CLOUDCONN") == b"\r\n+CME ERROR: 3\r\n"

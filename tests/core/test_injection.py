"""No string from the cloud, the user or a thing model can end an AT command early or start another.

For every dialect, a value (topic, payload, thing-model identifier, product key, device name,
secret, host, region, APN, client id, the cloud's iotId/iotToken/host) is either carried
exactly — each line written holds one command, no CR/LF/Ctrl-Z/ESC/NUL, fits the documented
line limit, and reads back by the module's own rules into exactly the intended fields — or
refused with ``UnsafeValue`` before anything is written.

How a module reads a line (the oracle):
- ML302 and W800 read a backslash as an escape (the ML302 manual's ``\\"``, ESP-AT), so their
  lines are split with the W800 emulator's ``split_escaped``; the other modules' lines with the
  emulator's parser (``testbed.emulator.parser``).
- V.250: a ``;`` after an extended command starts the next command on the same line, so a line
  must hold exactly one command outside double quotes.

The tests: the pure builders of every dialect (hypothesis, many examples); publishing through a
pty to the emulator and the cloud — Alink posts checked at the cloud, raw bytes published to
the device's own topic and checked when they come back; hostile identity values and a hostile
HTTP auth reply through ``Link.connect_once``.

Hypothesis with asyncio (the pty tests): pytest-asyncio (0.26) runs an ``async def`` test under
``@given`` example by example on the test's own event loop (its ``AsyncHypothesisTest`` item).
The function-scoped fixtures — cloud, emulator, dialect connected over the pty — are therefore
made once per test and shared by its examples, on purpose: ``HealthCheck.function_scoped_fixture``
is suppressed and each example checks only what it sent itself (``module.received`` from its
own starting index; after a refusal, an ``AT`` round trip first, so nothing written can still
be on its way). Example counts are set by the ``settings`` objects below; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
import json
from pathlib import Path
import string
from typing import Any

from aiohttp import web
from hypothesis import (
    HealthCheck,
    assume,
    event,
    example,
    find,
    given,
    settings,
    strategies as st,
)
from hypothesis.errors import NoSuchExample
import pytest

from custom_components.aliyun_iot_at.core import alink
from custom_components.aliyun_iot_at.core.channel import AtChannel
from custom_components.aliyun_iot_at.core.dialects import (
    DIALECT_NAMES,
    air72x,
    dialect_class,
    me3630,
    ml302,
    quectel,
    w800,
)
from custom_components.aliyun_iot_at.core.dialects.base import (
    DEFAULT_REGION,
    DeviceIdentity,
    Dialect,
    Endpoint,
    InboundMessage,
    LinkSettings,
)
from custom_components.aliyun_iot_at.core.errors import AtError, LinkError, UnsafeValue
from custom_components.aliyun_iot_at.core.link import Link, PortSettings
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator
from testbed.emulator.parser import parse_command
from testbed.emulator.w800 import split_escaped

from .conftest import Events, emulated

PK = "a1InjectPk"
DN = "inject-dev"
DS = "Hq3YtJ0v9m2LkfP8sWc6RbN4xZ1aDgE7"
TOPICS = alink.Topics(PK, DN)
SETTINGS = LinkSettings(DeviceIdentity(PK, DN, DS))
LOOP_TOPIC = f"/{PK}/{DN}/user/loop"  # the device's own custom topic: what it sends comes back

BUILDERS = settings(max_examples=200, deadline=None)
PTY = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# --- hostile values -----------------------------------------------------------------------

SAFE = string.ascii_letters + string.digits + "-_./:@"
# What ends, splits, escapes or chains a command, or what a module may read differently.
HOSTILE = "\"',;\\\r\n\x1a\x1b\x00\x7f =?+>é\u00a0\u2028"
INJECTIONS = (
    '"\r\nAT+CFUN=0\r\n"',
    '",1,"',
    ";+CFUN=0",
    "\\",
    '\\"',
    "\\22",
    "\r\nAT+QMTDISC=0\r\n",
    "\x1a\r\nAT\r\n",
    "\x1b",
)


def injected() -> st.SearchStrategy[str]:
    """Safe-looking text with one injection in the middle."""
    part = st.text(alphabet=SAFE, max_size=12)
    return st.builds(lambda a, i, b: a + i + b, part, st.sampled_from(INJECTIONS), part)


def json_like() -> st.SearchStrategy[str]:
    """A JSON object whose string value hides an injection, unescaped."""
    part = st.text(alphabet=SAFE, max_size=8)
    return st.builds(lambda k, v: f'{{"{k}":"{v}"}}', part, injected())


def hostile_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Ordinary, hostile, arbitrary-unicode and over-long text."""
    return st.one_of(
        st.text(alphabet=SAFE, min_size=1, max_size=max_size),
        st.text(alphabet=SAFE + HOSTILE, max_size=max_size),
        injected(),
        json_like(),
        st.text(max_size=max_size),
        st.text(alphabet=SAFE, min_size=60, max_size=300),
    )


def hostile_payloads() -> st.SearchStrategy[bytes]:
    """Payload bytes: text as above, raw binary, and the empty payload."""
    return st.one_of(hostile_text(80).map(str.encode), st.binary(max_size=300), st.just(b""))


# --- how modules read a line --------------------------------------------------------------


def _split(text: str, sep: str, escapes: bool) -> list[str]:
    """``text`` cut at every ``sep`` outside double quotes (the quotes are kept)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif escapes and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class Syntax:
    """How a module reads a command line: whether a backslash escapes the next character."""

    escapes: bool

    def problems(self, line: str, max_line: int | None = None) -> list[str]:
        """Why ``line`` is not one clean command within ``max_line`` bytes (with CR LF)."""
        found = []
        if bad := sorted(set(line) & set("\r\n\x1a\x1b\x00")):
            found.append(f"{line!r} holds {bad!r}")
        if len(_split(line, ";", self.escapes)) != 1:
            found.append(f"{line!r}: a ';' outside quotes starts a second command")
        if max_line is not None and len(line.encode()) + 2 > max_line:
            found.append(f"{line!r} is longer than {max_line} bytes with CR LF")
        return found

    def parse(self, line: str) -> tuple[str, tuple[str, ...]] | None:
        """The command's name and its arguments as the module reads them."""
        command = parse_command(line)
        if command is None:
            return None
        if self.escapes and "=" in line:
            return command.name, split_escaped(line.split("=", 1)[1])
        return command.name, command.args


ESCAPING = Syntax(escapes=True)
PLAIN = Syntax(escapes=False)
SYNTAX = {"ml302": ESCAPING, "w800": ESCAPING, "me3630": PLAIN, "quectel": PLAIN, "air72x": PLAIN}
# The ML302 puts no host or region into a command: anything but a public region is a LinkError.
REFUSAL = {
    ("ml302", "host"): (UnsafeValue, LinkError),
    ("ml302", "region"): (UnsafeValue, LinkError),
}


# --- builder cases ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """A command line, and the bytes that follow at its prompt."""

    line: str
    data: bytes | None = None


@dataclass(frozen=True)
class Want:
    """A command the value must arrive in: its name and arguments as the module reads them."""

    name: str
    args: tuple[str, ...]
    data: bytes | None = None


@dataclass(frozen=True)
class Case:
    """One place of one dialect where a value goes into a command."""

    id: str
    build: Callable[[str], list[Sent]]
    want: Callable[[str], list[Want]]
    syntax: Syntax
    refused_by: tuple[type[Exception], ...] = (UnsafeValue,)
    max_line: int | None = None
    ordinary: str = "a1Ordinary-Value_09"  # a value the place must carry

    def problems(self, value: str) -> list[str]:
        """Why the value is neither refused nor carried exactly (empty when it is one of them)."""
        try:
            sent = self.build(value)
        except self.refused_by:
            return []
        found = [p for item in sent for p in self.syntax.problems(item.line, self.max_line)]
        read = [(self.syntax.parse(item.line), item.data) for item in sent]
        for want in self.want(value):
            if ((want.name, want.args), want.data) not in read:
                found.append(f"{want} is not among {read}")
        return found


def settings_with(field: str, value: str) -> LinkSettings:
    """Valid link settings with ``value`` in ``field``."""

    def pick(name: str, default: str) -> str:
        return value if field == name else default

    return LinkSettings(
        DeviceIdentity(pick("product_key", PK), pick("device_name", DN), pick("device_secret", DS)),
        Endpoint(region=pick("region", DEFAULT_REGION), host=value if field == "host" else None),
        apn=pick("apn", ""),
        client_id=value if field == "client_id" else None,
    )


def lines(*texts: str) -> list[Sent]:
    return [Sent(text) for text in texts]


def ml302_cases() -> list[Case]:
    def configure(field: str) -> Callable[[str], list[Sent]]:
        return lambda v: lines(*ml302.configure_commands(settings_with(field, v)))

    max_payload = ml302.Ml302Dialect.max_payload
    unused = REFUSAL["ml302", "host"]
    return [
        Case(
            "ml302-pk", configure("product_key"), lambda v: [Want("+ALYPRODUCTKEY", (v,))], ESCAPING
        ),
        Case(
            "ml302-dn", configure("device_name"), lambda v: [Want("+ALYDEVICENAME", (v,))], ESCAPING
        ),
        Case(
            "ml302-ds",
            configure("device_secret"),
            lambda v: [Want("+ALYDEVICESECRET", (v,))],
            ESCAPING,
        ),
        Case(
            "ml302-host",
            configure("host"),
            lambda v: [],
            ESCAPING,
            unused,
            ordinary=Endpoint("eu-central-1").mqtt_host(PK),
        ),
        Case(
            "ml302-region",
            configure("region"),
            lambda v: [],
            ESCAPING,
            unused,
            ordinary="us-west-1",
        ),
        Case(
            "ml302-sub-topic",
            lambda v: lines(ml302.subscribe_command(v)),
            lambda v: [Want("+ALYMQTTSUB", (v, "1"))],
            ESCAPING,
        ),
        Case(
            "ml302-pub-topic",
            lambda v: lines(ml302.publish_command(v, b"{}", 0, max_payload)),
            lambda v: [Want("+ALYMQTTPUB", (v, "0", "{}"))],
            ESCAPING,
        ),
        Case(
            "ml302-pub-payload",
            lambda v: lines(ml302.publish_command(LOOP_TOPIC, v.encode(), 1, max_payload)),
            lambda v: [Want("+ALYMQTTPUB", (LOOP_TOPIC, "1", v))],
            ESCAPING,
        ),
    ]


def w800_cases() -> list[Case]:
    line = w800.MAX_LINE  # the manual: 256 bytes a command, read as including CR LF
    return [
        Case(
            "w800-host",
            lambda v: lines(w800.connect_command(v, 1883)),
            lambda v: [Want("+MQTTCONN", ("0", v, "1883", "0"))],
            ESCAPING,
            max_line=line,
        ),
        Case(
            "w800-sub-topic",
            lambda v: lines(w800.subscribe_command(v)),
            lambda v: [Want("+MQTTSUB", ("0", v, "1"))],
            ESCAPING,
            max_line=line,
        ),
        Case(
            "w800-pub-topic",
            lambda v: lines(w800.publish_command(v, 5760, 1)),
            lambda v: [Want("+MQTTPUBRAW", ("0", v, "5760", "1", "0"))],
            ESCAPING,
            max_line=line,
        ),
        Case(
            "w800-long-value",
            lambda v: [Sent(*w800.long_command("PASSWORD", v))],
            lambda v: [Want("+MQTTLONGPASSWORD", ("0", str(len(v.encode()))), v.encode())],
            ESCAPING,
            max_line=line,
        ),
    ]


def me3630_cases() -> list[Case]:
    def auth(field: str) -> Callable[[str], list[Sent]]:
        return lambda v: lines(me3630.auth_command(settings_with(field, v)))

    return [
        Case("me3630-pk", auth("product_key"), lambda v: [Want("+CLOUDAUTH", (v, DN, DS))], PLAIN),
        Case("me3630-dn", auth("device_name"), lambda v: [Want("+CLOUDAUTH", (PK, v, DS))], PLAIN),
        Case(
            "me3630-ds", auth("device_secret"), lambda v: [Want("+CLOUDAUTH", (PK, DN, v))], PLAIN
        ),
        Case(
            "me3630-sub-topic",
            lambda v: lines(me3630.subscribe_command(v)),
            lambda v: [Want("+CLOUDSUB", (v, "1"))],
            PLAIN,
        ),
        Case(
            "me3630-pub-topic",
            lambda v: lines(me3630.publish_command(v, b"{}", 1)),
            lambda v: [Want("+CLOUDPUB", (v, "1", "2"))],
            PLAIN,
        ),
    ]


def quectel_cases() -> list[Case]:
    def aliauth(field: str, want: Callable[[str], tuple[str, str, str]]) -> Case:
        return Case(
            f"quectel-{field}",
            lambda v: lines(*quectel.configure_commands(settings_with(field, v))),
            lambda v: [Want("+QMTCFG", ("aliauth", "0", *want(v)))],
            PLAIN,
        )

    return [
        aliauth("product_key", lambda v: (v, DN, DS)),
        aliauth("device_name", lambda v: (PK, v, DS)),
        aliauth("device_secret", lambda v: (PK, DN, v)),
        Case(
            "quectel-apn",
            lambda v: lines(quectel.apn_command(v)),
            lambda v: [Want("+QICSGP", ("1", "1", v, "", "", "1"))],
            PLAIN,
        ),
        Case(
            "quectel-host",
            lambda v: lines(quectel.open_command(v, 1883)),
            lambda v: [Want("+QMTOPEN", ("0", v, "1883"))],
            PLAIN,
        ),
        Case(
            "quectel-client-id",
            lambda v: lines(quectel.connect_command(v)),
            lambda v: [Want("+QMTCONN", ("0", v))],
            PLAIN,
        ),
        Case(
            "quectel-sub-topic",
            lambda v: lines(quectel.subscribe_command(7, v)),
            lambda v: [Want("+QMTSUB", ("0", "7", v, "1"))],
            PLAIN,
        ),
        Case(
            "quectel-pub-topic",
            lambda v: lines(quectel.publish_command(7, v, 10, 1)),
            lambda v: [Want("+QMTPUBEX", ("0", "7", "1", "0", v, "10"))],
            PLAIN,
        ),
    ]


def air72x_cases() -> list[Case]:
    return [
        Case(
            "air72x-apn",
            lambda v: lines(air72x.apn_command(v)),
            lambda v: [Want("+SAPBR", ("3", "1", "APN", v))],
            PLAIN,
        ),
        Case(
            "air72x-host",
            lambda v: lines(air72x.start_command(v, 1883, tls=True)),
            lambda v: [Want("+SSLMIPSTART", (v, "1883"))],
            PLAIN,
        ),
        Case(
            "air72x-sub-topic",
            lambda v: lines(air72x.msub_command(v)),
            lambda v: [Want("+MSUB", (v, "1"))],
            PLAIN,
        ),
        Case(
            "air72x-pub-topic",
            lambda v: lines(air72x.mpubex_command(v, 1, 10)),
            lambda v: [Want("+MPUBEX", (v, "1", "0", "10"))],
            PLAIN,
        ),
    ]


CASES = [*ml302_cases(), *w800_cases(), *me3630_cases(), *quectel_cases(), *air72x_cases()]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
@BUILDERS
@given(value=hostile_text())
@example(value='x"\r\nAT+CFUN=0\r\n"')
@example(value='x",1,"y')
@example(value="x;+CFUN=0")  # V.250 chaining in an unquoted field
@example(value="x\\")  # escapes the closing quote where a backslash escapes
@example(value="x\x1a")
@example(value="é")
@example(value="a" * 300)
def test_a_value_is_carried_exactly_or_refused(case: Case, value: str) -> None:
    assert case.problems(value) == []


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_an_ordinary_value_is_carried(case: Case) -> None:
    """The property above is not met by refusing everything."""
    assert case.build(case.ordinary)
    assert case.problems(case.ordinary) == []


NAIVE = [
    Case(
        "quoted",
        lambda v: lines(f'AT+QMTCFG="aliauth",0,"{v}","dn","ds"'),
        lambda v: [Want("+QMTCFG", ("aliauth", "0", v, "dn", "ds"))],
        PLAIN,
    ),
    Case(
        "bare",
        lambda v: lines(f"AT+CLOUDAUTH={v},dn,ds"),
        lambda v: [Want("+CLOUDAUTH", (v, "dn", "ds"))],
        PLAIN,
    ),
    Case(
        "escaped",
        lambda v: lines('AT+ALYPRODUCTKEY="' + v.replace('"', '\\"') + '"'),
        lambda v: [Want("+ALYPRODUCTKEY", (v,))],
        ESCAPING,
    ),
]


@pytest.mark.parametrize("naive", NAIVE, ids=lambda case: case.id)
def test_the_oracle_catches_a_naive_builder(naive: Case) -> None:
    """The property can fail: hostile text breaks a builder that only quotes or escapes."""
    try:
        find(hostile_text(), lambda v: bool(naive.problems(v)), settings=BUILDERS)
    except NoSuchExample:
        pytest.fail(f"no hostile value broke the {naive.id} builder")


# --- payloads -------------------------------------------------------------------------------


def carriable(dialect: str, payload: bytes) -> bool:
    """What each dialect documents it can publish; it must refuse anything else."""
    limit = dialect_class(dialect).max_payload
    if dialect == "ml302":  # inline and quoted: UTF-8 text without controls or backslashes
        try:
            text = payload.decode()
        except UnicodeDecodeError:
            return False
        unsafe = any(ord(char) < 0x20 or char in "\x7f\\" for char in text)
        return bool(text) and not unsafe and len(text.replace('"', '\\"').encode()) <= limit
    if dialect in ("me3630", "air72x") and (b"\x1a" in payload or b"\x1b" in payload):
        return False  # their data input ends on Ctrl-Z and ESC, even when counted
    return 0 < len(payload) <= limit


def _ml302_publish(payload: bytes) -> str:
    return ml302.publish_command(LOOP_TOPIC, payload, 0, ml302.Ml302Dialect.max_payload)


def _air72x_publish(payload: bytes) -> str:
    air72x.check_payload(payload)
    return air72x.mpubex_command(LOOP_TOPIC, 0, len(payload))


# The builders that take the payload itself; W800 and Quectel check it in ``publish``.
PAYLOAD_BUILDERS: dict[str, tuple[Callable[[bytes], str], Callable[[bytes], Want]]] = {
    "ml302": (_ml302_publish, lambda p: Want("+ALYMQTTPUB", (LOOP_TOPIC, "0", p.decode()))),
    "me3630": (
        lambda p: me3630.publish_command(LOOP_TOPIC, p, 0),
        lambda p: Want("+CLOUDPUB", (LOOP_TOPIC, "0", str(len(p)))),
    ),
    "air72x": (_air72x_publish, lambda p: Want("+MPUBEX", (LOOP_TOPIC, "0", "0", str(len(p))))),
}


@pytest.mark.parametrize("dialect", PAYLOAD_BUILDERS)
@BUILDERS
@given(payload=hostile_payloads())
@example(payload=b'{"a":"\\"\r\nAT+CFUN=0\r\n"}')
@example(payload=b"x\x1a\r\nAT\r\n")
@example(payload=b"\xff\xfe")
def test_a_payload_is_carried_exactly_or_refused(dialect: str, payload: bytes) -> None:
    build, want = PAYLOAD_BUILDERS[dialect]
    try:
        line = build(payload)
    except UnsafeValue:
        assert not carriable(dialect, payload)
        return
    assert carriable(dialect, payload)
    syntax = SYNTAX[dialect]
    assert syntax.problems(line) == []
    expected = want(payload)
    assert syntax.parse(line) == (expected.name, expected.args)


# --- through a pty, against the emulator and the cloud ------------------------------------

# The publish command of each dialect, and where its topic is.
PUBLISH = {
    "ml302": ("+ALYMQTTPUB", 0),
    "w800": ("+MQTTPUBRAW", 1),
    "me3630": ("+CLOUDPUB", 0),
    "quectel": ("+QMTPUBEX", 4),
    "air72x": ("+MPUBEX", 0),
}


@dataclass
class Bench:
    """A dialect connected through a pty to the emulated module and the cloud."""

    name: str
    cloud: AliyunCloud
    device: Device
    module: ModuleEmulator
    channel: AtChannel
    dialect: Dialect
    events: Events

    async def publish(self, topic: str, payload: bytes) -> list[str] | None:
        """The lines the module received for this publish; ``None`` when it was refused, in
        which case the module received nothing (checked after a round trip)."""
        before = len(self.module.received)
        try:
            await self.dialect.publish(topic, payload)
        except UnsafeValue:
            event("refused")
            await self.channel.command("AT")  # whatever was written has been read by now
            assert self.module.received[before:] == ["AT"]
            return None
        event("carried")
        assert self.events.lost == []
        sent = self.module.received[before:]
        name, index = PUBLISH[self.name]
        assert len(sent) == 1, f"one publish became {sent!r}"
        assert SYNTAX[self.name].problems(sent[0]) == []
        parsed = SYNTAX[self.name].parse(sent[0])
        assert parsed is not None
        assert parsed[0] == name
        assert parsed[1][index] == topic
        return sent


@pytest.fixture(params=DIALECT_NAMES)
async def bench(
    request: pytest.FixtureRequest, tmp_path: Path, cloud: AliyunCloud, events: Events
) -> AsyncIterator[Bench]:
    name: str = request.param
    device = cloud.add_device(PK, DN, DS)
    async with emulated(name, tmp_path / "tty", cloud.mqtt_port, http_port=cloud.http_port) as (
        module,
        channel,
    ):
        dialect = dialect_class(name)(channel, SETTINGS, events)
        await dialect.initialize()
        await dialect.attach()
        await dialect.connect()
        await dialect.subscribe([LOOP_TOPIC])
        yield Bench(name, cloud, device, module, channel, dialect, events)


def alink_params() -> st.SearchStrategy[dict[str, Any]]:
    """Thing-model properties whose identifiers and values are hostile."""
    scalar = st.one_of(
        hostile_text(20),
        st.integers(),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),
    )
    return st.dictionaries(st.one_of(hostile_text(12), injected()), scalar, max_size=3)


@PTY
@given(params=alink_params(), msg_id=st.integers(1, 2**32 - 1))
@example(params={'"\r\nAT+CFUN=0\r\n"': '",1,"\x1a\x1b'}, msg_id=1)
@example(params={"PowerSwitch": 1, "Name": "é;+CFUN=0"}, msg_id=2)
async def test_a_post_arrives_exactly_or_is_refused_unsent(
    bench: Bench, params: dict[str, Any], msg_id: int
) -> None:
    payload = alink.property_post(str(msg_id), params)
    sent = await bench.publish(TOPICS.property_post, payload)
    assert (sent is not None) == carriable(bench.name, payload)
    if sent is None:
        return
    # A property post is only recorded as one when it came on the property post topic.
    post = await bench.cloud.wait_post(bench.device, lambda p: p.get("id") == str(msg_id))
    assert post == json.loads(payload)


def downlink_text() -> st.SearchStrategy[str]:
    """Text the module's receive URC can hand back unchanged: the channel drops NUL bytes."""
    return st.one_of(hostile_text(80), st.text(min_size=1, max_size=80)).filter(
        lambda text: "\x00" not in text
    )


@PTY
@given(text=downlink_text())
@example(text="\r\nAT+CFUN=0\r\n")
@example(text='x"\r\n+MQTTDISCONNECTED:0\r\nOK\r\n\x1a\x1b')
@example(text="é" * 2049)  # 4098 bytes: above Quectel's limit, within W800's and Air72x's
@example(text="x" * 5761)  # above every dialect's limit
async def test_raw_bytes_come_back_exactly_or_are_refused_unsent(bench: Bench, text: str) -> None:
    """Published to the device's own topic, the payload comes back through the module."""
    if bench.name == "ml302":
        # +MQTTRECV has no length: blanks at the line's end are lost (ML302 docstring).
        assume(text == text.rstrip())
    payload = text.encode()
    sent = await bench.publish(LOOP_TOPIC, payload)
    assert (sent is not None) == carriable(bench.name, payload)
    if sent is None:
        return
    assert await bench.events.next_message() == InboundMessage(LOOP_TOPIC, payload)


# --- identity values on the connect path ------------------------------------------------

# The settings each dialect puts into a command (ML302's host and region pick a region code).
IDENTITY_FIELDS = {
    "ml302": ("product_key", "device_name", "device_secret", "host", "region"),
    "w800": ("product_key", "device_name", "host", "region", "client_id"),
    "me3630": ("product_key", "device_name", "device_secret", "apn"),
    "quectel": (
        "product_key",
        "device_name",
        "device_secret",
        "host",
        "region",
        "apn",
        "client_id",
    ),
    "air72x": ("product_key", "device_name", "host", "region", "apn", "client_id"),
}
MARKER = "INJ"
HOSTILE_IDENTITIES = ('v"\r\nAT+INJ\r\n', 'v",AT+INJ,"', "v;+INJ")


def injection_problems(received: list[str], value: str, syntax: Syntax) -> list[str]:
    """Lines that are not one clean command, or hold the marker outside a field carrying
    ``value`` whole."""
    found = []
    for line in received:
        found += syntax.problems(line)
        parsed = syntax.parse(line)
        fields = parsed[1] if parsed is not None else ()
        if MARKER in line and not any(value in field for field in fields):
            found.append(f"{line!r} holds {MARKER!r} outside a field carrying {value!r}")
    return found


async def connect_once(
    module: ModuleEmulator, name: str, link_settings: LinkSettings
) -> AtError | None:
    """One ``Link.connect_once``; the error it raised, if any."""
    link = Link(
        PortSettings(str(module.path)),
        name,
        link_settings,
        [LOOP_TOPIC],
        on_message=lambda message: None,
    )
    try:
        await link.connect_once()
    except AtError as err:
        return err
    finally:
        await link.stop()
    return None


@pytest.mark.parametrize("name", DIALECT_NAMES)
async def test_hostile_identity_never_reaches_the_module_as_a_command(
    name: str, tmp_path: Path, cloud: AliyunCloud
) -> None:
    cloud.add_device(PK, DN, DS)
    async with ModuleEmulator(
        name, link=tmp_path / "tty", mqtt_port=cloud.mqtt_port, http_port=cloud.http_port
    ) as module:
        for field in IDENTITY_FIELDS[name]:
            for value in HOSTILE_IDENTITIES:
                before = len(module.received)
                error = await connect_once(module, name, settings_with(field, value))
                sent = module.received[before:]
                assert injection_problems(sent, value, SYNTAX[name]) == [], (field, value)
                if '"' in value:  # no quoting can carry it: a clear refusal
                    refusal = REFUSAL.get((name, field), (UnsafeValue,))
                    assert isinstance(error, refusal), (field, value, error)


@asynccontextmanager
async def auth_endpoint(reply: dict[str, Any]) -> AsyncIterator[int]:
    """An HTTP auth endpoint answering every device with ``reply``: its port."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response(reply)

    app = web.Application()
    app.router.add_post("/auth/devicename", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def auth_reply(
    iot_id: str = "id1", iot_token: str = "token1", host: str = "h.aliyuncs.com"
) -> dict[str, Any]:
    resources = {"mqtt": {"host": host, "port": 1883}}
    return {"code": 200, "data": {"iotId": iot_id, "iotToken": iot_token, "resources": resources}}


@pytest.mark.parametrize("value", HOSTILE_IDENTITIES)
@pytest.mark.parametrize("field", ["iot_id", "iot_token", "host"])
async def test_a_hostile_auth_reply_never_reaches_the_air72x_as_a_command(
    field: str, value: str, tmp_path: Path, offline_port: int
) -> None:
    """Strings from the cloud: the iotId, iotToken and MQTT host of the HTTP auth reply."""
    async with (
        auth_endpoint(auth_reply(**{field: value})) as http_port,
        ModuleEmulator(
            "air72x", link=tmp_path / "tty", mqtt_port=offline_port, http_port=http_port
        ) as module,
    ):
        error = await connect_once(module, "air72x", SETTINGS)
        assert injection_problems(module.received, value, PLAIN) == []
        if '"' in value:
            assert isinstance(error, UnsafeValue), error

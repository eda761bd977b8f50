"""The one interface every module dialect implements, and the pieces they share.

A dialect reads like its manual: its command sequences are data (``Step`` lists, run by
``Dialect.run``, the way Zephyr's ``modem_chat`` scripts are), plus a few handlers for what data
cannot say (URC parsing, payload framing).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import asyncio
from collections.abc import Callable, Sequence
import contextlib
from dataclasses import dataclass, field
import json
import logging
import re
import time
from typing import ClassVar, Protocol

from ..channel import DEFAULT_RESTART_LINES, AtChannel, UrcSpec
from ..errors import (
    AtCommandError,
    AtError,
    AtTimeout,
    LinkError,
    NoNetwork,
    PublishFailed,
    SimNotReady,
    UnsafeValue,
)

_LOGGER = logging.getLogger(__name__)

REGIONS = (
    "cn-shanghai",
    "ap-southeast-1",
    "ap-northeast-1",
    "us-west-1",
    "us-east-1",
    "eu-central-1",
)
DEFAULT_REGION = "cn-shanghai"
# Aliyun refuses a CONNECT whose keepalive is outside this range.
KEEPALIVE_RANGE = (30, 1200)


@dataclass(frozen=True)
class DeviceIdentity:
    """The device triple from the Aliyun console. ``repr`` hides the secret."""

    product_key: str
    device_name: str
    device_secret: str = field(repr=False)


@dataclass(frozen=True)
class Endpoint:
    """Where the MQTT session goes: a public region, or a host typed from the console."""

    region: str = DEFAULT_REGION
    host: str | None = None
    port: int | None = None
    tls: bool = False

    def mqtt_host(self, product_key: str) -> str:
        """The MQTT broker host for this product."""
        return self.host or f"{product_key}.iot-as-mqtt.{self.region}.aliyuncs.com"

    @property
    def mqtt_port(self) -> int:
        """The port, 1883 for TCP and 443 for TLS unless one was given."""
        return self.port or (443 if self.tls else 1883)

    @property
    def auth_url(self) -> str:
        """Aliyun's HTTP device-auth endpoint of the region (Air72x flow)."""
        return f"https://iot-auth.{self.region}.aliyuncs.com/auth/devicename"


@dataclass(frozen=True)
class LinkSettings:
    """Everything a dialect needs to bring the session up."""

    identity: DeviceIdentity
    endpoint: Endpoint = field(default_factory=Endpoint)
    keepalive: int = 300
    apn: str = ""
    client_id: str | None = None
    # The most seconds any step of attaching waits for the module to be ready (SIM, network,
    # packet service; polled every second): short where someone waits for the answer.
    attach_timeout: float = 60.0

    @property
    def mqtt_client_id(self) -> str:
        """The plain client id (before Aliyun's ``|…|`` suffix)."""
        ident = self.identity
        return self.client_id or f"{ident.product_key}.{ident.device_name}"


def aliyun_keepalive(seconds: int) -> int:
    """``seconds`` brought into the keepalive range Aliyun accepts."""
    low, high = KEEPALIVE_RANGE
    return min(max(seconds, low), high)


def aliyun_qos(qos: int) -> int:
    """``qos`` if Aliyun accepts it (0 or 1); ``UnsafeValue`` if not."""
    if qos not in (0, 1):
        raise UnsafeValue("Aliyun accepts QoS 0 and 1 only")
    return qos


def ntp_request(settings: LinkSettings, now_ms: int) -> tuple[str, bytes]:
    """The device's own NTP request (topic, payload): the cheapest publish the cloud accepts,
    and the session probe of modules that have no state query."""
    ident = settings.identity
    topic = f"/ext/ntp/{ident.product_key}/{ident.device_name}/request"
    return topic, json.dumps({"deviceSendTime": str(now_ms)}, separators=(",", ":")).encode()


@dataclass(frozen=True)
class ModuleInfo:
    """What the module says about itself."""

    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    imei: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    """An MQTT message the module received, whatever its URC looked like."""

    topic: str
    payload: bytes


class LinkEvents(Protocol):
    """What a dialect reports while the session runs."""

    def message(self, message: InboundMessage) -> None:
        """A message arrived on a subscribed topic."""

    def link_lost(self, reason: str) -> None:
        """The module reported that the MQTT session is gone."""


@dataclass(frozen=True)
class Step:
    """One command of a script and the answer it must get.

    ``expect`` is a regular expression one response line must match (searched from the
    start); ``poll`` repeats the command every second until it matches or ``poll`` seconds
    have passed (at most the link's ``attach_timeout`` when a dialect runs it) — for SIM
    readiness and network registration; ``fail`` is the error raised when the step fails, so
    a script says what each failure means to the user.
    """

    command: str
    expect: str | None = None
    timeout: float = 5.0
    poll: float = 0.0
    fail: type[LinkError] = LinkError
    response_prefix: str | None = None


async def run_step(channel: AtChannel, step: Step, *, max_poll: float | None = None) -> list[str]:
    """Run one step, polling at most ``max_poll`` seconds; raise ``step.fail`` (chained to
    the cause) when it does not succeed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (step.poll if max_poll is None else min(step.poll, max_poll))
    pattern = re.compile(step.expect) if step.expect else None
    while True:
        try:
            lines = await channel.command(
                step.command, timeout=step.timeout, response_prefix=step.response_prefix
            )
        except (AtCommandError, AtTimeout) as err:
            if loop.time() >= deadline:
                # A timeout already names the (masked) command: say it once.
                if isinstance(err, AtCommandError):
                    raise step.fail(f"{channel.mask(step.command)}: {err.line}") from err
                raise step.fail(str(err)) from err
        else:
            if pattern is None or any(pattern.match(line) for line in lines):
                return lines
            if loop.time() >= deadline:
                raise step.fail(f"{channel.mask(step.command)}: unexpected answer {lines!r}")
        await asyncio.sleep(1.0)


# The 3GPP steps most dialects start with: SIM ready, then registered (home or roaming).
SIM_READY = Step("AT+CPIN?", r"\+CPIN: ?READY", poll=20.0, fail=SimNotReady)
REGISTERED_LTE = Step(
    "AT+CEREG?", r"\+CEREG: ?\d,[15]\b", poll=60.0, fail=NoNetwork, response_prefix="+CEREG:"
)
REGISTERED_GSM = Step(
    "AT+CREG?", r"\+CREG: ?\d,[15]\b", poll=60.0, fail=NoNetwork, response_prefix="+CREG:"
)
PACKET_ATTACHED = Step("AT+CGATT?", r"\+CGATT: ?1", poll=60.0, fail=NoNetwork)


# 3GPP TS 27.007 +CSQ: <rssi>,<ber>; rssi 0..31 stands for -113 dBm and up in 2 dB steps,
# 99 for "not known or not detectable".
_CSQ = re.compile(r"\+CSQ: ?(?P<rssi>\d+)")


def csq_dbm(lines: Sequence[str]) -> int | None:
    """The signal strength in dBm of an ``AT+CSQ`` answer; None when the module does not
    know it (99) or the answer does not read."""
    for line in lines:
        if match := _CSQ.match(line):
            rssi = int(match.group("rssi"))
            return -113 + 2 * rssi if rssi <= 31 else None
    return None


def parse_length_framed(
    header: re.Pattern[bytes], closing: bytes = b""
) -> Callable[[bytes], int | None]:
    """A ``UrcSpec.frame`` for URCs whose header gives the payload length.

    ``header`` must match from the URC's start up to the first payload byte and have a
    group named ``len``; ``closing`` is what follows the payload (a quote for Quectel).
    """

    def frame(buf: bytes) -> int | None:
        match = header.match(buf)
        if match is None:
            # Not a whole header yet, or a header this reading does not know.
            return None if b"\n" not in buf and b"\r" not in buf else -1
        return match.end() + int(match.group("len")) + len(closing)

    return frame


class Dialect(ABC):
    """One module family's way of reaching Aliyun over MQTT."""

    name: ClassVar[str]
    title: ClassVar[str]
    # Most topics it can subscribe to, and the largest payload it can publish.
    max_topics: ClassVar[int]
    max_payload: ClassVar[int]
    supports_tls: ClassVar[bool]
    # Whether the module announces a lost MQTT session by URC; if not, the link checks.
    reports_link_loss: ClassVar[bool] = True
    restart_lines: ClassVar[frozenset[str]] = DEFAULT_RESTART_LINES

    def __init__(self, channel: AtChannel, settings: LinkSettings, events: LinkEvents) -> None:
        self.channel = channel
        self.settings = settings
        self.events = events
        channel.add_secret(settings.identity.device_secret)

    @classmethod
    @abstractmethod
    def matches(cls, info: ModuleInfo) -> bool:
        """Whether a module that identified itself like this speaks this dialect."""

    async def initialize(self) -> None:
        """Echo off and verbose errors, so answers parse the same on every module."""
        await self.channel.command("ATE0")
        # Not every firmware has it; numeric errors are a nicety.
        with contextlib.suppress(AtError):
            await self.channel.command("AT+CMEE=1")

    # --- for the dialects -------------------------------------------------------------------

    async def run(self, *steps: Step) -> list[str]:
        """Run ``steps`` in order, polling no longer than the attach timeout; the last
        step's answer."""
        lines: list[str] = []
        for step in steps:
            lines = await run_step(self.channel, step, max_poll=self.settings.attach_timeout)
        return lines

    async def bring_up(self, start: Step, check: Step) -> None:
        """Run ``start`` (a PDP context, a bearer); when the module refuses it, it may be up
        already (a reconnect): then ``check`` must show so, or ``start``'s failure is raised."""
        try:
            await self.run(start)
        except LinkError as err:
            refused = err
        else:
            return
        with contextlib.suppress(LinkError):
            await self.run(check)
            return
        raise refused

    def message_urc(
        self,
        prefix: str,
        parse: Callable[[str], InboundMessage | None],
        frame: Callable[[bytes], int | None] | None = None,
    ) -> UrcSpec:
        """The URC that carries received messages: ``parse``d and handed to the link."""

        def deliver(text: str) -> None:
            message = parse(text)
            if message is None:
                _LOGGER.warning("dropped an unreadable %s URC", prefix)
                return
            self.events.message(message)

        return UrcSpec(prefix, deliver, frame)

    async def probe_by_publishing(self) -> bool:
        """For modules that neither announce a lost session nor answer a state query: whether
        a QoS 0 NTP request still goes out (it fails once the session is gone)."""
        topic, payload = ntp_request(self.settings, int(time.time() * 1000))
        try:
            await self.publish(topic, payload)
        except PublishFailed as err:
            _LOGGER.debug("session probe failed: %s", err)
            return False
        return True

    async def signal(self) -> int | None:
        """The received signal strength in dBm (3GPP ``AT+CSQ``); None when not known."""
        lines = await self.channel.command("AT+CSQ", response_prefix="+CSQ:")
        return csq_dbm(lines)

    @abstractmethod
    async def attach(self) -> None:
        """SIM ready, registered, data connection up: ``SimNotReady`` / ``NoNetwork``."""

    @abstractmethod
    async def connect(self) -> None:
        """Credentials and endpoint configured, MQTT session open: ``AuthRefused`` & co."""

    @abstractmethod
    async def subscribe(self, topics: Sequence[str]) -> None:
        """Subscribe to ``topics`` (QoS 0 or 1), within the module's limit."""

    @abstractmethod
    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        """Publish; ``UnsafeValue`` if the dialect cannot carry it, ``PublishFailed``."""

    @abstractmethod
    async def is_connected(self) -> bool:
        """A cheap query of the MQTT session state."""

    @abstractmethod
    async def disconnect(self) -> None:
        """Close the MQTT session cleanly (best effort)."""

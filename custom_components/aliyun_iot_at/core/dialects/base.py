"""The one interface every module dialect implements, and the pieces they share.

A dialect reads like its manual: its command sequences are data (``Step`` lists, run by
``run_script``, the way Zephyr's ``modem_chat`` scripts are), plus a few handlers for what data
cannot say (URC parsing, payload framing).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import asyncio
from collections.abc import Callable, Sequence
import contextlib
from dataclasses import dataclass, field
import re
from typing import ClassVar, Protocol

from ..channel import DEFAULT_RESTART_LINES, AtChannel
from ..errors import AtCommandError, AtError, AtTimeout, LinkError, NoNetwork, SimNotReady

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

    @property
    def mqtt_client_id(self) -> str:
        """The plain client id (before Aliyun's ``|…|`` suffix)."""
        ident = self.identity
        return self.client_id or f"{ident.product_key}.{ident.device_name}"


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
    have passed — for SIM readiness and network registration; ``fail`` is the error raised
    when the step fails, so a script says what each failure means to the user.
    """

    command: str
    expect: str | None = None
    timeout: float = 5.0
    poll: float = 0.0
    fail: type[LinkError] = LinkError
    response_prefix: str | None = None


async def run_step(channel: AtChannel, step: Step) -> list[str]:
    """Run one step; raise ``step.fail`` (chained to the cause) when it does not succeed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + step.poll
    pattern = re.compile(step.expect) if step.expect else None
    while True:
        try:
            lines = await channel.command(
                step.command, timeout=step.timeout, response_prefix=step.response_prefix
            )
        except (AtCommandError, AtTimeout) as err:
            if loop.time() >= deadline:
                raise step.fail(f"{channel.mask(step.command)}: {err}") from err
        else:
            if pattern is None or any(pattern.match(line) for line in lines):
                return lines
            if loop.time() >= deadline:
                raise step.fail(f"{channel.mask(step.command)}: unexpected answer {lines!r}")
        await asyncio.sleep(1.0)


async def run_script(channel: AtChannel, steps: Sequence[Step]) -> None:
    """Run ``steps`` in order; the first failure ends the script."""
    for step in steps:
        await run_step(channel, step)


# The 3GPP steps most dialects start with: SIM ready, then registered (home or roaming).
SIM_READY = Step("AT+CPIN?", r"\+CPIN: ?READY", poll=20.0, fail=SimNotReady)
REGISTERED_LTE = Step(
    "AT+CEREG?", r"\+CEREG: ?\d,[15]\b", poll=60.0, fail=NoNetwork, response_prefix="+CEREG:"
)
REGISTERED_GSM = Step(
    "AT+CREG?", r"\+CREG: ?\d,[15]\b", poll=60.0, fail=NoNetwork, response_prefix="+CREG:"
)
PACKET_ATTACHED = Step("AT+CGATT?", r"\+CGATT: ?1", poll=60.0, fail=NoNetwork)


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

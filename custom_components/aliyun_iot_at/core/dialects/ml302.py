"""China Mobile OneMO ML302: the module's own Aliyun client (``AT+ALY…``, seed 001).

The module signs the MQTT credentials itself from the triple it stores. The sequence follows
the manual's example (chapter 3): the triple, ``AT+ALYCONNECTCFG``, ``AT+ALYMQTTCFG``, then
``AT+ALYMQTTOPEN``, ``AT+ALYMQTTSUB`` and ``AT+ALYMQTTPUB``; messages arrive as
``+MQTTRECV: <topic>,<payload>``. Failures are ``ERROR`` or ``+CME ERROR: 700``-``708``.

Readings chosen where the manual is silent or ambiguous:

- The triple survives power loss in the module, but it is set on every connect: the user may
  have changed it. Values are sent quoted, as the example does (the syntax shows them bare).
- Region codes 0-4 are the public regions; 5 ("custom") has no host parameter anywhere in the
  manual, so a typed host is refused unless it is the public host of one of those regions.
- ``AT+ALYMQTTOPEN`` answers ``+CME ERROR: 700`` when the network is unusable and a plain
  ``ERROR`` otherwise; a plain ``ERROR`` while the module is still attached is the cloud
  refusing the credentials.
- The module announces no session loss, and has no state query: ``is_connected`` publishes a
  tiny NTP request on the device's own topic, and an error answer means the session is gone.
- The payload of ``AT+ALYMQTTPUB`` is quoted with inner quotes escaped as ``\\"`` (the
  example); what the firmware makes of any other backslash is unknown, so payloads with a
  backslash (or a control character, which would end the line) are refused.
- ``+MQTTRECV`` gives no length: the topic runs to the first comma, the payload to the end of
  the line. A payload with CR or LF therefore cannot arrive whole (Alink JSON never has one),
  and blanks at its end are lost with the line's end.
"""

from __future__ import annotations

from collections.abc import Sequence
import logging
from typing import ClassVar

from ..atcmd import checked, quoted
from ..channel import AtChannel
from ..errors import (
    AtCommandError,
    AuthRefused,
    CmeError,
    LinkError,
    NoNetwork,
    NotConnected,
    PublishFailed,
    UnsafeValue,
)
from .base import (
    PACKET_ATTACHED,
    REGISTERED_LTE,
    SIM_READY,
    Dialect,
    Endpoint,
    InboundMessage,
    LinkEvents,
    LinkSettings,
    ModuleInfo,
    aliyun_keepalive,
    aliyun_qos,
    run_step,
)

_LOGGER = logging.getLogger(__name__)

# Region codes of AT+ALYCONNECTCFG (2.4.5). "美国" (3) is the Aliyun SDKs' US West region;
# 5 ("自定义") is never sent: the manual gives no way to tell the module the host.
REGION_CODES = {
    "cn-shanghai": 0,
    "ap-southeast-1": 1,
    "ap-northeast-1": 2,
    "us-west-1": 3,
    "eu-central-1": 4,
}

# Error codes of chapter 2.2.
CME_MEANINGS = {
    700: "network error",
    701: "no product key",
    702: "no product secret",
    703: "no device name",
    704: "no device secret",
    705: "invalid operation",
    706: "operation not allowed",
    707: "MQTT already open",
    708: "parameter error",
}
NETWORK_ERROR = 700

# AT+ALYMQTTCFG: clean session, because every topic is subscribed again on each connect and
# a property set queued while offline would be stale; the request timeout (ms) is above the
# example's 2000 for slow cellular links.
CLEAN_SESSION = 1
REQUEST_TIMEOUT_MS = 5000
# Field lengths of chapter 2.4.
MAX_PRODUCT_KEY = 20
MAX_DEVICE_NAME = 32
MAX_DEVICE_SECRET = 64

# Seconds the module may take: OPEN resolves, connects (maybe TLS) and waits for CONNACK.
OPEN_TIMEOUT = 60.0
MQTT_TIMEOUT = 15.0
URC_PREFIXES = ("+MQTTRECV:", "+ MQTTRECV:")  # the second is the manual's 2.4.12 spelling

# An LTE module: attaching brings up the default bearer its Aliyun client uses. The manual
# has no command to choose another, so the APN setting is not used.
ATTACH = (SIM_READY, REGISTERED_LTE, PACKET_ATTACHED)


def region_code(endpoint: Endpoint, product_key: str) -> int:
    """The ``<region>`` of ``AT+ALYCONNECTCFG`` for ``endpoint``; ``LinkError`` if none fits."""
    if endpoint.host is not None:
        for region, code in REGION_CODES.items():
            if endpoint.host.lower() == Endpoint(region).mqtt_host(product_key).lower():
                return code
        raise LinkError(
            f"the ML302 cannot connect to the host {endpoint.host!r}: its firmware only "
            "knows Aliyun's public regions (Shanghai, Singapore, Tokyo, US West, Frankfurt)"
        )
    if endpoint.region not in REGION_CODES:
        raise LinkError(f"the ML302 cannot connect to the region {endpoint.region!r}")
    return REGION_CODES[endpoint.region]


def configure_commands(settings: LinkSettings) -> list[str]:
    """The commands before ``AT+ALYMQTTOPEN``, as in the manual's example (chapter 3)."""
    ident = settings.identity
    endpoint = settings.endpoint
    keepalive = aliyun_keepalive(settings.keepalive)
    pk = quoted(ident.product_key, "product key", max_len=MAX_PRODUCT_KEY)
    dn = quoted(ident.device_name, "device name", max_len=MAX_DEVICE_NAME)
    ds = quoted(ident.device_secret, "device secret", max_len=MAX_DEVICE_SECRET)
    region = region_code(endpoint, ident.product_key)
    return [
        f"AT+ALYPRODUCTKEY={pk}",
        f"AT+ALYDEVICENAME={dn}",
        f"AT+ALYDEVICESECRET={ds}",
        f"AT+ALYCONNECTCFG={region},{endpoint.mqtt_port},{int(endpoint.tls)}",
        f"AT+ALYMQTTCFG={CLEAN_SESSION},{REQUEST_TIMEOUT_MS},{keepalive * 1000}",
    ]


def subscribe_command(topic: str, qos: int = 1) -> str:
    """``AT+ALYMQTTSUB="topic",qos``; a comma would make ``+MQTTRECV`` ambiguous."""
    checked(topic, "topic", forbid=",")
    return f"AT+ALYMQTTSUB={quoted(topic, 'topic')},{aliyun_qos(qos)}"


def publish_command(topic: str, payload: bytes, qos: int, max_payload: int) -> str:
    """``AT+ALYMQTTPUB="topic",qos,"payload"`` with inner quotes escaped as ``\\"``.

    ``UnsafeValue`` for a payload that is not UTF-8, is empty, holds a control character or
    a backslash, or whose escaped form is longer than ``max_payload`` bytes.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeValue("the payload is not UTF-8 text, which the ML302 cannot carry") from None
    checked(text, "the payload", forbid="\\")
    escaped = text.replace('"', '\\"')
    if len(escaped.encode()) > max_payload:
        raise UnsafeValue(f"the payload is longer than {max_payload} bytes once escaped")
    return f'AT+ALYMQTTPUB={quoted(topic, "topic")},{aliyun_qos(qos)},"{escaped}"'


def parse_recv(line: str) -> InboundMessage | None:
    """``+MQTTRECV: <topic>,<payload>``: the topic up to the first comma, the rest verbatim."""
    for prefix in URC_PREFIXES:
        if line.startswith(prefix):
            topic, comma, payload = line.removeprefix(prefix).partition(",")
            topic = topic.strip().strip('"')  # some firmware quotes the topic
            if comma and topic:
                return InboundMessage(topic, payload.encode())
    return None


def describe(err: AtCommandError) -> str:
    """The module's answer with the manual's meaning of its code."""
    meaning = CME_MEANINGS.get(err.code or 0) if isinstance(err, CmeError) else None
    return f"{err.line} ({meaning})" if meaning else err.line


def _is_network_error(err: AtCommandError) -> bool:
    return isinstance(err, CmeError) and err.code == NETWORK_ERROR


class Ml302Dialect(Dialect):
    """OneMO ML302 with the Aliyun AT extension (V1.0.0, 2019)."""

    name: ClassVar[str] = "ml302"
    title: ClassVar[str] = "China Mobile OneMO ML302"
    # The manual states neither limit; both stay modest for the module's command buffer.
    max_topics: ClassVar[int] = 10
    max_payload: ClassVar[int] = 1024
    supports_tls: ClassVar[bool] = True
    reports_link_loss: ClassVar[bool] = False

    def __init__(self, channel: AtChannel, settings: LinkSettings, events: LinkEvents) -> None:
        super().__init__(channel, settings, events)
        for prefix in URC_PREFIXES:
            channel.add_urc(self.message_urc(prefix, parse_recv))

    @classmethod
    def matches(cls, info: ModuleInfo) -> bool:
        fields = (info.manufacturer, info.model)
        return any(field is not None and "ML302" in field.upper() for field in fields)

    async def attach(self) -> None:
        await self.run(*ATTACH)

    async def connect(self) -> None:
        commands = configure_commands(self.settings)
        # The triple cannot change under an open session: close whatever a previous run left.
        await self._close_quietly()
        for command in commands:
            await self._configure(command)
        await self._open()

    async def subscribe(self, topics: Sequence[str]) -> None:
        if len(topics) > self.max_topics:
            raise LinkError(f"the ML302 subscribes to at most {self.max_topics} topics")
        for topic in topics:
            command = subscribe_command(topic)
            try:
                await self.channel.command(command, timeout=MQTT_TIMEOUT)
            except AtCommandError as err:
                kind = NotConnected if _is_network_error(err) else LinkError
                raise kind(f"subscribing to {topic} failed: {describe(err)}") from err

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        command = publish_command(topic, payload, qos, self.max_payload)
        try:
            await self.channel.command(command, timeout=MQTT_TIMEOUT)
        except AtCommandError as err:
            raise PublishFailed(f"publishing to {topic} failed: {describe(err)}") from err

    async def is_connected(self) -> bool:
        return await self.probe_by_publishing()

    async def disconnect(self) -> None:
        await self.channel.command("AT+ALYMQTTCLOSE", timeout=MQTT_TIMEOUT)

    # --- helpers -------------------------------------------------------------------------

    async def _configure(self, command: str) -> None:
        try:
            await self.channel.command(command)
        except AtCommandError as err:
            raise LinkError(f"{self.channel.mask(command)}: {describe(err)}") from err

    async def _open(self) -> None:
        try:
            await self.channel.command("AT+ALYMQTTOPEN", timeout=OPEN_TIMEOUT)
        except CmeError as err:
            kind = NoNetwork if _is_network_error(err) else LinkError
            raise kind(f"AT+ALYMQTTOPEN: {describe(err)}") from err
        except AtCommandError as err:
            # Still attached: nothing but the cloud's refusal is left to explain the ERROR.
            await run_step(self.channel, PACKET_ATTACHED, max_poll=0.0)
            raise AuthRefused(
                "the cloud refused the device's credentials (AT+ALYMQTTOPEN: ERROR)"
            ) from err

    async def _close_quietly(self) -> None:
        try:
            await self.channel.command("AT+ALYMQTTCLOSE", timeout=MQTT_TIMEOUT)
        except AtCommandError as err:  # 705 or ERROR: nothing was open
            _LOGGER.debug("nothing to close: %s", describe(err))


DIALECT = Ml302Dialect

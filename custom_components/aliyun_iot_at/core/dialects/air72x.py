"""AirM2M Air72x (AT firmware V409 and later): the host signs, the module's HTTP client asks.

Seed 002: the host computes the HmacMD5 ``sign`` of the HTTP auth request; the module POSTs it
to Aliyun's auth endpoint with its HTTP client (``AT+HTTP*``) and the reply's iotId/iotToken
become the MQTT user name and password (``AT+MCONFIG``). Then ``AT+SSLMIPSTART`` (TLS) or
``AT+MIPSTART`` (TCP), ``AT+MCONNECT``, ``AT+MSUB``; publishing uses ``AT+MPUBEX``.

Readings of the Luat AT manual where the seed is silent or ambiguous:
- ``AT+MPUB`` carries its message inside quotes, so no JSON fits; the Luat manual's
  length-prefixed ``AT+MPUBEX="<topic>",<qos>,<retain>,<len>`` (``>`` prompt, 1-4100 bytes)
  is used instead. Its input also ends on Ctrl-Z, so payloads with 0x1A/0x1B are refused.
- ``AT+MQTTMSGSET=0`` (print each message as ``+MSUB: "<topic>",<n> byte,<payload>``) is sent
  before the first ``AT+MSUB``, not after it as in the seed, so nothing lands in the cache.
- ``CLOSED`` announces the loss of the MQTT connection; ``AT+MQTTSTATU`` answers
  ``+MQTTSTATU :<state>`` (0 offline, 1 connected, 2 TCP up but no MQTT session).
- The manual names no result for a refused CONNECT: anything but ``CONNACK OK``, or
  ``CLOSED`` while waiting for it, is taken as a refusal.
- An empty APN (the default) is sent as ``"APN",""``: the Luat manual's way of letting the
  module choose; the seed's ``CMIOT`` is China Mobile's IoT APN, typed when needed.
- ``AT+HTTPREAD``'s body is cut by its length, and its iotId/iotToken are masked before the
  channel logs it; the request's ``sign`` is masked too (without a timestamp it never changes).
"""

from __future__ import annotations

from collections.abc import Sequence
import contextlib
import json
import re
from typing import Any

from ..atcmd import checked, quoted
from ..channel import AtChannel, UrcSpec
from ..errors import (
    AtCommandError,
    AtError,
    AtTimeout,
    AuthRefused,
    FirmwareTooOld,
    LinkError,
    NoNetwork,
    NoResult,
    PublishFailed,
    UnsafeValue,
)
from ..signing import http_auth_body, http_auth_sign
from .base import (
    PACKET_ATTACHED,
    SIM_READY,
    Dialect,
    InboundMessage,
    LinkEvents,
    LinkSettings,
    ModuleInfo,
    Step,
    aliyun_keepalive,
    aliyun_qos,
    parse_length_framed,
)

# Seed 002: "the version string must be at least 409, otherwise Aliyun is not supported".
MIN_FIRMWARE = 409
_FIRMWARE_RE = re.compile(r"_V(\d+)(?:_|$)")

# Luat manual limits: topics up to 256 bytes, messages 1-4100 bytes, HTTPDATA up to 3356.
MAX_TOPIC = 256
MAX_PAYLOAD = 4100
MAX_HTTP_BODY = 3356
# Aliyun accepts QoS 0 and 1; with 1 the module acknowledges each property set it receives.
SUBSCRIBE_QOS = 1
# What the seed waits for the HTTP body (ms), and how long the module's request may take
# (its HTTP "TIMEOUT" defaults to 120 s).
HTTPDATA_WINDOW_MS = 20000
HTTP_ACTION_TIMEOUT = 125.0
TCP_CONNECT_TIMEOUT = 75.0
MQTT_ACK_TIMEOUT = 30.0
# Characters that would change the meaning of the x-www-form-urlencoded body.
_FORM_UNSAFE = "&=+%# "

_HTTPREAD_HEADER = re.compile(rb"\+HTTPREAD: ?(?P<len>\d+)\r?\n")
_MSUB_HEADER = re.compile(rb'\+MSUB: ?"(?P<topic>[^"\r\n]*)",(?P<len>\d+) ?bytes?,')
_MSUB_TEXT = re.compile(r'\+MSUB: ?"(?P<topic>[^"\r\n]*)",(?P<len>\d+) ?bytes?,')
_CREDENTIAL_RE = re.compile(rb'"(?:iotId|iotToken)"\s*:\s*"([^"]+)"')

# Seed 002, step 2: attached to the packet network, then the bearer the HTTP client uses.
ATTACH: tuple[Step, ...] = (
    SIM_READY,
    PACKET_ATTACHED,
    Step('AT+SAPBR=3,1,"CONTYPE","GPRS"', fail=NoNetwork),
)
OPEN_BEARER = Step("AT+SAPBR=1,1", timeout=30.0, fail=NoNetwork)
# AT+SAPBR=1,1 fails when the bearer is already open (a reconnect): status 1 means open.
BEARER_OPEN = Step("AT+SAPBR=2,1", r"\+SAPBR: ?1,1,", fail=NoNetwork, response_prefix="+SAPBR:")
HTTP_HEADERS = Step('AT+HTTPPARA="USER_DEFINED","Content-Type: application/x-www-form-urlencoded"')


def firmware_version(lines: Sequence[str]) -> int | None:
    """The number after ``_V`` in an ``AT+CGMR`` answer (``AirM2M_Air72xUy_V409_LTE_AT``)."""
    for line in lines:
        match = _FIRMWARE_RE.search(line.removeprefix("+CGMR:").strip())
        if match:
            return int(match.group(1))
    return None


def apn_command(apn: str) -> str:
    """``AT+SAPBR=3,1,"APN",...``; an empty APN lets the module choose it."""
    value = quoted(apn, "APN", max_len=64) if apn else '""'
    return f'AT+SAPBR=3,1,"APN",{value}'


def start_command(host: str, port: int, *, tls: bool) -> str:
    """The seed's ``AT+SSLMIPSTART="<host>",<port>`` (TLS), or Luat's ``AT+MIPSTART`` (TCP)."""
    start = "AT+SSLMIPSTART" if tls else "AT+MIPSTART"
    return f"{start}={quoted(host, 'host', max_len=255)},{port}"


def mconnect_command(keepalive: int) -> str:
    """``AT+MCONNECT=1,<keepalive>`` (clean session), keepalive within Aliyun's range."""
    return f"AT+MCONNECT=1,{aliyun_keepalive(keepalive)}"


def msub_command(topic: str) -> str:
    """``AT+MSUB="<topic>",<qos>``."""
    return f"AT+MSUB={quoted(topic, 'topic', max_len=MAX_TOPIC)},{SUBSCRIBE_QOS}"


def mpubex_command(topic: str, qos: int, length: int) -> str:
    """``AT+MPUBEX="<topic>",<qos>,0,<len>`` (Aliyun keeps no retained messages)."""
    return f"AT+MPUBEX={quoted(topic, 'topic', max_len=MAX_TOPIC)},{qos},0,{length}"


def check_payload(payload: bytes) -> None:
    """Refuse what ``AT+MPUBEX`` cannot carry: empty, too long, Ctrl-Z or ESC inside."""
    if not payload:
        raise UnsafeValue("the Air72x cannot publish an empty message")
    if len(payload) > MAX_PAYLOAD:
        raise UnsafeValue(f"the Air72x publishes at most {MAX_PAYLOAD} bytes")
    if b"\x1a" in payload or b"\x1b" in payload:
        raise UnsafeValue("the payload contains Ctrl-Z or ESC, which end the module's input")


def parse_msub(text: str) -> InboundMessage | None:
    """A direct-mode ``+MSUB: "<topic>",<n> byte,<payload>``, cut to its length already."""
    match = _MSUB_TEXT.match(text)
    if match is None:
        return None
    return InboundMessage(match.group("topic"), text[match.end() :].encode())


def parse_auth_reply(status: int, body: str) -> tuple[str, str, str | None, int | None]:
    """iotId, iotToken and the MQTT host and port (if given) of an HTTP auth reply."""
    try:
        reply: Any = json.loads(body)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise LinkError(f"the auth endpoint answered HTTP {status} without a JSON reply")
    code = reply.get("code")
    if code != 200:
        message = str(reply.get("message", ""))[:100]
        raise AuthRefused(f"the cloud refused the device (code {code}: {message})")
    data = _mapping(reply.get("data"))
    iot_id, iot_token = data.get("iotId"), data.get("iotToken")
    if not isinstance(iot_id, str) or not isinstance(iot_token, str) or not iot_id:
        raise LinkError("the auth reply carries no iotId/iotToken")
    mqtt = _mapping(_mapping(data.get("resources")).get("mqtt"))
    host, port = mqtt.get("host"), str(mqtt.get("port", ""))
    return (
        iot_id,
        iot_token,
        host if isinstance(host, str) and host else None,
        int(port) if port.isdigit() and 0 < int(port) < 65536 else None,
    )


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class Air72xDialect(Dialect):
    """AirM2M Air72x with Luat AT firmware V409+: HTTP auth, then the module's MQTT client."""

    name = "air72x"
    title = "AirM2M Air72x (Luat AT V409+)"
    # The Luat manual names no subscription limit: a conservative bound.
    max_topics = 10
    max_payload = MAX_PAYLOAD
    supports_tls = True
    reports_link_loss = True

    def __init__(self, channel: AtChannel, settings: LinkSettings, events: LinkEvents) -> None:
        super().__init__(channel, settings, events)
        self._connected = False
        self._http_bodies: list[str] = []
        # "+MSUB: <n>" (cache mode, which AT+MQTTMSGSET=0 turns off) reads as no message.
        channel.add_urc(
            self.message_urc("+MSUB:", parse_msub, frame=parse_length_framed(_MSUB_HEADER))
        )
        channel.add_urc(UrcSpec("+HTTPREAD:", self._on_http_read, frame=self._frame_http_read))
        channel.add_urc(UrcSpec("CLOSED", self._on_closed))

    @classmethod
    def matches(cls, info: ModuleInfo) -> bool:
        text = " ".join(filter(None, (info.manufacturer, info.model, info.firmware))).lower()
        return any(word in text for word in ("airm2m", "luat", "air72"))

    async def initialize(self) -> None:
        await super().initialize()
        version = firmware_version(await self.run(Step("AT+CGMR")))
        if version is None:
            raise LinkError("AT+CGMR shows no Air72x firmware version (…_V<number>_…)")
        if version < MIN_FIRMWARE:
            raise FirmwareTooOld(
                f"Air72x firmware V{version} is too old for Aliyun: "
                f"update the module's AT firmware to V{MIN_FIRMWARE} or later"
            )

    async def attach(self) -> None:
        await self.run(*ATTACH, Step(apn_command(self.settings.apn), fail=NoNetwork))
        await self.bring_up(OPEN_BEARER, BEARER_OPEN)

    async def connect(self) -> None:
        iot_id, iot_token, host, port = await self._http_auth()
        await self._open_session(iot_id, iot_token, host, port)

    async def subscribe(self, topics: Sequence[str]) -> None:
        if len(topics) > self.max_topics:
            raise LinkError(f"the Air72x keeps at most {self.max_topics} subscriptions")
        await self.channel.command("AT+MQTTMSGSET=0")
        for topic in topics:
            command = msub_command(topic)
            try:
                reply = await self.channel.request(
                    command, results=("SUBACK",), result_timeout=MQTT_ACK_TIMEOUT
                )
            except (AtCommandError, AtTimeout) as err:
                raise LinkError(f"subscribing to {topic} failed: {err}") from err
            if "FAIL" in reply.line.upper():
                raise LinkError(f"the server refused the subscription to {topic} ({reply.line})")

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        check_payload(payload)
        command = mpubex_command(topic, aliyun_qos(qos), len(payload))
        try:
            if qos:  # the module reports the server's PUBACK
                await self.channel.request(
                    command,
                    results=("PUBACK",),
                    timeout=10.0,
                    result_timeout=MQTT_ACK_TIMEOUT,
                    prompt=">",
                    payload=payload,
                )
            else:
                await self.channel.command(command, timeout=10.0, prompt=">", payload=payload)
        except (AtCommandError, AtTimeout) as err:
            raise PublishFailed(f"publishing to {topic} failed: {err}") from err

    async def is_connected(self) -> bool:
        lines = await self.channel.command("AT+MQTTSTATU", response_prefix="+MQTTSTATU")
        for line in lines:
            if line.startswith("+MQTTSTATU"):
                return line.partition(":")[2].strip() == "1"
        return False

    async def disconnect(self) -> None:
        self._connected = False
        for command in ("AT+MDISCONNECT", "AT+MIPCLOSE"):
            with contextlib.suppress(AtCommandError):
                await self.channel.command(command)

    # --- HTTP auth (seed 002, step 3) ---------------------------------------------------

    async def _http_auth(self) -> tuple[str, str, str | None, int | None]:
        ident = self.settings.identity
        client_id = self.settings.mqtt_client_id
        for value, what in (
            (ident.product_key, "product key"),
            (ident.device_name, "device name"),
            (client_id, "client id"),
        ):
            checked(value, what, max_len=64, forbid=_FORM_UNSAFE + '"')
        # Without a timestamp the sign never changes: whoever reads it can fetch tokens.
        self.channel.add_secret(
            http_auth_sign(ident.product_key, ident.device_name, ident.device_secret, client_id)
        )
        body = http_auth_body(
            ident.product_key, ident.device_name, ident.device_secret, client_id
        ).encode()
        if len(body) > MAX_HTTP_BODY:
            raise UnsafeValue(f"the auth request exceeds the module's {MAX_HTTP_BODY} bytes")
        url = quoted(self.settings.endpoint.auth_url, "auth URL", max_len=500)
        await self._http_init()
        try:
            await self.run(Step(f'AT+HTTPPARA="URL",{url}'), HTTP_HEADERS)
            await self.channel.command(
                f"AT+HTTPDATA={len(body)},{HTTPDATA_WINDOW_MS}",
                timeout=HTTPDATA_WINDOW_MS / 1000,
                prompt="DOWNLOAD",
                payload=body,
            )
            status, length = await self._http_post()
            reply = await self._http_read() if length else ""
        except (AtCommandError, AtTimeout) as err:
            raise LinkError(f"the HTTP auth request failed: {err}") from err
        finally:
            with contextlib.suppress(AtError):
                await self.channel.command("AT+HTTPTERM")
        if 600 <= status <= 606:
            raise NoNetwork(f"the module could not reach the auth endpoint (HTTP {status})")
        iot_id, iot_token, host, port = parse_auth_reply(status, reply)
        self.channel.add_secret(iot_id)
        self.channel.add_secret(iot_token)
        return iot_id, iot_token, host, port

    async def _http_init(self) -> None:
        """``AT+HTTPINIT``; an HTTP session left over from an interrupted try is ended first."""
        try:
            await self.channel.command("AT+HTTPINIT")
        except AtCommandError:
            with contextlib.suppress(AtCommandError):
                await self.channel.command("AT+HTTPTERM")
            await self.run(Step("AT+HTTPINIT"))

    async def _http_post(self) -> tuple[int, int]:
        """``AT+HTTPACTION=1``: ``OK`` now, ``+HTTPACTION: 1,<status>,<len>`` when done."""
        reply = await self.channel.request(
            "AT+HTTPACTION=1", results=("+HTTPACTION:",), result_timeout=HTTP_ACTION_TIMEOUT
        )
        fields = reply.rest.split(",")
        if len(fields) < 3 or not fields[1].strip().isdigit() or not fields[2].strip().isdigit():
            raise LinkError(f"unexpected {reply.line!r}")
        return int(fields[1]), int(fields[2])

    async def _http_read(self) -> str:
        self._http_bodies.clear()
        await self.channel.command("AT+HTTPREAD", timeout=10.0)
        if not self._http_bodies:
            raise LinkError("AT+HTTPREAD returned no body")
        return self._http_bodies.pop()

    def _frame_http_read(self, buf: bytes) -> int | None:
        size = _http_read_frame(buf)
        if size is not None and 0 < size <= len(buf):
            # The body carries iotId/iotToken: mask them before the channel logs it.
            for match in _CREDENTIAL_RE.finditer(buf[:size]):
                self.channel.add_secret(match.group(1).decode(errors="replace"))
        return size

    def _on_http_read(self, text: str) -> None:
        self._http_bodies.append(text.partition("\n")[2])

    # --- MQTT session (seed 002, step 4) ------------------------------------------------

    async def _open_session(
        self, iot_id: str, iot_token: str, host: str | None, port: int | None
    ) -> None:
        endpoint = self.settings.endpoint
        host = host or endpoint.mqtt_host(self.settings.identity.product_key)
        port = port or endpoint.mqtt_port
        # As Luat's reconnect example: close what an earlier session left, whatever it says.
        with contextlib.suppress(AtCommandError):
            await self.channel.command("AT+MIPCLOSE")
        client_id = quoted(self.settings.mqtt_client_id, "client id", max_len=64)
        user = quoted(iot_id, "iotId", max_len=256)
        password = quoted(iot_token, "iotToken", max_len=256)
        await self.run(Step(f"AT+MCONFIG={client_id},{user},{password}"))
        try:
            line = await self._command_then(
                start_command(host, port, tls=endpoint.tls),
                ("CONNECT", "ALREADY CONNECT"),
                TCP_CONNECT_TIMEOUT,
            )
        except NoResult as err:
            raise NoNetwork(f"the module could not connect to {host}:{port}: {err}") from err
        if line not in ("CONNECT OK", "ALREADY CONNECT"):
            raise NoNetwork(f"the module could not connect to {host}:{port} ({line})")
        # Luat: send MCONNECT right after CONNECT OK, or the server drops the connection.
        try:
            line = await self._command_then(
                mconnect_command(self.settings.keepalive),
                ("CONNACK", "CLOSED"),
                MQTT_ACK_TIMEOUT,
            )
        except NoResult as err:
            raise LinkError(f"the MQTT server did not answer the CONNECT: {err}") from err
        if line != "CONNACK OK":
            raise AuthRefused(f"the MQTT server refused the iotId/iotToken ({line})")
        self._connected = True

    async def _command_then(self, command: str, prefixes: Sequence[str], timeout: float) -> str:
        """Run ``command`` (``OK`` first), then return the first result line of ``prefixes``:
        ``LinkError`` when the command fails, ``NoResult`` when no result line comes."""
        try:
            reply = await self.channel.request(command, results=prefixes, result_timeout=timeout)
        except NoResult:
            raise
        except (AtCommandError, AtTimeout) as err:
            raise LinkError(str(err)) from err  # it names the (masked) command
        return reply.line

    # --- URCs ---------------------------------------------------------------------------

    def _on_closed(self, line: str) -> None:
        if line == "CLOSED" and self._connected:
            self._connected = False
            self.events.link_lost("the module reported CLOSED")


_http_read_frame = parse_length_framed(_HTTPREAD_HEADER)


DIALECT = Air72xDialect

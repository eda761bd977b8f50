"""WinnerMicro W800 (seed 003): ESP-AT style MQTT commands, the host signs for Aliyun.

A Wi-Fi module: no SIM and no 3GPP registration. The host computes the Aliyun client id,
user name and password (``core.signing``) and hands them to the module, which runs a plain
MQTT client:

    AT+MQTTCLEAN=0                                   drop whatever session was left
    AT+MQTTUSERCFG=0,<1 TCP|2 TLS>,"c","u","p",0,0,"" placeholders, then always:
    AT+MQTTLONGCLIENTID=0,<len>  OK  >  <client id>  OK
    AT+MQTTLONGUSERNAME=0,<len>  OK  >  <user name>  OK
    AT+MQTTLONGPASSWORD=0,<len>  OK  >  <password>   OK
    AT+MQTTCONNCFG=0,<keepalive>,0,"","",0,0
    AT+MQTTCONN=0,"<host>",<port>,0                  OK, +MQTTCONNECTED:… | +MQTTDISCONNECTED:0
    AT+MQTTSUB=0,"<topic>",<qos>                     at most 10 topics
    AT+MQTTPUBRAW=0,"<topic>",<len>,<qos>,0          OK  >  <data>  +MQTTPUB:OK | FAIL
    +MQTTSUBRECV:0,"<topic>",<len>,<data>            data counted in bytes
    +MQTTDISCONNECTED:0                              the session is gone

Credentials always go through the ``AT+MQTTLONG*`` data prompts: the Aliyun client id always
holds commas, which ESP-AT style parsers only accept escaped inside a quoted string, and a
prompt carries every byte as counted, so nothing needs escaping and the password never
appears on a command line.
"""

from __future__ import annotations

from collections.abc import Sequence
import contextlib
import re

from ..atcmd import checked, quoted
from ..channel import AtChannel, UrcSpec, parse_fields
from ..errors import (
    AtCommandError,
    AtTimeout,
    AuthRefused,
    LinkError,
    NoNetwork,
    PublishFailed,
    UnsafeValue,
)
from ..signing import mqtt_credentials
from .base import (
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

# "每条 AT 命令的总长度不能超过 256 字节" (elsewhere "应小于 256"): we count the CR LF
# that ends the line, which satisfies both readings.
MAX_LINE = 256
MAX_TOPIC = 128  # topic and host: "最大长度:128 字节"
MAX_HOST = 128
MAX_LONG_VALUE = 1024  # AT+MQTTLONG* <length>: [1,1024]
# "AT MQTT 命令都会在 10 秒内响应,但 AT+MQTTCONN 命令除外": TLS retries take longer.
COMMAND_TIMEOUT = 10.0
CONNECT_TIMEOUT = 60.0
SUBSCRIBE_QOS = 1
# The states of AT+MQTTCONN? that mean "connected" (4, 5 no topic yet, 6 subscribed).
_CONNECTED_STATES = frozenset({"4", "5", "6"})
# ESP-AT style parsers read "\" as an escape and "," as a separator even inside quotes.
_UNSAFE_IN_STRING = ",\\"

# Joined to an access point: +CWJAP:"<ssid>",…; "No AP" or ERROR when not.
WIFI_JOINED = Step("AT+CWJAP?", r'\+CWJAP: ?"', fail=NoNetwork)
# Our settings carry no Wi-Fi credentials: the user joins the module once, by hand.
_NOT_JOINED = (
    "the W800 is not joined to a Wi-Fi network; join it first with "
    'AT+CWJAP="<ssid>","<password>" from a serial terminal'
)
_REFUSED = (
    "the broker refused the MQTT session: check the device secret (the W800 reports a "
    "refused login and an unreachable host alike, so check the host and port too)"
)

# The topic is quoted by the module; read an unquoted one as well.
_SUBRECV = r'\+MQTTSUBRECV: ?\d+,"?(?P<topic>[^",\r\n]*)"?,(?P<len>\d+),'
_SUBRECV_TEXT = re.compile(_SUBRECV)
_SUBRECV_FRAME = parse_length_framed(re.compile(_SUBRECV.encode()))


def _string(value: str, what: str, max_len: int) -> str:
    """A quoted string parameter the W800 reads back exactly as given."""
    checked(value, what, forbid=_UNSAFE_IN_STRING)
    return quoted(value, what, max_len=max_len)


def checked_line(text: str) -> str:
    """``text`` when it fits the W800's command line; ``UnsafeValue`` if not."""
    if len(text.encode()) + 2 > MAX_LINE:
        name = text.split("=", 1)[0]
        raise UnsafeValue(f"{name} would be longer than the W800's {MAX_LINE}-byte line")
    return text


def usercfg_command(tls: bool) -> str:
    """``AT+MQTTUSERCFG`` with placeholders (the real values follow by data prompt).

    Scheme 2 is TLS without certificate check: the manual offers no way to load Aliyun's
    CA into the module, so scheme 3 could never verify.
    """
    return f'AT+MQTTUSERCFG=0,{2 if tls else 1},"c","u","p",0,0,""'


def long_command(field: str, value: str) -> tuple[str, bytes]:
    """``AT+MQTTLONG<field>=0,<len>`` and the bytes to send at its prompt."""
    checked(value, field.lower(), max_len=MAX_LONG_VALUE)
    data = value.encode()
    return checked_line(f"AT+MQTTLONG{field}=0,{len(data)}"), data


def connconfig_command(keepalive: int) -> str:
    """``AT+MQTTCONNCFG``: clean session, no will (Aliyun has none)."""
    return checked_line(f'AT+MQTTCONNCFG=0,{aliyun_keepalive(keepalive)},0,"","",0,0')


def connect_command(host: str, port: int) -> str:
    """``AT+MQTTCONN`` without automatic reconnection (the link supervisor reconnects)."""
    if not 0 < port < 65536:
        raise UnsafeValue(f"MQTT port {port} is out of range")
    return checked_line(f"AT+MQTTCONN=0,{_string(host, 'MQTT host', MAX_HOST)},{port},0")


def subscribe_command(topic: str, qos: int = SUBSCRIBE_QOS) -> str:
    """``AT+MQTTSUB`` for one topic."""
    return checked_line(f"AT+MQTTSUB=0,{_string(topic, 'topic', MAX_TOPIC)},{qos}")


def publish_command(topic: str, length: int, qos: int) -> str:
    """``AT+MQTTPUBRAW``: the payload follows at the ``>`` prompt (never retained)."""
    return checked_line(f"AT+MQTTPUBRAW=0,{_string(topic, 'topic', MAX_TOPIC)},{length},{qos},0")


def parse_subrecv(text: str) -> InboundMessage | None:
    """A framed ``+MQTTSUBRECV`` URC as a message; ``None`` if its header does not parse."""
    match = _SUBRECV_TEXT.match(text)
    if match is None:
        return None
    return InboundMessage(match.group("topic"), text[match.end() :].encode())


def wifi_dbm(lines: Sequence[str]) -> int | None:
    """The RSSI in dBm of an ``AT+CWJAP?`` answer (``+CWJAP:"<ssid>","<bssid>",<channel>,
    <rssi>``, ESP-AT's reading: the manual shows only the set form); None when not joined."""
    for line in lines:
        if line.startswith("+CWJAP:"):
            fields = parse_fields(line.removeprefix("+CWJAP:"))
            rssi = fields[3] if len(fields) > 3 else ""
            return int(rssi) if re.fullmatch(r"-?\d+", rssi) else None
    return None


def session_connected(lines: Sequence[str]) -> bool:
    """Whether an ``AT+MQTTCONN?`` answer shows a connected session.

    The manual prints ``+MQTTCONN:<id>,<state>,<scheme><"host">,…`` (a comma missing):
    only the state, the second field, is read.
    """
    for line in lines:
        if line.startswith("+MQTTCONN:"):
            fields = parse_fields(line.removeprefix("+MQTTCONN:"))
            return len(fields) > 1 and fields[1] in _CONNECTED_STATES
    return False


class W800(Dialect):
    """WinnerMicro W800 with its ESP-AT style MQTT client."""

    name = "w800"
    title = "WinnerMicro W800 (Wi-Fi)"
    max_topics = 10  # "最多可以订阅10个主题"
    max_payload = 5760  # AT+MQTTPUBRAW <length>: "最大不超过 5760 字节"
    supports_tls = True
    restart_lines = frozenset({"ready"})

    def __init__(self, channel: AtChannel, settings: LinkSettings, events: LinkEvents) -> None:
        super().__init__(channel, settings, events)
        self._session_up = False
        channel.add_urc(self.message_urc("+MQTTSUBRECV:", parse_subrecv, _SUBRECV_FRAME))
        channel.add_urc(UrcSpec("+MQTTDISCONNECTED:", self._on_disconnected))

    @classmethod
    def matches(cls, info: ModuleInfo) -> bool:
        text = " ".join(filter(None, (info.manufacturer, info.model, info.firmware))).lower()
        return "w800" in text or "winnermicro" in text

    async def initialize(self) -> None:
        # No AT+CMEE: it is a 3GPP command and ESP-AT style firmware answers plain ERROR.
        await self.channel.command("ATE0")

    async def attach(self) -> None:
        try:
            await self.run(WIFI_JOINED)
        except NoNetwork as err:
            raise NoNetwork(f"{_NOT_JOINED} ({err})") from err

    async def connect(self) -> None:
        ident = self.settings.identity
        endpoint = self.settings.endpoint
        conn = connect_command(endpoint.mqtt_host(ident.product_key), endpoint.mqtt_port)
        try:
            creds = mqtt_credentials(
                ident.product_key,
                ident.device_name,
                ident.device_secret,
                client_id=self.settings.client_id,
                tls=endpoint.tls,
            )
        except ValueError as err:
            raise UnsafeValue(str(err)) from None
        self.channel.add_secret(creds.password)
        longs = [
            long_command("CLIENTID", creds.client_id),
            long_command("USERNAME", creds.username),
            long_command("PASSWORD", creds.password),
        ]
        self._session_up = False
        # With reconnect 0 a lost session must be cleaned before AT+MQTTCONN works again;
        # with nothing to clean the module may answer ERROR.
        with contextlib.suppress(AtCommandError):
            await self.channel.command("AT+MQTTCLEAN=0", timeout=COMMAND_TIMEOUT)
        await self.channel.command(usercfg_command(endpoint.tls), timeout=COMMAND_TIMEOUT)
        for text, data in longs:
            await self.channel.command(text, timeout=COMMAND_TIMEOUT, prompt=">", payload=data)
        await self.channel.command(
            connconfig_command(self.settings.keepalive), timeout=COMMAND_TIMEOUT
        )
        if not await self._open(conn):
            await self.attach()  # a dropped Wi-Fi is the one cause we can tell apart
            raise AuthRefused(_REFUSED)
        self._session_up = True

    async def _open(self, text: str) -> bool:
        """Send ``AT+MQTTCONN``; whether the module then reports the session up.

        The manual answers ``OK`` and announces ``+MQTTCONNECTED`` (ESP-AT may print it
        before the ``OK``); a failure is ``ERROR`` or ``+MQTTDISCONNECTED``.
        """
        try:
            reply = await self.channel.request(
                text,
                results=("+MQTTCONNECTED:", "+MQTTDISCONNECTED:"),
                timeout=CONNECT_TIMEOUT,
                result_timeout=CONNECT_TIMEOUT,
            )
        except AtCommandError:
            return False
        return reply.prefix == "+MQTTCONNECTED:"

    async def subscribe(self, topics: Sequence[str]) -> None:
        wanted = list(dict.fromkeys(topics))
        if len(wanted) > self.max_topics:
            raise UnsafeValue(
                f"the W800 subscribes to at most {self.max_topics} topics, not {len(wanted)}"
            )
        commands = [(topic, subscribe_command(topic)) for topic in wanted]
        for topic, text in commands:
            try:
                # The manual shows ALREADY SUBSCRIBE alone, as the final answer.
                await self.channel.command(
                    text,
                    timeout=COMMAND_TIMEOUT,
                    ok=("OK", "ALREADY SUBSCRIBE"),
                    errors=("ALREADY FULL SUBSCRIBE",),
                )
            except AtCommandError as err:
                if err.line == "ALREADY FULL SUBSCRIBE":
                    raise LinkError(
                        f"the W800 holds no more than {self.max_topics} subscriptions "
                        f"and refused {topic}"
                    ) from err
                raise LinkError(f"subscribing to {topic} failed: {err.line}") from err

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        aliyun_qos(qos)
        if not payload:
            raise UnsafeValue("the W800 cannot publish an empty payload")
        if len(payload) > self.max_payload:
            raise UnsafeValue(f"the W800 publishes at most {self.max_payload} bytes at once")
        text = publish_command(topic, len(payload), qos)
        try:
            await self.channel.command(
                text,
                timeout=COMMAND_TIMEOUT,
                ok=("+MQTTPUB:OK",),
                errors=("+MQTTPUB:FAIL",),
                prompt=">",
                payload=payload,
            )
        except (AtCommandError, AtTimeout) as err:
            raise PublishFailed(f"publishing to {topic} failed: {err}") from err

    async def is_connected(self) -> bool:
        lines = await self.channel.command(
            "AT+MQTTCONN?", timeout=COMMAND_TIMEOUT, response_prefix="+MQTTCONN:"
        )
        return session_connected(lines)

    async def disconnect(self) -> None:
        self._session_up = False
        await self.channel.command("AT+MQTTCLEAN=0", timeout=COMMAND_TIMEOUT)

    async def signal(self) -> int | None:
        """A Wi-Fi module has no ``AT+CSQ``: the access point's RSSI."""
        return wifi_dbm(await self.channel.command("AT+CWJAP?", response_prefix="+CWJAP:"))

    # --- URCs ------------------------------------------------------------------------

    def _on_disconnected(self, line: str) -> None:
        # While connecting, AT+MQTTCONN's waiter takes it; with no session it is no loss.
        if self._session_up:
            self._session_up = False
            self.events.link_lost("the W800 reported +MQTTDISCONNECTED")


DIALECT = W800

"""AirM2M Air72x with Luat AT firmware V409+ (seed 002, Luat AT manual for the rest).

The host signs; the module's HTTP client POSTs the auth form for real (any ``*.aliyuncs.com``
URL goes to the local cloud's HTTP port), and its MQTT client logs in with whatever
``AT+MCONFIG`` was given (the iotId/iotToken the endpoint handed out). Readings chosen where
the manuals are silent or ambiguous:
- ``AT+SAPBR=1,1`` on an open bearer, ``AT+HTTPINIT`` twice and ``AT+HTTPTERM`` without
  ``AT+HTTPINIT`` answer ``ERROR``; MQTT commands without the session they need answer
  ``+CME ERROR: 767`` (operation not allowed), as the Luat manual's ``AT+MIPCLOSE`` example.
- ``AT+MIPSTART``/``AT+SSLMIPSTART`` only open "TCP" (``CONNECT OK``); the MQTT CONNECT
  goes out at ``AT+MCONNECT``. A refused or failed CONNECT is reported the way the server
  ends it, ``CLOSED`` (the manuals name no refusal line).
- ``AT+MQTTMSGSET`` starts in cache mode (1), as the Luat manual's first example shows: four
  slots, ``+MSUB: <slot>``, read with ``AT+MQTTMSGGET``.
- a refused subscription prints ``SUBACK FAIL``; a failed QoS 1 publish prints nothing.
- ``AT+MDISCONNECT`` leaves the TCP link up (``+MQTTSTATU :2``); ``AT+MIPCLOSE`` ends both.
- the HTTP client answers ``+HTTPACTION: <m>,601,0`` without a bearer and 603 (DNS) for any
  host other than Aliyun's; ``AT+HTTPSSL`` is not needed for ``https://`` URLs (the seed
  uses none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp

from .mqtt import InboundMessage
from .parser import ERROR, OK, Command, ParamError
from .personality import Handler, Personality

if TYPE_CHECKING:
    from .emulator import ModuleEmulator

_MAX_TOPIC = 256
_MAX_PAYLOAD = 4100
_MAX_CREDENTIAL = 256
_MAX_URL = 500
_MAX_HTTP_BODY = 3356
_CACHE_SLOTS = 4
_NOT_ALLOWED = 767
_PUBEX_WINDOW = 5.0  # Luat: the message is sent when complete, or after 5 s
_HTTP_NETWORK_ERROR, _HTTP_DNS_ERROR = 601, 603
_HTTP_METHODS = {0: "GET", 1: "POST", 2: "HEAD"}
_LOCAL_DOMAIN = ".aliyuncs.com"
_ESCAPE = re.compile(r"\\([0-9A-Fa-f]{2})")  # AT+MPUB's "\22" for a quote, "\0D" for CR


class _Mqtt(IntEnum):
    """``+MQTTSTATU`` states."""

    OFFLINE = 0
    CONNECTED = 1
    TCP_ONLY = 2


@dataclass
class _Http:
    """One ``AT+HTTPINIT`` … ``AT+HTTPTERM`` session."""

    params: dict[str, str] = field(default_factory=dict)
    headers: list[str] = field(default_factory=list)
    body: bytes = b""
    response: bytes | None = None


@dataclass(frozen=True)
class _Tcp:
    host: str
    port: int
    tls: bool


class Air72x(Personality):
    """Air724UG with Luat AT firmware V409."""

    dialect = "air72x"
    manufacturer = "AirM2M"
    model = "Air724UG"
    revision = "AirM2M_Air724UG_V409_LTE_AT"
    imei = "862991419835241"

    def __init__(self, module: ModuleEmulator) -> None:
        super().__init__(module)
        self.bearer: dict[str, str] = {"CONTYPE": "GPRS", "APN": ""}
        self.bearer_open = False
        self.http: _Http | None = None
        self.config: tuple[str, str, str] = ("", "", "")
        self.tcp: _Tcp | None = None
        self.state = _Mqtt.OFFLINE
        self.msg_mode = 1
        self.cache: list[InboundMessage | None] = [None] * _CACHE_SLOTS
        self._next_slot = 0

    def commands(self) -> dict[str, Handler]:
        return super().commands() | {
            "+SAPBR=": self.sapbr,
            "+HTTPINIT": self.httpinit,
            "+HTTPPARA=": self.httppara,
            "+HTTPDATA=": self.httpdata,
            "+HTTPACTION=": self.httpaction,
            "+HTTPREAD": self.httpread,
            "+HTTPREAD=": self.httpread,
            "+HTTPTERM": self.httpterm,
            "+MCONFIG=": self.mconfig,
            "+MIPSTART=": self.mipstart,
            "+SSLMIPSTART=": self.mipstart,
            "+MCONNECT=": self.mconnect,
            "+MSUB=": self.msub,
            "+MUNSUB=": self.munsub,
            "+MQTTMSGSET=": self.mqttmsgset,
            "+MQTTMSGSET?": self.mqttmsgset_read,
            "+MQTTMSGGET": self.mqttmsgget,
            "+MPUB=": self.mpub,
            "+MPUBEX=": self.mpubex,
            "+MQTTSTATU": self.mqttstatu,
            "+MDISCONNECT": self.mdisconnect,
            "+MIPCLOSE": self.mipclose,
        }

    def power_on_lines(self) -> list[str]:
        """What Luat firmware prints at boot."""
        if not self.sim_ready:
            return ["RDY", "+CFUN: 1", "+CPIN: NOT INSERTED"]
        return ["RDY", "+CFUN: 1", "+CPIN: READY", "SMS READY"]

    # --- bearer (AT+SAPBR) ------------------------------------------------------------------

    async def sapbr(self, cmd: Command) -> str:
        """``AT+SAPBR=<cmd_type>,<cid>[,"<tag>","<value>"]``: 0 close, 1 open, 2 query, 3 set,
        4 show the settings."""
        action, cid = cmd.int_arg(0, 0, 4), cmd.int_arg(1, 1, 3)
        if action == 3:
            tag = cmd.arg(2).upper()
            if tag not in ("CONTYPE", "APN", "USER", "PWD"):
                raise ParamError("unknown SAPBR tag")
            self.bearer[tag] = cmd.arg(3)
        elif action == 1:
            if self.bearer_open or not self.registered:
                return ERROR
            self.bearer_open = True
        elif action == 2:
            status, address = (1, "10.89.2.61") if self.bearer_open else (3, "0.0.0.0")
            self.line(f'+SAPBR: {cid},{status},"{address}"')
        elif action == 4:
            self.line("+SAPBR:")
            for tag, value in self.bearer.items():
                self.line(f"{tag}: {value}")
        else:
            self.bearer_open = False
        return OK

    # --- HTTP client ------------------------------------------------------------------------

    async def httpinit(self, cmd: Command) -> str:
        """``AT+HTTPINIT``: a second one without ``AT+HTTPTERM`` fails."""
        if self.http is not None:
            return ERROR
        self.http = _Http()
        return OK

    async def httppara(self, cmd: Command) -> str:
        """``AT+HTTPPARA="<tag>","<value>"``; each ``USER_DEFINED`` adds one header line."""
        if self.http is None:
            return ERROR
        tag, value = cmd.arg(0).upper(), cmd.arg(1)
        if tag == "URL" and not 0 < len(value) <= _MAX_URL:
            raise ParamError("URL length")
        if tag == "TIMEOUT" and not value.isdigit():
            raise ParamError("timeout in seconds")
        if tag == "USER_DEFINED":
            self.http.headers.append(value)
        else:
            self.http.params[tag] = value
        return OK

    async def httpdata(self, cmd: Command) -> str:
        """``AT+HTTPDATA=<size>,<time ms>``: ``DOWNLOAD``, exactly ``size`` bytes, ``OK``."""
        size, window = cmd.int_arg(0, 0, _MAX_HTTP_BODY), cmd.int_arg(1, 1000, 120000)
        if self.http is None:
            return ERROR
        self.prompt("\r\nDOWNLOAD\r\n")
        data = await self.read_data(size, window / 1000) if size else b""
        if data is None:
            return ERROR
        self.http.body = data
        return OK

    async def httpaction(self, cmd: Command) -> str:
        """``AT+HTTPACTION=<method>`` → ``OK``, then ``+HTTPACTION: <method>,<status>,<len>``."""
        method = cmd.int_arg(0, 0, 2)
        http = self.http
        if http is None or "URL" not in http.params:
            return ERROR
        self.spawn(self._http_request(http, method))
        return OK

    async def httpread(self, cmd: Command) -> str:
        """``AT+HTTPREAD[=<start>,<size>]``: ``+HTTPREAD: <len>``, the body raw, ``OK``."""
        start = cmd.int_arg(0, 0, _MAX_HTTP_BODY, default=0)
        size = cmd.int_arg(1, 1, _MAX_HTTP_BODY, default=_MAX_HTTP_BODY)
        if self.http is None or self.http.response is None:
            return ERROR
        data = self.http.response[start : start + size]
        self.line(f"+HTTPREAD: {len(data)}\r\n".encode() + data)
        return OK

    async def httpterm(self, cmd: Command) -> str:
        """``AT+HTTPTERM``."""
        if self.http is None:
            return ERROR
        self.http = None
        return OK

    async def _http_request(self, http: _Http, method: int) -> None:
        status, data = await self._exchange(http, _HTTP_METHODS[method])
        http.response = data
        self.urc(f"+HTTPACTION: {method},{status},{len(data)}")

    async def _exchange(self, http: _Http, method: str) -> tuple[int, bytes]:
        """The request for real, to the local cloud when the URL names an Aliyun host."""
        url = urlsplit(http.params["URL"])
        port = self.module.http_port
        if not self.bearer_open:
            return _HTTP_NETWORK_ERROR, b""
        if not (url.hostname or "").endswith(_LOCAL_DOMAIN) or port is None:
            return _HTTP_DNS_ERROR, b""
        target = f"http://127.0.0.1:{port}{url.path or '/'}"
        if url.query:
            target += f"?{url.query}"
        headers = dict(_header(line) for line in http.headers if ":" in line)
        if "CONTENT" in http.params:
            headers["Content-Type"] = http.params["CONTENT"]
        timeout = aiohttp.ClientTimeout(total=float(http.params.get("TIMEOUT", "120")))
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.request(
                    method, target, data=http.body if method == "POST" else None, headers=headers
                ) as reply,
            ):
                return reply.status, await reply.read()
        except (aiohttp.ClientError, TimeoutError):
            return _HTTP_NETWORK_ERROR, b""

    # --- MQTT -------------------------------------------------------------------------------

    async def mconfig(self, cmd: Command) -> str:
        """``AT+MCONFIG=<clientid>,<username>,<password>[,<will>...]`` (up to 256 bytes each)."""
        values = (cmd.arg(0), cmd.arg(1, ""), cmd.arg(2, ""))
        if not values[0] or any(len(value.encode()) > _MAX_CREDENTIAL for value in values):
            raise ParamError("client id, user name or password")
        self.config = values
        return OK

    async def mipstart(self, cmd: Command) -> str:
        """``AT+MIPSTART`` / ``AT+SSLMIPSTART="<host>",<port>`` → ``OK``, ``CONNECT OK``."""
        host, port = cmd.arg(0), cmd.int_arg(1, 1, 65535)
        if not host:
            raise ParamError("host")
        if self.tcp is not None:
            self.urc_after("ALREADY CONNECT")
        elif not self.registered:
            self.urc_after("CONNECT FAIL")
        else:
            self.tcp = _Tcp(host, port, cmd.name == "+SSLMIPSTART")
            self.state = _Mqtt.TCP_ONLY
            self.urc_after("CONNECT OK")
        return OK

    async def mconnect(self, cmd: Command) -> str:
        """``AT+MCONNECT=<clean_session>,<keepalive>`` → ``OK``, ``CONNACK OK``."""
        cmd.int_arg(0, 0, 1)
        keepalive = cmd.int_arg(1, 1, 65535)
        tcp = self.tcp
        if tcp is None or self.state is not _Mqtt.TCP_ONLY:
            return self.cme(_NOT_ALLOWED)
        self.spawn(self._connect(tcp, keepalive))
        return OK

    async def msub(self, cmd: Command) -> str:
        """``AT+MSUB="<topic>",<qos>`` → ``OK``, ``SUBACK``."""
        topic, qos = self._topic(cmd), cmd.int_arg(1, 0, 2)
        if self.state is not _Mqtt.CONNECTED:
            return self.cme(_NOT_ALLOWED)
        self.spawn(self._subscribe(topic, qos))
        return OK

    async def munsub(self, cmd: Command) -> str:
        """``AT+MUNSUB="<topic>"`` → ``OK``, ``UNSUBACK``."""
        topic = self._topic(cmd)
        if self.state is not _Mqtt.CONNECTED:
            return self.cme(_NOT_ALLOWED)
        self.spawn(self._unsubscribe(topic))
        return OK

    async def mqttmsgset(self, cmd: Command) -> str:
        """``AT+MQTTMSGSET=<mode>``: 0 print each message, 1 cache them."""
        self.msg_mode = cmd.int_arg(0, 0, 1)
        return OK

    async def mqttmsgset_read(self, cmd: Command) -> str:
        """``AT+MQTTMSGSET?``."""
        self.line(f"+MQTTMSGSET: {self.msg_mode}")
        return OK

    async def mqttmsgget(self, cmd: Command) -> str:
        """``AT+MQTTMSGGET``: every cached message as ``+MSUB:``, oldest first; cache emptied."""
        for index in range(_CACHE_SLOTS):
            slot = (self._next_slot + index) % _CACHE_SLOTS
            if (message := self.cache[slot]) is not None:
                self.line(_msub(message))
                self.cache[slot] = None
        return OK

    async def mpub(self, cmd: Command) -> str:
        """``AT+MPUB="<topic>",<qos>,<retain>,"<message>"`` (``\\22`` for a quote...)."""
        topic, qos, retain = self._topic(cmd), cmd.int_arg(1, 0, 2), cmd.int_arg(2, 0, 1)
        payload = _ESCAPE.sub(lambda m: chr(int(m[1], 16)), cmd.arg(3)).encode()
        if not 0 < len(payload) <= _MAX_PAYLOAD:
            raise ParamError("message length")
        if self.state is not _Mqtt.CONNECTED:
            return self.cme(_NOT_ALLOWED)
        self.spawn(self._publish(topic, payload, qos, bool(retain)))
        return OK

    async def mpubex(self, cmd: Command) -> str:
        """``AT+MPUBEX="<topic>",<qos>,<retain>,<len>``: ``>``, exactly ``len`` bytes, ``OK``;
        ``PUBACK`` after it for QoS 1."""
        topic, qos, retain = self._topic(cmd), cmd.int_arg(1, 0, 2), cmd.int_arg(2, 0, 1)
        length = cmd.int_arg(3, 1, _MAX_PAYLOAD)
        if self.state is not _Mqtt.CONNECTED:
            return self.cme(_NOT_ALLOWED)
        self.prompt("\r\n>")
        payload = await self.read_data(length, _PUBEX_WINDOW)
        if payload is None:
            return ERROR
        self.spawn(self._publish(topic, payload, qos, bool(retain)))
        return OK

    async def mqttstatu(self, cmd: Command) -> str:
        """``AT+MQTTSTATU`` → ``+MQTTSTATU :<state>`` (the space before the colon is Luat's)."""
        self.line(f"+MQTTSTATU :{int(self.state)}")
        return OK

    async def mdisconnect(self, cmd: Command) -> str:
        """``AT+MDISCONNECT``: the MQTT session ends, the TCP link stays."""
        if self.state is not _Mqtt.CONNECTED:
            return self.cme(_NOT_ALLOWED)
        self.state = _Mqtt.TCP_ONLY
        await self.mqtt.disconnect()
        return OK

    async def mipclose(self, cmd: Command) -> str:
        """``AT+MIPCLOSE``: session and TCP link closed."""
        if self.tcp is None:
            return self.cme(_NOT_ALLOWED)
        self.tcp, self.state = None, _Mqtt.OFFLINE
        await self.mqtt.disconnect()
        return OK

    # --- the session's events ---------------------------------------------------------------

    def on_mqtt_message(self, message: InboundMessage) -> None:
        """``+MSUB: "<topic>",<len> byte,<payload>``, or its cache slot ``+MSUB: <slot>``."""
        if self.state is not _Mqtt.CONNECTED:
            return
        if self.msg_mode == 0:
            self.urc(_msub(message))
            return
        slot = self._next_slot
        self.cache[slot] = message  # a full cache overwrites the oldest message
        self._next_slot = (slot + 1) % _CACHE_SLOTS
        self.urc(f"+MSUB: {slot}")

    def on_mqtt_lost(self) -> None:
        """The server closed the connection: ``CLOSED``."""
        if self.tcp is not None:
            self._closed()

    async def drop_link(self) -> None:
        """The network vanished: the bearer is gone and the TCP link breaks, ``CLOSED``."""
        self.bearer_open = False
        if self.tcp is not None:
            await self.mqtt.disconnect()
            self._closed()

    # --- internals --------------------------------------------------------------------------

    def _topic(self, cmd: Command) -> str:
        topic = cmd.arg(0)
        if not 0 < len(topic.encode()) <= _MAX_TOPIC:
            raise ParamError("topic length")
        return topic

    def _closed(self) -> None:
        self.tcp, self.state = None, _Mqtt.OFFLINE
        self.urc("CLOSED")

    async def _connect(self, tcp: _Tcp, keepalive: int) -> None:
        client_id, username, password = self.config
        code = await self.mqtt.connect(
            tcp.host, tcp.port, client_id, username, password, keepalive, tcp.tls
        )
        if self.tcp is not tcp:
            return  # closed meanwhile
        if code == 0:
            self.state = _Mqtt.CONNECTED
            self.urc("CONNACK OK")
        else:  # refused or unreachable: either way the connection ends
            self._closed()

    async def _subscribe(self, topic: str, qos: int) -> None:
        codes = await self.mqtt.subscribe([(topic, qos)])
        self.urc("SUBACK" if codes and all(code < 0x80 for code in codes) else "SUBACK FAIL")

    async def _unsubscribe(self, topic: str) -> None:
        if await self.mqtt.unsubscribe([topic]):
            self.urc("UNSUBACK")

    async def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if await self.mqtt.publish(topic, payload, qos, retain) and qos == 1:
            self.urc("PUBACK")


def _msub(message: InboundMessage) -> bytes:
    head = f'+MSUB: "{message.topic}",{len(message.payload)} byte,'
    return head.encode() + message.payload


def _header(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip(), value.strip()

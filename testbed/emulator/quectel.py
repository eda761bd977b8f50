"""Quectel EC600S-CN / EC200S and the wider QMT family (seed 004).

The module signs for Aliyun itself (``AT+QMTCFG="aliauth"``); MQTT runs through
``AT+QMTOPEN`` / ``AT+QMTCONN`` / ``AT+QMTSUB`` / ``AT+QMTPUBEX`` with results as URCs after
``OK``. Codes follow Quectel's MQTT application note. Readings chosen where the manual is
silent or ambiguous:
- one MQTT client is emulated: its ``client_idx`` may be 0-5; ``AT+QMTCFG`` settings are
  shared, not kept per index; opening a second client answers ``+QMTOPEN: <idx>,2`` (occupied).
- commands with bad parameters or in the wrong state answer plain ``ERROR`` (the note's
  "if there is any error"); failures after ``OK`` are the URCs' result codes.
- ``AT+QMTOPEN`` activates PDP context 1 itself when it is down (result 3 off network);
  ``AT+QIACT`` on an active context fails, as on EC2x firmware.
- after ``AT+QMTDISC`` the client is closed too: it must be opened again.
- a refused CONNECT: ``+QMTCONN: <idx>,0,<code>``, then the server closes the connection
  (MQTT 3.1.1 §3.2.2.3) and the module reports it, ``+QMTSTAT: <idx>,1``.
- ``+QMTSUB`` reports the QoS the broker granted (the manual's ``0,1,0,1`` shows Aliyun's).
- data typed after the ``> `` prompt is echoed under ``ATE1`` (the manual's transcript shows it
  after the prompt); ``"recv/mode"`` buffer mode (1) and the ``"aliauth"`` query (it would
  print the device secret) are not emulated and answer ``ERROR``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
import re
import time
from typing import TYPE_CHECKING

from custom_components.aliyun_iot_at.core.signing import MqttCredentials, mqtt_credentials

from .mqtt import NO_LINK, InboundMessage
from .parser import ERROR, OK, Command, ParamError
from .personality import Handler, Personality

if TYPE_CHECKING:
    from .emulator import ModuleEmulator

_MAX_PAYLOAD = 4096
_HOST_NAME = re.compile(r"[A-Za-z0-9.-]+")  # anything else cannot resolve: result 4
_REFUSED = 0x80  # SUBACK failure code

# +QMTOPEN results
_OPEN_OK, _OPEN_OCCUPIED, _OPEN_NO_PDP, _OPEN_NO_DNS = 0, 2, 3, 4
# +QMTSTAT errors
_CLOSED_BY_PEER, _PING_FAILED = 1, 2
# Packet results of +QMTCONN / +QMTSUB / +QMTUNS / +QMTPUBEX
_SENT, _FAILED = 0, 2

# AT+QMTCFG integer settings: name -> (key, low, high) of each value after <client_idx>.
_SETTINGS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "version": (("version", 3, 4),),
    "keepalive": (("keepalive", 0, 3600),),
    "session": (("clean_session", 0, 1),),
    "ssl": (("ssl", 0, 1), ("ssl_ctx", 0, 5)),
    "timeout": (("pkt_timeout", 1, 60), ("retries", 0, 10), ("timeout_notice", 0, 1)),
    "recv/mode": (("recv_mode", 0, 0), ("recv_len", 0, 1)),
}
_DEFAULTS = {
    "version": 4,
    "keepalive": 120,
    "clean_session": 1,
    "ssl": 0,
    "ssl_ctx": 0,
    "pkt_timeout": 5,
    "retries": 3,
    "timeout_notice": 0,
    "recv_mode": 0,
    "recv_len": 0,  # the payload length is only in +QMTRECV when enabled
}


class _State(IntEnum):
    """``AT+QMTCONN?`` states of an opened client."""

    OPENED = 1  # "initializing"
    CONNECTING = 2
    CONNECTED = 3
    DISCONNECTING = 4


@dataclass
class _Client:
    idx: int
    host: str
    port: int
    state: _State = _State.OPENED


@dataclass
class _Context:
    """A PDP context as set by ``AT+QICSGP`` (defaults from the manual's transcript)."""

    type: int = 1
    apn: str = "CMNET"
    user: str = ""
    password: str = ""
    auth: int = 1
    active: bool = False


class Quectel(Personality):
    """EC600S-CN."""

    dialect = "quectel"
    manufacturer = "Quectel"
    model = "EC600S"
    revision = "EC600SCNAAR01A03M16"
    imei = "866123045678904"

    def __init__(self, module: ModuleEmulator) -> None:
        super().__init__(module)
        self.contexts = {cid: _Context() for cid in range(1, 17)}
        self.settings = dict(_DEFAULTS)
        self.aliauth: tuple[str, str, str] | None = None
        self.client: _Client | None = None

    def commands(self) -> dict[str, Handler]:
        return super().commands() | {
            "+QICSGP=": self.qicsgp,
            "+QIACT=": self.qiact,
            "+QIACT?": self.qiact_read,
            "+QIDEACT=": self.qideact,
            "+QMTCFG=": self.qmtcfg,
            "+QMTOPEN=": self.qmtopen,
            "+QMTOPEN?": self.qmtopen_read,
            "+QMTCONN=": self.qmtconn,
            "+QMTCONN?": self.qmtconn_read,
            "+QMTSUB=": self.qmtsub,
            "+QMTUNS=": self.qmtuns,
            "+QMTPUBEX=": self.qmtpubex,
            "+QMTDISC=": self.qmtdisc,
            "+QMTCLOSE=": self.qmtclose,
        }

    def power_on_lines(self) -> list[str]:
        """``RDY`` (the manual), then the SIM's state as EC2x firmware reports it."""
        if not self.sim_ready:
            return ["RDY", "+CFUN: 1", "+CPIN: NOT INSERTED"]
        return ["RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE"]

    # --- PDP context ------------------------------------------------------------------------

    async def qicsgp(self, cmd: Command) -> str:
        """``AT+QICSGP=<cid>[,<type>,"<apn>"[,"<user>","<pass>"[,<auth>]]]``."""
        ctx = self.contexts[cmd.int_arg(0, 1, 16)]
        if len(cmd.args) == 1:
            self.line(f'+QICSGP: {ctx.type},"{ctx.apn}","{ctx.user}","{ctx.password}",{ctx.auth}')
            return OK
        ctx.type = cmd.int_arg(1, 1, 3)
        ctx.apn = cmd.arg(2)
        ctx.user = cmd.arg(3, "")
        ctx.password = cmd.arg(4, "")
        ctx.auth = cmd.int_arg(5, 0, 3, default=0)
        return OK

    async def qiact(self, cmd: Command) -> str:
        """``AT+QIACT=<cid>``: needs the network; an active context fails."""
        ctx = self.contexts[cmd.int_arg(0, 1, 16)]
        if ctx.active or not self.registered:
            return ERROR
        ctx.active = True
        return OK

    async def qiact_read(self, cmd: Command) -> str:
        """``AT+QIACT?``: ``+QIACT: <cid>,1,<type>,"<ip>"`` per active context."""
        for cid, ctx in self.contexts.items():
            if ctx.active:
                self.line(f'+QIACT: {cid},1,{ctx.type},"10.189.73.{245 + cid}"')
        return OK

    async def qideact(self, cmd: Command) -> str:
        """``AT+QIDEACT=<cid>``: the MQTT link over it goes down too."""
        self.contexts[cmd.int_arg(0, 1, 16)].active = False
        if self.client is not None:
            self.spawn(self.drop_link())
        return OK

    # --- MQTT configuration -----------------------------------------------------------------

    async def qmtcfg(self, cmd: Command) -> str:
        """``AT+QMTCFG="<name>",<client_idx>[,<values>...]``; without values, a query."""
        name = cmd.arg(0).lower()
        cmd.int_arg(1, 0, 5)
        if name == "aliauth":
            if len(cmd.args) != 5 or not all(cmd.args[2:]):
                return ERROR
            self.aliauth = (cmd.args[2], cmd.args[3], cmd.args[4])
            return OK
        fields = _SETTINGS.get(name)
        if fields is None:
            return ERROR
        if len(cmd.args) == 2:
            values = ",".join(str(self.settings[key]) for key, _, _ in fields)
            self.line(f'+QMTCFG: "{name}",{values}')
            return OK
        if len(cmd.args) > 2 + len(fields):
            raise ParamError("too many values")
        for index, (key, low, high) in enumerate(fields[: len(cmd.args) - 2], start=2):
            self.settings[key] = cmd.int_arg(index, low, high)
        return OK

    # --- MQTT session -----------------------------------------------------------------------

    async def qmtopen(self, cmd: Command) -> str:
        """``AT+QMTOPEN=<idx>,"<host>",<port>`` → ``OK``, ``+QMTOPEN: <idx>,<result>``."""
        idx, host, port = cmd.int_arg(0, 0, 5), cmd.arg(1), cmd.int_arg(2, 1, 65535)
        if not 0 < len(host) <= 100:
            raise ParamError("host name length")
        if self.client is not None:
            result = _OPEN_OCCUPIED
        elif not self.registered:
            result = _OPEN_NO_PDP
        elif not _HOST_NAME.fullmatch(host):
            result = _OPEN_NO_DNS
        else:
            self.contexts[1].active = True
            self.client = _Client(idx, host, port)
            result = _OPEN_OK
        self.urc_after(f"+QMTOPEN: {idx},{result}")
        return OK

    async def qmtopen_read(self, cmd: Command) -> str:
        """``AT+QMTOPEN?``: ``+QMTOPEN: <idx>,"<host>",<port>`` for the open client."""
        if (client := self.client) is not None:
            self.line(f'+QMTOPEN: {client.idx},"{client.host}",{client.port}')
        return OK

    async def qmtconn(self, cmd: Command) -> str:
        """``AT+QMTCONN=<idx>,"<clientid>"[,"<user>","<pass>"]`` → ``+QMTCONN: <idx>,0,<ret>``.

        With ``aliauth`` set, the module makes the Aliyun client id, user name and password.
        """
        client = self._client(cmd.int_arg(0, 0, 5), _State.OPENED)
        client_id = cmd.arg(1)
        if client is None or not client_id:
            return ERROR
        if self.aliauth is None:
            credentials = MqttCredentials(client_id, cmd.arg(2, ""), cmd.arg(3, ""))
        else:
            try:
                credentials = _sign(self.aliauth, client_id, tls=bool(self.settings["ssl"]))
            except ValueError:  # a client id Aliyun cannot carry
                return ERROR
        client.state = _State.CONNECTING
        self.spawn(self._connect(client, credentials))
        return OK

    async def qmtconn_read(self, cmd: Command) -> str:
        """``AT+QMTCONN?``: ``+QMTCONN: <idx>,<state>`` for the open client."""
        if (client := self.client) is not None:
            self.line(f"+QMTCONN: {client.idx},{client.state}")
        return OK

    async def qmtsub(self, cmd: Command) -> str:
        """``AT+QMTSUB=<idx>,<msgid>,"<topic>",<qos>[,...]`` → ``+QMTSUB: <idx>,<msgid>,0,<qos>...``
        (one granted QoS per topic)."""
        idx, msgid = cmd.int_arg(0, 0, 5), cmd.int_arg(1, 1, 65535)
        if len(cmd.args) < 4 or len(cmd.args) % 2:
            raise ParamError("topic and qos pairs")
        topics = [(cmd.arg(i), cmd.int_arg(i + 1, 0, 2)) for i in range(2, len(cmd.args), 2)]
        if not all(topic for topic, _ in topics):
            raise ParamError("empty topic")
        if self._client(idx, _State.CONNECTED) is None:
            return ERROR
        self.spawn(self._subscribe(idx, msgid, topics))
        return OK

    async def qmtuns(self, cmd: Command) -> str:
        """``AT+QMTUNS=<idx>,<msgid>,"<topic>"[,...]`` → ``+QMTUNS: <idx>,<msgid>,0``."""
        idx, msgid = cmd.int_arg(0, 0, 5), cmd.int_arg(1, 1, 65535)
        topics = list(cmd.args[2:])
        if not topics or not all(topics):
            raise ParamError("topics")
        if self._client(idx, _State.CONNECTED) is None:
            return ERROR
        self.spawn(self._unsubscribe(idx, msgid, topics))
        return OK

    async def qmtpubex(self, cmd: Command) -> str:
        """``AT+QMTPUBEX=<idx>,<msgid>,<qos>,<retain>,"<topic>",<length>``: ``> ``, exactly
        ``length`` bytes, ``OK``, then ``+QMTPUBEX: <idx>,<msgid>,0`` once it went out."""
        idx, msgid = cmd.int_arg(0, 0, 5), cmd.int_arg(1, 0, 65535)
        qos, retain = cmd.int_arg(2, 0, 2), cmd.int_arg(3, 0, 1)
        topic, length = cmd.arg(4), cmd.int_arg(5, 1, _MAX_PAYLOAD)
        if not topic or (qos and not msgid):  # msgid 0 is for QoS 0 only
            raise ParamError("topic or msgid")
        if self._client(idx, _State.CONNECTED) is None:
            return ERROR
        self.prompt("\r\n> ")
        payload = await self.read_data(length)
        if payload is None:
            return ERROR
        self.spawn(self._publish(idx, msgid, topic, payload, qos, bool(retain)))
        return OK

    async def qmtdisc(self, cmd: Command) -> str:
        """``AT+QMTDISC=<idx>`` → ``OK``, ``+QMTDISC: <idx>,0``."""
        client = self._client(cmd.int_arg(0, 0, 5), _State.CONNECTED)
        if client is None:
            return ERROR
        self.spawn(self._close(client, "+QMTDISC"))
        return OK

    async def qmtclose(self, cmd: Command) -> str:
        """``AT+QMTCLOSE=<idx>`` → ``OK``, ``+QMTCLOSE: <idx>,0``."""
        client = self._client(cmd.int_arg(0, 0, 5))
        if client is None or client.state is _State.DISCONNECTING:
            return ERROR
        self.spawn(self._close(client, "+QMTCLOSE"))
        return OK

    # --- the session's events ---------------------------------------------------------------

    def on_mqtt_message(self, message: InboundMessage) -> None:
        """``+QMTRECV: <idx>,<msgid>,"<topic>",[<len>,]"<payload>"``, the payload raw."""
        client = self.client
        if client is None or client.state is not _State.CONNECTED:
            return
        head = f'+QMTRECV: {client.idx},{message.packet_id or 0},"{message.topic}",'
        if self.settings["recv_len"]:
            head += f"{len(message.payload)},"
        self.urc(head.encode() + b'"' + message.payload + b'"')

    def on_mqtt_lost(self) -> None:
        """``+QMTSTAT: <idx>,1``: closed by the peer."""
        if (client := self.client) is not None:
            self.client = None
            self.urc(f"+QMTSTAT: {client.idx},{_CLOSED_BY_PEER}")

    async def drop_link(self) -> None:
        """The network vanished: the PDP context is gone, and the keepalive PINGREQ finds the
        MQTT link dead, ``+QMTSTAT: <idx>,2``."""
        self.contexts[1].active = False
        if (client := self.client) is not None:
            self.client = None
            await self.mqtt.disconnect()
            self.urc(f"+QMTSTAT: {client.idx},{_PING_FAILED}")

    # --- internals --------------------------------------------------------------------------

    def _client(self, idx: int, state: _State | None = None) -> _Client | None:
        """The open client ``idx`` (in ``state`` when given), else ``None``."""
        client = self.client
        if client is None or client.idx != idx or (state is not None and client.state != state):
            return None
        return client

    async def _connect(self, client: _Client, credentials: MqttCredentials) -> None:
        code = await self.mqtt.connect(
            client.host,
            client.port,
            credentials.client_id,
            credentials.username,
            credentials.password,
            self.settings["keepalive"],
            bool(self.settings["ssl"]),
        )
        if self.client is not client or client.state is not _State.CONNECTING:
            return  # closed or dropped meanwhile: that path reports
        if code == 0:
            client.state = _State.CONNECTED
            self.urc(f"+QMTCONN: {client.idx},{_SENT},0")
        elif code == NO_LINK:
            client.state = _State.OPENED
            self.urc(f"+QMTCONN: {client.idx},{_FAILED}")
        else:
            self.client = None
            self.urc(f"+QMTCONN: {client.idx},{_SENT},{code}")
            self.urc(f"+QMTSTAT: {client.idx},{_CLOSED_BY_PEER}")

    async def _subscribe(self, idx: int, msgid: int, topics: list[tuple[str, int]]) -> None:
        codes = await self.mqtt.subscribe(topics)
        if codes is None or any(code >= _REFUSED for code in codes):
            self.urc(f"+QMTSUB: {idx},{msgid},{_FAILED}")
        else:
            self.urc(f"+QMTSUB: {idx},{msgid},{_SENT},{','.join(map(str, codes))}")

    async def _unsubscribe(self, idx: int, msgid: int, topics: list[str]) -> None:
        done = await self.mqtt.unsubscribe(topics)
        self.urc(f"+QMTUNS: {idx},{msgid},{_SENT if done else _FAILED}")

    async def _publish(
        self, idx: int, msgid: int, topic: str, payload: bytes, qos: int, retain: bool
    ) -> None:
        done = await self.mqtt.publish(topic, payload, qos, retain)
        self.urc(f"+QMTPUBEX: {idx},{msgid},{_SENT if done else _FAILED}")

    async def _close(self, client: _Client, urc: str) -> None:
        client.state = _State.DISCONNECTING
        await self.mqtt.disconnect()
        if self.client is client:
            self.client = None
        self.urc(f"{urc}: {client.idx},0")


def _sign(aliauth: tuple[str, str, str], client_id: str, *, tls: bool) -> MqttCredentials:
    """The credentials EC600S firmware makes: HmacSHA1 with a millisecond timestamp,
    ``securemode=2`` over TLS, 3 without."""
    product_key, device_name, device_secret = aliauth
    timestamp = str(int(time.time() * 1000))
    return mqtt_credentials(
        product_key,
        device_name,
        device_secret,
        client_id=client_id,
        timestamp=timestamp,
        method="hmacsha1",
        tls=tls,
    )

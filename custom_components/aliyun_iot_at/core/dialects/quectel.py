"""Quectel EC600S-CN / EC200S and the wider QMT family (seed 004): the module signs.

The sequence follows the seed's transcript (chapter 4):

    AT+CPIN?  AT+CEREG? (or AT+CGREG?)             SIM ready, registered for data
    AT+QICSGP=1,1,"<apn>","","",1  AT+QIACT=1      PDP context 1 (APN only when one is set)
    AT+QMTCFG="recv/mode",0,0,1                    messages in the URC, with their length
    AT+QMTCFG="aliauth",0,"<pk>","<dn>","<ds>"     the module makes Aliyun's credentials
    AT+QMTCFG="keepalive",0,<s>  AT+QMTCFG="ssl",0,<0|1,ctx>
    AT+QMTOPEN=0,"<host>",<port>   OK  +QMTOPEN: 0,<result>
    AT+QMTCONN=0,"<clientid>"      OK  +QMTCONN: 0,<result>[,<ret_code>]
    AT+QMTSUB=0,<msgid>,"<topic>",<qos>            OK  +QMTSUB: 0,<msgid>,<result>[,<granted>]
    AT+QMTPUBEX=0,<msgid>,<qos>,0,"<topic>",<len>  >  <payload>  OK  +QMTPUBEX: 0,<msgid>,<result>
    +QMTRECV: 0,<msgid>,"<topic>",<len>,"<payload>"   the payload counted in bytes
    +QMTSTAT: 0,<err>                                 the session is gone

Result and error codes are those of Quectel's MQTT application note, which the seed cites.
Readings chosen where the seed is silent or ambiguous:

- Registered means registered for data: ``+CEREG`` (EC600S/EC200S are LTE Cat 1) or, on
  modules with a GSM fallback, ``+CGREG``. ``+CREG`` (circuit-switched) is not required:
  data-only SIMs may never register there.
- EC2x firmware answers ``ERROR`` to ``AT+QIACT`` on a context that is already active, so an
  ``ERROR`` is only a failure when ``AT+QIACT?`` does not list the context.
- ``AT+QMTCFG`` settings may outlive us in the module: ``ssl`` is sent either way, so a link
  switched from TLS back to TCP does not keep TLS. TLS uses SSL context 2 (the note's example)
  with its defaults, which do not check the server certificate.
- Results after ``OK`` are read by their prefix with the client index (and the message id),
  as the note prints them: ``+QMTPUBEX: 0,5,0``. Retransmission reports (result 1) only come
  with the ``"timeout"`` notice on, which stays off, so every result is final.
- A refused CONNECT is ``+QMTCONN: 0,0,<ret_code>``; some firmware only reports the closed
  connection, so ``+QMTSTAT`` while connecting fails the connect too.
- ``+QMTRECV`` without a length (``recv/mode`` not taking effect) is read too: the payload is
  what lies between the quote after the topic and the line's last quote.
- The payload of ``AT+QMTPUBEX`` is counted, not quoted: any byte can be carried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
import logging
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
from ..signing import MAX_CLIENT_ID
from .base import (
    REGISTERED_LTE,
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
    run_step,
)

_LOGGER = logging.getLogger(__name__)

CLIENT = 0  # <client_idx>: the one MQTT client this link uses (0-5)
CONTEXT = 1  # the PDP context QMT uses unless told otherwise ("pdpcid" defaults to 1)
SSL_CONTEXT = 2
MAX_HOST = 100  # <host_name>: "最大长度100字节"
MAX_APN = 100  # 3GPP TS 23.003: an APN is at most 100 octets
MAX_MSGID = 65535  # <msgid>: 1-65535; 0 only for QoS 0 publishes
SUBSCRIBE_QOS = 1  # Aliyun accepts 0 and 1; with 1 the module acknowledges each property set

COMMAND_TIMEOUT = 10.0
PDP_TIMEOUT = 150.0  # AT+QIACT's maximum response time in Quectel's TCP/IP note
OPEN_TIMEOUT = 75.0  # DNS, TCP and perhaps TLS over a cellular link
RESULT_TIMEOUT = 30.0  # packet timeout (5 s) times the tries (1 + 3 retries), with margin

# On the network for data; either will do (see the module docstring).
REGISTERED_GPRS = Step(
    "AT+CGREG?", r"\+CGREG: ?\d,[15]\b", poll=60.0, fail=NoNetwork, response_prefix="+CGREG:"
)
REGISTERED = (REGISTERED_LTE, REGISTERED_GPRS)
# An active context is not activated again (see the module docstring).
PDP_ACTIVATE = Step(f"AT+QIACT={CONTEXT}", timeout=PDP_TIMEOUT, fail=NoNetwork)
PDP_ACTIVE = Step("AT+QIACT?", rf"\+QIACT: ?{CONTEXT},1,", fail=NoNetwork)

# +QMTOPEN: <client_idx>,<result>
OPEN_OK, OPEN_OCCUPIED, OPEN_NO_PDP, OPEN_NO_DNS = 0, 2, 3, 4
OPEN_RESULTS = {
    -1: "failed to open the network",
    1: "wrong parameter",
    2: "MQTT client identifier occupied",
    3: "failed to activate the PDP context",
    4: "failed to parse the domain name",
    5: "network connection error",
}
# +QMTCONN: <client_idx>,<result>[,<ret_code>]; +QMTSUB / +QMTPUBEX share the results.
SENT = 0
PACKET_RESULTS = {0: "sent and acknowledged", 1: "retransmitted", 2: "failed to send"}
RETURN_CODES = {
    0: "accepted",
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
REFUSED_CREDENTIALS = frozenset({4, 5})
SUBACK_REFUSED = 128
CONNECTED_STATE = 3  # AT+QMTCONN?: 1 initializing, 2 connecting, 3 connected, 4 disconnecting
# +QMTSTAT: <client_idx>,<err_code>
STAT_ERRORS = {
    1: "connection closed or reset by the peer",
    2: "sending PINGREQ timed out or failed",
    3: "sending CONNECT timed out or failed",
    4: "receiving CONNACK timed out or failed",
    5: "the server closed the connection after a DISCONNECT",
    6: "the client closed the connection: packets kept failing",
    7: "the link is not alive or the server is unavailable",
}

_RECV = rb'\+QMTRECV: ?\d+,\d+,"(?P<topic>[^"\r\n]*)",(?P<len>\d+),"'
_RECV_TEXT = re.compile(_RECV.decode())
_RECV_FRAME = parse_length_framed(re.compile(_RECV), closing=b'"')
_RECV_WITHOUT_LENGTH = re.compile(
    r'\+QMTRECV: ?\d+,\d+,"(?P<topic>[^"\r\n]*)","(?P<payload>.*)"$', re.DOTALL
)
_CODE = re.compile(r"-?\d+")


# --- commands ---------------------------------------------------------------------------


def apn_command(apn: str) -> str:
    """``AT+QICSGP``: context 1, IPv4, no user name or password, PAP (the seed's example)."""
    return f'AT+QICSGP={CONTEXT},1,{quoted(apn, "APN", max_len=MAX_APN)},"","",1'


def configure_commands(settings: LinkSettings) -> list[str]:
    """The ``AT+QMTCFG`` commands before ``AT+QMTOPEN``."""
    ident = settings.identity
    pk = quoted(ident.product_key, "product key")
    dn = quoted(ident.device_name, "device name")
    ds = quoted(ident.device_secret, "device secret")
    keepalive = aliyun_keepalive(settings.keepalive)
    ssl = f"1,{SSL_CONTEXT}" if settings.endpoint.tls else "0"
    return [
        f'AT+QMTCFG="recv/mode",{CLIENT},0,1',
        f'AT+QMTCFG="aliauth",{CLIENT},{pk},{dn},{ds}',
        f'AT+QMTCFG="keepalive",{CLIENT},{keepalive}',
        f'AT+QMTCFG="ssl",{CLIENT},{ssl}',
    ]


def open_command(host: str, port: int) -> str:
    """``AT+QMTOPEN=0,"<host>",<port>``."""
    if not 0 < port < 65536:
        raise UnsafeValue(f"MQTT port {port} is out of range")
    return f"AT+QMTOPEN={CLIENT},{quoted(host, 'MQTT host', max_len=MAX_HOST)},{port}"


def connect_command(client_id: str) -> str:
    """``AT+QMTCONN=0,"<clientid>"``: the module appends Aliyun's ``|securemode=…|``."""
    checked(client_id, "MQTT client id", max_len=MAX_CLIENT_ID, forbid="|,=")
    return f"AT+QMTCONN={CLIENT},{quoted(client_id, 'MQTT client id')}"


def subscribe_command(msgid: int, topic: str, qos: int = SUBSCRIBE_QOS) -> str:
    """``AT+QMTSUB`` for one topic, as in the seed's example."""
    return f"AT+QMTSUB={CLIENT},{msgid},{quoted(topic, 'topic')},{aliyun_qos(qos)}"


def publish_command(msgid: int, topic: str, length: int, qos: int) -> str:
    """``AT+QMTPUBEX``: never retained; the payload follows at the ``>`` prompt."""
    return f"AT+QMTPUBEX={CLIENT},{msgid},{aliyun_qos(qos)},0,{quoted(topic, 'topic')},{length}"


class MessageIds:
    """``<msgid>`` 1-65535 in turn, so a late result is never taken for the current one."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = self._last % MAX_MSGID + 1
        return self._last


# --- answers ----------------------------------------------------------------------------


def parse_codes(text: str) -> tuple[int, ...] | None:
    """The integers of a result list such as ``0,0,4``; ``None`` when one is not a number."""
    fields = parse_fields(text)
    if not all(_CODE.fullmatch(field) for field in fields):
        return None
    return tuple(int(field) for field in fields)


def parse_recv(text: str) -> InboundMessage | None:
    """A ``+QMTRECV`` URC (framed by its length, or a line without one) as a message."""
    if match := _RECV_TEXT.match(text):
        data = text[match.end() :].encode()
        length = int(match["len"])
        if data[length:] != b'"':
            return None
        return InboundMessage(match["topic"], data[:length])
    if match := _RECV_WITHOUT_LENGTH.match(text.rstrip("\r\n")):
        return InboundMessage(match["topic"], match["payload"].encode())
    return None


def session_connected(lines: Sequence[str]) -> bool:
    """Whether an ``AT+QMTCONN?`` answer shows our client connected."""
    return any(
        parse_codes(line.removeprefix("+QMTCONN:")) == (CLIENT, CONNECTED_STATE) for line in lines
    )


def client_opened(lines: Sequence[str]) -> bool:
    """Whether an ``AT+QMTOPEN?`` answer lists our client: ``+QMTOPEN: 0,"<host>",<port>``."""
    return any(
        parse_fields(line.removeprefix("+QMTOPEN:"))[0] == str(CLIENT)
        for line in lines
        if line.startswith("+QMTOPEN:")
    )


def stat_reason(err: int) -> str:
    """``+QMTSTAT: 0,<err>`` with the note's meaning."""
    return f"+QMTSTAT: {CLIENT},{err} ({STAT_ERRORS.get(err, 'unknown error')})"


def open_failure(result: int, host: str, port: int) -> LinkError:
    """The error for a ``+QMTOPEN`` result other than 0."""
    text = f"+QMTOPEN: {CLIENT},{result} ({OPEN_RESULTS.get(result, 'unknown result')})"
    if result == OPEN_NO_PDP:
        return NoNetwork(f"the module has no data connection: {text}")
    if result == OPEN_NO_DNS:
        return LinkError(f"the module cannot resolve {host}: {text}")
    return LinkError(f"the module cannot connect to {host}:{port}: {text}")


def connect_failure(codes: tuple[int, ...]) -> LinkError | None:
    """The error a ``+QMTCONN: 0,<result>[,<ret_code>]`` result means; ``None`` if accepted."""
    result, *rest = codes
    if result != SENT:
        meaning = PACKET_RESULTS.get(result, "unknown result")
        return LinkError(f"the MQTT CONNECT got no answer: +QMTCONN: {CLIENT},{result} ({meaning})")
    if not rest or rest[0] == 0:  # acknowledged; some firmware leaves out an accepting code
        return None
    code = rest[0]
    text = f"+QMTCONN: {CLIENT},{result},{code} ({RETURN_CODES.get(code, 'unknown code')})"
    if code in REFUSED_CREDENTIALS:
        return AuthRefused(f"the cloud refused the device's credentials: {text}")
    return LinkError(f"the MQTT server refused the session: {text}")


# --- the dialect --------------------------------------------------------------------------


class QuectelDialect(Dialect):
    """Quectel EC600S-CN / EC200S / EG912Y / EC800 with the QMT MQTT commands."""

    name = "quectel"
    title = "Quectel EC600S / EC200S (QMT)"
    # The seed states neither limit; both are conservative: Alink needs four topics, and a
    # device's property post is far below 4 KiB.
    max_topics = 10
    max_payload = 4096
    supports_tls = True

    def __init__(self, channel: AtChannel, settings: LinkSettings, events: LinkEvents) -> None:
        super().__init__(channel, settings, events)
        self._ids = MessageIds()
        self._session_up = False
        channel.add_urc(self.message_urc("+QMTRECV:", parse_recv, _RECV_FRAME))
        channel.add_urc(UrcSpec("+QMTSTAT:", self._on_stat))

    @classmethod
    def matches(cls, info: ModuleInfo) -> bool:
        return info.manufacturer is not None and "quectel" in info.manufacturer.lower()

    async def attach(self) -> None:
        await self.run(SIM_READY)
        await wait_registered(self.channel, REGISTERED, self.settings.attach_timeout)
        if self.settings.apn:
            await self._configure(apn_command(self.settings.apn))
        await self.bring_up(PDP_ACTIVATE, PDP_ACTIVE)

    async def connect(self) -> None:
        endpoint = self.settings.endpoint
        host = endpoint.mqtt_host(self.settings.identity.product_key)
        # Every value is checked before the first command goes out.
        configure = configure_commands(self.settings)
        open_text = open_command(host, endpoint.mqtt_port)
        connect_text = connect_command(self.settings.mqtt_client_id)
        self._session_up = False
        for command in configure:
            await self._configure(command)
        await self._open(open_text, host, endpoint.mqtt_port)
        prefix, codes = await self._request(
            connect_text, (f"+QMTCONN: {CLIENT},", f"+QMTSTAT: {CLIENT},"), RESULT_TIMEOUT
        )
        if prefix.startswith("+QMTSTAT"):
            raise LinkError(
                f"the connection closed during the MQTT CONNECT: {stat_reason(codes[0])}"
            )
        if (failure := connect_failure(codes)) is not None:
            raise failure
        self._session_up = True

    async def subscribe(self, topics: Sequence[str]) -> None:
        wanted = list(dict.fromkeys(topics))
        if len(wanted) > self.max_topics:
            raise UnsafeValue(f"the module subscribes to at most {self.max_topics} topics")
        for topic in wanted:
            msgid = self._ids.next()
            try:
                _, codes = await self._request(
                    subscribe_command(msgid, topic),
                    (f"+QMTSUB: {CLIENT},{msgid},",),
                    RESULT_TIMEOUT,
                )
            except (AtCommandError, AtTimeout) as err:
                raise LinkError(f"subscribing to {topic} failed: {err}") from err
            result, *granted = codes
            if result != SENT:
                meaning = PACKET_RESULTS.get(result, "unknown result")
                raise LinkError(f"subscribing to {topic} failed: result {result} ({meaning})")
            if SUBACK_REFUSED in granted:
                raise LinkError(f"the cloud refused the subscription to {topic}")

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        if not payload:
            raise UnsafeValue("the module cannot publish an empty payload")
        if len(payload) > self.max_payload:
            raise UnsafeValue(f"the module publishes at most {self.max_payload} bytes at once")
        msgid = self._ids.next() if qos else 0
        command = publish_command(msgid, topic, len(payload), qos)
        try:
            _, codes = await self._request(
                command,
                (f"+QMTPUBEX: {CLIENT},{msgid},",),
                RESULT_TIMEOUT,
                prompt=">",
                payload=payload,
            )
        except (AtCommandError, AtTimeout) as err:
            raise PublishFailed(f"publishing to {topic} failed: {err}") from err
        if codes[0] != SENT:
            meaning = PACKET_RESULTS.get(codes[0], "unknown result")
            raise PublishFailed(f"publishing to {topic} failed: result {codes[0]} ({meaning})")

    async def is_connected(self) -> bool:
        lines = await self.channel.command(
            "AT+QMTCONN?", timeout=COMMAND_TIMEOUT, response_prefix="+QMTCONN:"
        )
        return session_connected(lines)

    async def disconnect(self) -> None:
        self._session_up = False
        try:
            await self._request(f"AT+QMTDISC={CLIENT}", (f"+QMTDISC: {CLIENT},",), RESULT_TIMEOUT)
        except AtCommandError as err:  # not connected: there is only the client to close
            _LOGGER.debug("AT+QMTDISC: %s", err)
        lines = await self.channel.command(
            "AT+QMTOPEN?", timeout=COMMAND_TIMEOUT, response_prefix="+QMTOPEN:"
        )
        if client_opened(lines):
            await self._close()

    # --- helpers ------------------------------------------------------------------------

    async def _configure(self, command: str) -> None:
        try:
            await self.channel.command(command, timeout=COMMAND_TIMEOUT)
        except AtCommandError as err:
            raise LinkError(f"{self.channel.mask(command)}: {err.line}") from err

    async def _open(self, command: str, host: str, port: int) -> None:
        """``AT+QMTOPEN``; a client left open (result 2) is closed and opened again, once."""
        for attempt in range(2):
            _, codes = await self._request(command, (f"+QMTOPEN: {CLIENT},",), OPEN_TIMEOUT)
            if codes[0] == OPEN_OK:
                return
            if codes[0] != OPEN_OCCUPIED or attempt:
                raise open_failure(codes[0], host, port)
            _LOGGER.debug("MQTT client %d was left open: closing it", CLIENT)
            await self._close()

    async def _close(self) -> None:
        _, codes = await self._request(
            f"AT+QMTCLOSE={CLIENT}", (f"+QMTCLOSE: {CLIENT},",), RESULT_TIMEOUT
        )
        if codes[0] != 0:
            raise LinkError(f"the module cannot close MQTT client {CLIENT}: result {codes[0]}")

    async def _request(
        self,
        command: str,
        results: Sequence[str],
        timeout: float,
        *,
        prompt: str | None = None,
        payload: bytes | None = None,
    ) -> tuple[str, tuple[int, ...]]:
        """Send ``command``; after its ``OK``, the first result URC starting with one of
        ``results``: its prefix and the codes after it (at least one)."""
        reply = await self.channel.request(
            command,
            results=results,
            timeout=COMMAND_TIMEOUT,
            result_timeout=timeout,
            prompt=prompt,
            payload=payload,
        )
        codes = parse_codes(reply.rest)
        if not codes:
            raise LinkError(f"{self.channel.mask(command)}: unexpected answer {reply.line!r}")
        return reply.prefix, codes

    # --- URCs -----------------------------------------------------------------------------

    def _on_stat(self, line: str) -> None:
        codes = parse_codes(line.removeprefix("+QMTSTAT:"))
        if codes is None or len(codes) < 2 or codes[0] != CLIENT:
            _LOGGER.debug("ignored %r", line)
            return
        if self._session_up:
            self._session_up = False
            self.events.link_lost(f"the module reported {stat_reason(codes[1])}")


async def wait_registered(channel: AtChannel, steps: tuple[Step, ...], max_poll: float) -> None:
    """Until one of ``steps`` succeeds, trying each in turn every second; after the longest
    ``poll`` of them (at most ``max_poll`` seconds), the last step's failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(max(step.poll for step in steps), max_poll)
    while True:
        for step in steps:
            try:
                await run_step(channel, step, max_poll=0.0)
            except LinkError:
                if step is steps[-1] and loop.time() >= deadline:
                    raise
            else:
                return
        await asyncio.sleep(1.0)


DIALECT = QuectelDialect

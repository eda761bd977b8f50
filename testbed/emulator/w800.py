"""WinnerMicro W800 with its ESP-AT style MQTT commands (seed 003).

A Wi-Fi module: no SIM, no 3GPP commands (``AT+CGMI``, ``AT+CMEE``... answer ``ERROR``);
``AT+GMR`` tells the version. The host hands over the MQTT client id, user name and password
it signed; the module passes them to the broker unchanged. Readings chosen where the manual
is silent or ambiguous:
- "每条 AT 命令的总长度不能超过 256 字节" is read as including the line's CR LF, so a command
  text longer than 254 bytes answers ``ERROR`` (the dialect reads it the same way).
- arguments follow ESP-AT's syntax: a backslash makes the next character literal (``\\"``,
  ``\\,``, ``\\\\``), as the manual's ``AT+MQTTPUB`` example shows.
- ``AT+MQTTCONN`` answers ``OK`` at once and the outcome follows as a URC, as the manual
  lists it: ``+MQTTCONNECTED:0,<scheme>,"<host>",<port>,"<path>",<reconnect>``, or
  ``+MQTTDISCONNECTED:0`` when the broker cannot be reached or refuses the login. Without
  Wi-Fi, or when not configured or already connected, it answers ``ERROR``.
- states of ``AT+MQTTCONN?``: 4 after connecting, 6 once a topic is subscribed, 5 after the
  last one is unsubscribed; 3 after a loss. ``<reconnect>`` 1 is accepted but automatic
  reconnection is not emulated. After a loss only ``AT+MQTTCLEAN=0`` frees the link (the
  manual's reconnect-0 rule), and ``AT+MQTTCLEAN`` with nothing to clean answers ``ERROR``.
- ``ALREADY SUBSCRIBE`` and ``ALREADY FULL SUBSCRIBE`` are final answers on their own, as
  the manual shows them (``NO UNSUBSCRIBE`` is followed by ``OK``).
- a lost Wi-Fi or broker session prints ``+MQTTDISCONNECTED:0``.
- ``AT+MQTTUSERCFG?`` is not emulated (it would print the password); ``AT+CWJAP=`` joins any
  network at once, so a demo can follow the dialect's "join it with AT+CWJAP" hint.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .mqtt import InboundMessage
from .parser import ERROR, OK, Command, ParamError
from .personality import Handler, Personality

if TYPE_CHECKING:
    from .emulator import ModuleEmulator

_MAX_TOPIC = 128
_MAX_HOST = 128
_MAX_CLIENT_ID = 256
_MAX_USER = 64  # user name and password in AT+MQTTUSERCFG
_MAX_PATH = 32
_MAX_LONG = 1024  # AT+MQTTLONG* lengths
_MAX_RAW = 5760  # AT+MQTTPUBRAW length
_MAX_TOPICS = 10
_DEFAULT_KEEPALIVE = 120  # keepalive 0 "会被强制改为 120 秒"
_REFUSED = 0x80  # SUBACK failure code

# AT+MQTTCONN? states
_NONE, _USER_SET, _CONN_SET, _LOST, _CONNECTED, _NO_TOPIC, _SUBSCRIBED = range(7)
_UP = (_CONNECTED, _NO_TOPIC, _SUBSCRIBED)

_LONG_FIELDS = {
    "+MQTTLONGCLIENTID": "client_id",
    "+MQTTLONGUSERNAME": "username",
    "+MQTTLONGPASSWORD": "password",
}


def split_escaped(text: str) -> tuple[str, ...]:
    """ESP-AT arguments: commas outside quotes separate, quotes are dropped, and a backslash
    makes the next character literal."""
    args: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            args.append("".join(current))
            current = []
        else:
            current.append(char)
    args.append("".join(current))
    return tuple(args)


def _esp(cmd: Command) -> Command:
    """``cmd`` with its arguments split the ESP-AT way."""
    return dataclasses.replace(cmd, args=split_escaped(cmd.line.split("=", 1)[1]))


def _text(cmd: Command, index: int, max_len: int, *, empty: bool = False) -> str:
    value = cmd.arg(index, "" if empty else None)
    if not empty and not value:
        raise ParamError(f"argument {index} is empty")
    if len(value.encode()) > max_len:
        raise ParamError(f"argument {index} is longer than {max_len} bytes")
    return value


class W800(Personality):
    """W800 running WinnerMicro's ESP-AT style firmware."""

    dialect = "w800"
    manufacturer = "WinnerMicro"
    model = "W800"
    revision = "1.0.0(W800)"
    max_line = 254
    ssid = "HomeWiFi"

    def __init__(self, module: ModuleEmulator) -> None:
        super().__init__(module)
        self._clean()

    def _clean(self) -> None:
        """The MQTT link as after boot or ``AT+MQTTCLEAN``."""
        self.state = _NONE
        self.scheme = 0
        self.client_id = self.username = self.password = ""
        self.keepalive = _DEFAULT_KEEPALIVE
        self.host, self.port, self.path, self.reconnect = "", 0, "", 0
        self.topics: dict[str, int] = {}
        self.connecting = False
        self.attempt = 0  # a connect that finishes after AT+MQTTCLEAN is dropped

    def commands(self) -> dict[str, Handler]:
        return {
            "": self.ok,
            "E": self.ate,
            "+GMR": self.gmr,
            "+RST": self.rst,
            "+CWJAP?": self.cwjap_read,
            "+CWJAP=": self.cwjap_set,
            "+MQTTUSERCFG=": self.usercfg,
            "+MQTTLONGCLIENTID=": self.long_value,
            "+MQTTLONGUSERNAME=": self.long_value,
            "+MQTTLONGPASSWORD=": self.long_value,
            "+MQTTCONNCFG=": self.conncfg,
            "+MQTTCONNCFG?": self.conncfg_read,
            "+MQTTCONN=": self.conn,
            "+MQTTCONN?": self.conn_read,
            "+MQTTSUB=": self.sub,
            "+MQTTSUB?": self.sub_read,
            "+MQTTUNSUB=": self.unsub,
            "+MQTTPUB=": self.pub,
            "+MQTTPUBRAW=": self.pubraw,
            "+MQTTCLEAN=": self.clean,
        }

    def power_on_lines(self) -> list[str]:
        return ["ready"]

    @property
    def joined(self) -> bool:
        """On a Wi-Fi network (the framework's ``registered`` knob)."""
        return self.module.registered

    @property
    def _configuring(self) -> bool:
        """Configured by ``AT+MQTTUSERCFG`` and not connected, connecting or lost (a lost
        session needs ``AT+MQTTCLEAN`` first)."""
        return self.state in (_USER_SET, _CONN_SET) and not self.connecting

    # --- basics -----------------------------------------------------------------------------

    async def gmr(self, cmd: Command) -> str:
        """``AT+GMR``: version lines, ESP-AT style."""
        self.line(f"AT version:{self.firmware}")
        self.line("SDK version:wm_sdk_w800 v1.00.10")
        self.line("compile time:Jun 10 2024 10:00:00")
        return OK

    async def rst(self, cmd: Command) -> str:
        """``AT+RST``: ``OK``, then the module reboots and prints ``ready``."""
        self.module.restart()
        return OK

    async def cwjap_read(self, cmd: Command) -> str:
        """``AT+CWJAP?``: the access point, or ``No AP``."""
        if self.joined:
            self.line(f'+CWJAP:"{self.ssid}","a4:56:02:7b:3c:11",6,-52')
        else:
            self.line("No AP")
        return OK

    async def cwjap_set(self, cmd: Command) -> str:
        """``AT+CWJAP="<ssid>","<pwd>"``: joins at once."""
        cmd = _esp(cmd)
        self.ssid = _text(cmd, 0, 32)
        _text(cmd, 1, 64, empty=True)
        self.module.registered = True
        self.line("WIFI CONNECTED")
        self.line("WIFI GOT IP")
        return OK

    # --- MQTT configuration -----------------------------------------------------------------

    async def usercfg(self, cmd: Command) -> str:
        """``AT+MQTTUSERCFG=0,<scheme>,"<client_id>","<username>","<password>",0,0,"<path>"``."""
        cmd = _esp(cmd)
        cmd.int_arg(0, 0, 0)
        scheme = cmd.int_arg(1, 1, 10)
        client_id = _text(cmd, 2, _MAX_CLIENT_ID)
        username = _text(cmd, 3, _MAX_USER, empty=True)
        password = _text(cmd, 4, _MAX_USER, empty=True)
        cmd.int_arg(5, 0, 0)
        cmd.int_arg(6, 0, 0)
        path = _text(cmd, 7, _MAX_PATH, empty=True)
        if scheme > 2 or not (self.state == _NONE or self._configuring):
            return ERROR  # certificates and WebSocket are not emulated
        self.scheme, self.path = scheme, path
        self.client_id, self.username, self.password = client_id, username, password
        self.state = max(self.state, _USER_SET)
        return OK

    async def long_value(self, cmd: Command) -> str:
        """``AT+MQTTLONG{CLIENTID,USERNAME,PASSWORD}=0,<length>``: ``OK``, ``>``, the value,
        ``OK``."""
        cmd.int_arg(0, 0, 0)
        length = cmd.int_arg(1, 1, _MAX_LONG)
        if not self._configuring:
            return ERROR
        self.line(OK)
        self.prompt(">")
        data = await self.read_data(length)
        if data is None:
            return ERROR
        setattr(self, _LONG_FIELDS[cmd.name], data.decode("utf-8", "replace"))
        return OK

    async def conncfg(self, cmd: Command) -> str:
        """``AT+MQTTCONNCFG=0,<keepalive>,<disable_clean>,"<lwt_topic>","<lwt_msg>",<qos>,
        <retain>`` (the will is accepted and not sent: Aliyun has none)."""
        cmd = _esp(cmd)
        cmd.int_arg(0, 0, 0)
        keepalive = cmd.int_arg(1, 0, 7200)
        cmd.int_arg(2, 0, 1)
        _text(cmd, 3, 128, empty=True)
        _text(cmd, 4, 128, empty=True)
        cmd.int_arg(5, 0, 2)
        cmd.int_arg(6, 0, 1)
        if not self._configuring:
            return ERROR
        self.keepalive = keepalive or _DEFAULT_KEEPALIVE
        self.state = _CONN_SET
        return OK

    async def conncfg_read(self, cmd: Command) -> str:
        """``AT+MQTTCONNCFG?``."""
        self.line(f'+MQTTCONNCFG:0,{self.keepalive},0,"","",0,0')
        return OK

    # --- MQTT session -----------------------------------------------------------------------

    async def conn(self, cmd: Command) -> str:
        """``AT+MQTTCONN=0,"<host>",<port>,<reconnect>`` → ``OK``, then the outcome URC."""
        cmd = _esp(cmd)
        cmd.int_arg(0, 0, 0)
        host = _text(cmd, 1, _MAX_HOST)
        port = cmd.int_arg(2, 1, 65535)
        reconnect = cmd.int_arg(3, 0, 1)
        if not self._configuring or not self.joined:
            return ERROR
        self.host, self.port, self.reconnect = host, port, reconnect
        self.connecting = True
        self.spawn(self._connect(self.attempt))
        return OK

    async def conn_read(self, cmd: Command) -> str:
        """``AT+MQTTCONN?``: ``+MQTTCONN:0,<state>,<scheme>,"<host>",<port>,"<path>",<reconnect>``
        (the manual's line lacks the comma after ``<scheme>``)."""
        self.line(
            f'+MQTTCONN:0,{self.state},{self.scheme},"{self.host}",{self.port},'
            f'"{self.path}",{self.reconnect}'
        )
        return OK

    async def sub(self, cmd: Command) -> str:
        """``AT+MQTTSUB=0,"<topic>",<qos>``; at most 10 topics."""
        cmd = _esp(cmd)
        cmd.int_arg(0, 0, 0)
        topic = _text(cmd, 1, _MAX_TOPIC)
        qos = cmd.int_arg(2, 0, 2)
        if self.state not in _UP:
            return ERROR
        if topic in self.topics:
            return "ALREADY SUBSCRIBE"
        if len(self.topics) >= _MAX_TOPICS:
            return "ALREADY FULL SUBSCRIBE"
        codes = await self.mqtt.subscribe([(topic, qos)])
        if not codes or codes[0] >= _REFUSED or self.state not in _UP:
            return ERROR
        self.topics[topic] = qos
        self.state = _SUBSCRIBED
        return OK

    async def sub_read(self, cmd: Command) -> str:
        """``AT+MQTTSUB?``: ``+MQTTSUB:0,<state>,"<topic>",<qos>`` per topic."""
        for topic, qos in self.topics.items():
            self.line(f'+MQTTSUB:0,{self.state},"{topic}",{qos}')
        return OK

    async def unsub(self, cmd: Command) -> str:
        """``AT+MQTTUNSUB=0,"<topic>"``; ``NO UNSUBSCRIBE`` then ``OK`` for an unknown topic."""
        cmd = _esp(cmd)
        cmd.int_arg(0, 0, 0)
        topic = _text(cmd, 1, _MAX_TOPIC)
        if self.state not in _UP:
            return ERROR
        if topic not in self.topics:
            self.line("NO UNSUBSCRIBE")
            return OK
        if not await self.mqtt.unsubscribe([topic]):
            return ERROR
        del self.topics[topic]
        if not self.topics and self.state in _UP:
            self.state = _NO_TOPIC
        return OK

    async def pub(self, cmd: Command) -> str:
        """``AT+MQTTPUB=0,"<topic>","<data>",<qos>,<retain>`` → ``OK`` once it went out."""
        cmd = _esp(cmd)
        cmd.int_arg(0, 0, 0)
        topic = _text(cmd, 1, _MAX_TOPIC)
        data = cmd.arg(2)
        qos, retain = cmd.int_arg(3, 0, 2), cmd.int_arg(4, 0, 1)
        if self.state not in _UP:
            return ERROR
        done = await self.mqtt.publish(topic, data.encode(), qos, bool(retain))
        return OK if done else ERROR

    async def pubraw(self, cmd: Command) -> str:
        """``AT+MQTTPUBRAW=0,"<topic>",<length>,<qos>,<retain>``: ``OK``, ``>``, exactly
        ``length`` bytes, then ``+MQTTPUB:OK`` or ``+MQTTPUB:FAIL``."""
        cmd = _esp(cmd)
        cmd.int_arg(0, 0, 0)
        topic = _text(cmd, 1, _MAX_TOPIC)
        length = cmd.int_arg(2, 1, _MAX_RAW)
        qos, retain = cmd.int_arg(3, 0, 2), cmd.int_arg(4, 0, 1)
        if self.state not in _UP:
            return ERROR
        self.line(OK)
        self.prompt(">")
        data = await self.read_data(length)
        if data is None:
            return ERROR
        if self.state in _UP and await self.mqtt.publish(topic, data, qos, bool(retain)):
            return "+MQTTPUB:OK"
        return "+MQTTPUB:FAIL"

    async def clean(self, cmd: Command) -> str:
        """``AT+MQTTCLEAN=0``: close the session and forget the configuration."""
        cmd.int_arg(0, 0, 0)
        if self.state == _NONE and not self.connecting:
            return ERROR
        attempt = self.attempt
        self._clean()
        self.attempt = attempt + 1
        await self.mqtt.disconnect()
        return OK

    # --- the session's events ---------------------------------------------------------------

    def on_mqtt_message(self, message: InboundMessage) -> None:
        """``+MQTTSUBRECV:0,"<topic>",<len>,<data>``, the data raw."""
        if self.state in _UP:
            head = f'+MQTTSUBRECV:0,"{message.topic}",{len(message.payload)},'
            self.urc(head.encode() + message.payload)

    def on_mqtt_lost(self) -> None:
        """The broker ended the session."""
        self._lost()

    async def drop_link(self) -> None:
        """The Wi-Fi or the router's uplink vanished: the session ends."""
        if self.state in _UP:
            await self.mqtt.disconnect()
            self._lost()

    # --- internals --------------------------------------------------------------------------

    def _lost(self) -> None:
        if self.state in _UP:
            self.state = _LOST
            self.topics.clear()
            self.urc("+MQTTDISCONNECTED:0")

    async def _connect(self, attempt: int) -> None:
        code = await self.mqtt.connect(
            self.host,
            self.port,
            self.client_id,
            self.username,
            self.password,
            self.keepalive,
            self.scheme == 2,
        )
        if attempt != self.attempt:
            return  # AT+MQTTCLEAN came meanwhile (it closed the bridge too)
        self.connecting = False
        if code == 0:
            self.state = _CONNECTED
            self.urc(
                f'+MQTTCONNECTED:0,{self.scheme},"{self.host}",{self.port},'
                f'"{self.path}",{self.reconnect}'
            )
        else:
            self.state = _LOST
            self.urc("+MQTTDISCONNECTED:0")

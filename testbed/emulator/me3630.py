"""ZTE ME3630 with Aliyun firmware AL_ME3630C1CV1.0B01 (seed 000): the ``AT+CLOUD*`` commands.

The module signs for Aliyun itself and reaches the endpoint its firmware was built for (here:
the local cloud). Readings chosen where the manual is silent or ambiguous:
- ``AT+CLOUDAUTH`` checks its three unquoted fields (1-64 bytes), answers ``OK`` and then the
  server's verdict, ``+ALIAUTH: OK`` / ``+ALIAUTH: FAIL`` (the description's order), or
  ``+CME ERROR: 100`` when the server cannot be reached. ``auth_result_first`` plays the
  example's order instead (verdict, then ``OK``). The verdict comes from a trial MQTT CONNECT
  signed like the firmware (HmacSHA1, millisecond timestamp, the IMEI as client id), closed
  again; ``AT+CLOUDCONN`` opens the session the console then shows online.
- ``AT+CLOUDSUB`` takes up to 8 topic/QoS pairs per command and 8 topics in all: success is
  ``+CLOUDSUBACK: <OK>`` (the example, brackets included) before ``OK``; failures are the
  manual's ``+CMD ERROR: <code>`` (128 when the broker refused a topic, 3 without a session).
- ``AT+CLOUDPUB`` with a number as third field prompts ``> `` and takes that many bytes
  (1-255); any other third field is the message itself, where a comma makes too many fields
  (``ERROR``). Topics over 64 bytes are refused (``ERROR``), for CLOUDSUB too.
- The module announces no loss of the session: afterwards CLOUDPUB, CLOUDSUB and CLOUDUNSUB
  answer ``+CME ERROR: 3`` (operation not allowed). ``AT+CLOUDDISCONN`` always answers ``OK``
  and, as the manual says, a new ``AT+CLOUDAUTH`` is needed after it.
- ``AT+ZECMCALL=1`` answers ``+ZECMCALL: CONNECT`` before ``OK`` (again when already up);
  off network it fails with ``+CME ERROR: 30`` (no network service).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from custom_components.aliyun_iot_at.core.signing import MqttCredentials, mqtt_credentials

from .mqtt import InboundMessage
from .parser import OK, Command, ParamError
from .personality import Handler, Personality

if TYPE_CHECKING:
    from .emulator import ModuleEmulator

_MAX_FIELD = 64
_MAX_TOPIC = 64
_MAX_MESSAGE = 255
_MAX_TOPICS = 8
_KEEPALIVE = 60
_REFUSED = 0x80

# +CME ERROR codes: 3 operation not allowed, 30 no network service; the manual names none
# for "server connection or data transfer failed", 100 (unknown) stands for it.
_NOT_ALLOWED, _NO_SERVICE, _SERVER_ERROR = 3, 30, 100


class Me3630(Personality):
    """ME3630-C1C with the Aliyun firmware."""

    dialect = "me3630"
    manufacturer = "ZTE INCORPORATED"
    model = "ME3630"
    revision = "AL_ME3630C1CV1.0B01"
    imei = "867223031234569"

    def __init__(self, module: ModuleEmulator) -> None:
        super().__init__(module)
        self.auth_result_first = False
        self.dialed = False
        self.apn = ""
        self.auth: tuple[str, str, str] | None = None  # verified by the server
        self.session = False  # CLOUDCONN done (the bridge tells whether it still runs)
        self.topics: set[str] = set()

    def commands(self) -> dict[str, Handler]:
        return super().commands() | {
            "+ZPAS?": self.zpas,
            "+CGDCONT=": self.cgdcont,
            "+ZECMCALL=": self.zecmcall,
            "+CLOUDAUTH=": self.cloudauth,
            "+CLOUDCONN": self.cloudconn,
            "+CLOUDSUB=": self.cloudsub,
            "+CLOUDUNSUB=": self.cloudunsub,
            "+CLOUDPUB=": self.cloudpub,
            "+CLOUDDISCONN": self.clouddisconn,
        }

    # --- network ----------------------------------------------------------------------------

    async def zpas(self, cmd: Command) -> str:
        """``AT+ZPAS?``: ``"LTE","CS_PS","FDD"`` on a network; without a SIM the module camps
        for emergency calls only (``LIMITED SERVICE``), else it is searching (``NO SERVICE``)."""
        if self.registered:
            self.line('+ZPAS: "LTE","CS_PS","FDD"')
        elif not self.sim_ready and self.fun == 1:
            self.line('+ZPAS: "LIMITED SERVICE"')
        else:
            self.line('+ZPAS: "NO SERVICE"')
        return OK

    async def cgdcont(self, cmd: Command) -> str:
        """``AT+CGDCONT=<cid>,"<type>","<apn>"``: only context 1 matters for the ECM call."""
        cid = cmd.int_arg(0, 1, 16)
        if cid == 1:
            self.apn = cmd.arg(2, "")
        return OK

    async def zecmcall(self, cmd: Command) -> str:
        """``AT+ZECMCALL=<0|1>``: the ECM data call."""
        if cmd.int_arg(0, 0, 1) == 0:
            self.dialed = False
            await self.mqtt.disconnect()
            self.line("+ZECMCALL: DISCONNECT")
            return OK
        if not self.registered:
            return self.cme(_NO_SERVICE)
        self.dialed = True
        self.line("+ZECMCALL: CONNECT")
        return OK

    # --- the cloud ------------------------------------------------------------------------

    async def cloudauth(self, cmd: Command) -> str:
        """``AT+CLOUDAUTH=<pkey>,<dname>,<dsrt>``: ``OK``, then the server's verdict."""
        if len(cmd.args) != 3 or not all(0 < len(arg) <= _MAX_FIELD for arg in cmd.args):
            raise ParamError("three fields of 1-64 bytes")
        if self.session and self.mqtt.connected:
            return self.cme(_NOT_ALLOWED)
        triple = (cmd.args[0], cmd.args[1], cmd.args[2])
        self.auth = None
        if self.auth_result_first:
            verdict = await self._authenticate(triple)
            if not verdict.startswith("+ALIAUTH"):
                return verdict
            self.line(verdict)
            return OK
        self.spawn(self._report_auth(triple))
        return OK

    async def cloudconn(self, cmd: Command) -> str:
        """``AT+CLOUDCONN``: the MQTT session, with the credentials CLOUDAUTH verified."""
        if self.auth is None or (self.session and self.mqtt.connected):
            return self.cme(_NOT_ALLOWED)
        if not self.dialed or await self._connect(self.auth) != 0:
            return self.cme(_SERVER_ERROR)
        self.session = True
        self.topics.clear()
        return OK

    async def cloudsub(self, cmd: Command) -> str:
        """``AT+CLOUDSUB=<topic1>,<qos>[,<topic2>,<qos>...]`` → ``+CLOUDSUBACK: <OK>``."""
        if not cmd.args or len(cmd.args) % 2 or len(cmd.args) > 2 * _MAX_TOPICS:
            raise ParamError("topic and qos pairs")
        topics = [
            (_topic(cmd.arg(i)), cmd.int_arg(i + 1, 0, 1)) for i in range(0, len(cmd.args), 2)
        ]
        if not self._online():
            return f"+CMD ERROR: {_NOT_ALLOWED}"
        if len(self.topics | {topic for topic, _ in topics}) > _MAX_TOPICS:
            return f"+CMD ERROR: {_NOT_ALLOWED}"
        codes = await self.mqtt.subscribe(topics)
        if codes is None:
            return f"+CMD ERROR: {_SERVER_ERROR}"
        if any(code >= _REFUSED for code in codes):
            return f"+CMD ERROR: {_REFUSED}"
        self.topics.update(topic for topic, _ in topics)
        self.line("+CLOUDSUBACK: <OK>")
        return OK

    async def cloudunsub(self, cmd: Command) -> str:
        """``AT+CLOUDUNSUB=<topic>``: one topic at a time."""
        if len(cmd.args) != 1:
            raise ParamError("one topic")
        topic = _topic(cmd.arg(0))
        if not self._online():
            return self.cme(_NOT_ALLOWED)
        if not await self.mqtt.unsubscribe([topic]):
            return self.cme(_SERVER_ERROR)
        self.topics.discard(topic)
        return OK

    async def cloudpub(self, cmd: Command) -> str:
        """``AT+CLOUDPUB=<topic>,<qos>,<message|length>``."""
        if len(cmd.args) != 3:
            raise ParamError("topic, qos and message")
        topic, qos, message = _topic(cmd.arg(0)), cmd.int_arg(1, 0, 1), cmd.arg(2)
        if not 0 < len(message.encode()) <= _MAX_MESSAGE:
            raise ParamError("message length")
        if not self._online():
            return self.cme(_NOT_ALLOWED)
        payload = message.encode()
        if message.isdigit():
            length = int(message)
            if not 0 < length <= _MAX_MESSAGE:
                raise ParamError("message length")
            self.prompt("\r\n> ")
            data = await self.read_data(length)
            if data is None:
                return self.cme(_SERVER_ERROR)
            payload = data
        if not await self.mqtt.publish(topic, payload, qos):
            return self.cme(_SERVER_ERROR)
        return OK

    async def clouddisconn(self, cmd: Command) -> str:
        """``AT+CLOUDDISCONN``: the session ends and the authentication is forgotten."""
        await self.mqtt.disconnect()
        self.session = False
        self.auth = None
        self.topics.clear()
        return OK

    # --- the session's events ---------------------------------------------------------------

    def on_mqtt_message(self, message: InboundMessage) -> None:
        """``+CLOUDPUBLISH:<packId>,<topic>,<msg_len>,<msg>`` (the example: no space)."""
        if not self.session:
            return
        head = f"+CLOUDPUBLISH:{message.packet_id or 0},{message.topic},{len(message.payload)},"
        self.urc(head.encode() + message.payload)

    # on_mqtt_lost and drop_link keep the defaults: the session ends without a word.

    # --- internals --------------------------------------------------------------------------

    def _online(self) -> bool:
        return self.session and self.mqtt.connected

    async def _report_auth(self, triple: tuple[str, str, str]) -> None:
        self.urc(await self._authenticate(triple))

    async def _authenticate(self, triple: tuple[str, str, str]) -> str:
        """The verdict line of a trial CONNECT."""
        if not self.dialed:
            return self.cme(_SERVER_ERROR)
        code = await self._connect(triple)
        await self.mqtt.disconnect()
        if code == 0:
            self.auth = triple
            return "+ALIAUTH: OK"
        return "+ALIAUTH: FAIL" if code > 0 else self.cme(_SERVER_ERROR)

    async def _connect(self, triple: tuple[str, str, str]) -> int:
        credentials = _sign(triple, self.imei)
        return await self.mqtt.connect(
            f"{triple[0]}.iot-as-mqtt.cn-shanghai.aliyuncs.com",
            1883,
            credentials.client_id,
            credentials.username,
            credentials.password,
            _KEEPALIVE,
            False,
        )


def _topic(topic: str) -> str:
    if not 0 < len(topic.encode()) <= _MAX_TOPIC:
        raise ParamError("topic length")
    return topic


def _sign(triple: tuple[str, str, str], client_id: str) -> MqttCredentials:
    """The credentials the firmware makes: HmacSHA1 with a millisecond timestamp."""
    product_key, device_name, device_secret = triple
    return mqtt_credentials(
        product_key,
        device_name,
        device_secret,
        client_id=client_id,
        timestamp=str(int(time.time() * 1000)),
        method="hmacsha1",
    )

"""China Mobile OneMO ML302 with its Aliyun AT extension (seed 001).

The module keeps the triple in flash and signs for Aliyun itself; ``AT+ALYMQTTOPEN`` connects
and answers once the CONNACK is in. Readings chosen where the manual is silent or ambiguous:
- flash (the triple and the product secret) survives ``restart``; ``AT+ALYCONNECTCFG`` and
  ``AT+ALYMQTTCFG`` fall back to the manual's defaults (``0,1883,0`` and ``0,2000,60000``).
- the firmware signs like the Aliyun C SDK: client id ``pk.dn``, HmacSHA256 with a
  millisecond timestamp, ``securemode=2`` over TLS, 3 without; keepalive in ms, sent in s.
- region 5 ("custom") has no command for its host: ``AT+ALYMQTTOPEN`` answers 705.
- ``AT+ALYMQTTOPEN``: 707 when open, 701/703/704 for a missing triple part, 700 off network
  or when the broker cannot be reached, plain ``ERROR`` when the broker refuses the CONNECT.
- changing the triple or the configuration while open: 706 (operation not allowed).
- MQTT commands while closed answer 705; once the session died silently (the network
  vanished, the cloud cut it) they answer 700 until ``AT+ALYMQTTCLOSE``. No URC says so.
- ``AT+ALYMQTTPUB`` takes ``"<topic>",<qos>,"<payload>"`` with ``\\"`` for a quote inside the
  payload (the manual's example); no other escape is known, so a backslash stays as it is.
- ``+MQTTRECV:<topic>,<payload>`` as the example prints it: no space, the payload raw.
- bad or missing parameters: 708. The power-on line is ``RDY`` (the manual names none).
"""

from __future__ import annotations

from dataclasses import dataclass
import re
import time
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from custom_components.aliyun_iot_at.core.signing import mqtt_credentials

from .mqtt import NO_LINK, InboundMessage
from .parser import ERROR, OK, Command, ParamError
from .personality import Handler, Personality

if TYPE_CHECKING:
    from .emulator import ModuleEmulator

_REGIONS = (
    "cn-shanghai",
    "ap-southeast-1",
    "ap-northeast-1",
    "us-west-1",
    "eu-central-1",
)
_CUSTOM_REGION = len(_REGIONS)
_REFUSED = 0x80  # SUBACK failure code

# Error codes of chapter 2.2.
NETWORK_ERROR = 700
NO_PRODUCT_KEY = 701
NO_DEVICE_NAME = 703
NO_DEVICE_SECRET = 704
INVALID_OPERATION = 705
NOT_ALLOWED = 706
ALREADY_OPEN = 707
PARAMETER_ERROR = 708

# ``"<topic>",<qos>,<payload>`` of AT+ALYMQTTPUB, the payload quoted or not.
_PUB_ARGS = re.compile(r'\s*"([^"]+)"\s*,\s*(\d)\s*,(.*)', re.DOTALL)


@dataclass
class _Flash:
    """What ``AT+ALY…KEY/NAME/SECRET`` store: kept across power loss."""

    product_key: str = ""
    device_name: str = ""
    device_secret: str = ""
    product_secret: str = ""


# Flash per emulated module: a personality is made anew at every boot, the flash is not.
_FLASHES: WeakKeyDictionary[ModuleEmulator, _Flash] = WeakKeyDictionary()

# Flash fields by command: (attribute, longest value in bytes).
_FLASH_FIELDS = {
    "+ALYPRODUCTKEY": ("product_key", 20),
    "+ALYDEVICENAME": ("device_name", 32),
    "+ALYDEVICESECRET": ("device_secret", 64),
    "+ALYPRODUCTSECRET": ("product_secret", 64),
}


class Ml302(Personality):
    """OneMO ML302."""

    dialect = "ml302"
    manufacturer = "CMIOT"
    model = "ML302"
    revision = "ML302_OneMO_V1.0.0"
    imei = "869012040123457"
    param_error = f"+CME ERROR: {PARAMETER_ERROR}"

    def __init__(self, module: ModuleEmulator) -> None:
        super().__init__(module)
        self.flash = _FLASHES.setdefault(module, _Flash())
        self.region, self.port, self.tls = 0, 1883, 0
        self.clean_session, self.timeout_ms, self.keepalive_ms = 0, 2000, 60000
        self.open = False
        self.dead = False  # open, but the session died without a word

    def commands(self) -> dict[str, Handler]:
        flash: dict[str, Handler] = {}
        for name in _FLASH_FIELDS:
            flash[f"{name}="] = self.flash_set
            flash[f"{name}?"] = self.flash_read
        return (
            super().commands()
            | flash
            | {
                "+ALYCONNECTCFG=": self.connectcfg_set,
                "+ALYCONNECTCFG?": self.connectcfg_read,
                "+ALYMQTTCFG=": self.mqttcfg_set,
                "+ALYMQTTCFG?": self.mqttcfg_read,
                "+ALYMQTTOPEN": self.mqttopen,
                "+ALYMQTTCLOSE": self.mqttclose,
                "+ALYMQTTSUB=": self.mqttsub,
                "+ALYMQTTUNSUB=": self.mqttunsub,
                "+ALYMQTTPUB=": self.mqttpub,
            }
        )

    def power_on_lines(self) -> list[str]:
        return ["RDY"]

    # --- flash and configuration --------------------------------------------------------------

    async def flash_set(self, cmd: Command) -> str:
        """``AT+ALYPRODUCTKEY=<pk>`` and its siblings (quoted or not)."""
        attribute, longest = _FLASH_FIELDS[cmd.name]
        value = cmd.arg(0)
        if len(cmd.args) != 1 or not 0 < len(value.encode()) <= longest:
            raise ParamError("value length")
        if self.open:
            return self.cme(NOT_ALLOWED)
        setattr(self.flash, attribute, value)
        return OK

    async def flash_read(self, cmd: Command) -> str:
        """``AT+ALYPRODUCTKEY?`` → ``+ALYPRODUCTKEY:<pk>``."""
        attribute, _ = _FLASH_FIELDS[cmd.name]
        self.line(f"{cmd.name}:{getattr(self.flash, attribute)}")
        return OK

    async def connectcfg_set(self, cmd: Command) -> str:
        """``AT+ALYCONNECTCFG=<region>,<port>,<tls_flag>``."""
        values = (cmd.int_arg(0, 0, 5), cmd.int_arg(1, 1, 65535), cmd.int_arg(2, 0, 1))
        if self.open:
            return self.cme(NOT_ALLOWED)
        self.region, self.port, self.tls = values
        return OK

    async def connectcfg_read(self, cmd: Command) -> str:
        """``AT+ALYCONNECTCFG?``."""
        self.line(f"+ALYCONNECTCFG:{self.region},{self.port},{self.tls}")
        return OK

    async def mqttcfg_set(self, cmd: Command) -> str:
        """``AT+ALYMQTTCFG=<clean_session>,<timeout ms>,<keepalive ms>``."""
        values = (
            cmd.int_arg(0, 0, 1),
            cmd.int_arg(1, 100, 60_000),
            cmd.int_arg(2, 1000, 3_600_000),
        )
        if self.open:
            return self.cme(NOT_ALLOWED)
        self.clean_session, self.timeout_ms, self.keepalive_ms = values
        return OK

    async def mqttcfg_read(self, cmd: Command) -> str:
        """``AT+ALYMQTTCFG?``."""
        self.line(f"+ALYMQTTCFG:{self.clean_session},{self.timeout_ms},{self.keepalive_ms}")
        return OK

    # --- the MQTT session ---------------------------------------------------------------------

    async def mqttopen(self, cmd: Command) -> str:
        """``AT+ALYMQTTOPEN``: sign, connect, answer once the CONNACK is in."""
        flash = self.flash
        missing = (
            (flash.product_key, NO_PRODUCT_KEY),
            (flash.device_name, NO_DEVICE_NAME),
            (flash.device_secret, NO_DEVICE_SECRET),
        )
        if self.open:
            return self.cme(ALREADY_OPEN)
        for value, code in missing:
            if not value:
                return self.cme(code)
        if self.region == _CUSTOM_REGION:
            return self.cme(INVALID_OPERATION)
        if not self.registered:
            return self.cme(NETWORK_ERROR)
        credentials = mqtt_credentials(
            flash.product_key,
            flash.device_name,
            flash.device_secret,
            timestamp=str(int(time.time() * 1000)),
            tls=bool(self.tls),
        )
        host = f"{flash.product_key}.iot-as-mqtt.{_REGIONS[self.region]}.aliyuncs.com"
        code = await self.mqtt.connect(
            host,
            self.port,
            credentials.client_id,
            credentials.username,
            credentials.password,
            self.keepalive_ms // 1000,
            bool(self.tls),
        )
        if code == NO_LINK:
            return self.cme(NETWORK_ERROR)
        if code != 0:
            return ERROR
        self.open, self.dead = True, False
        return OK

    async def mqttclose(self, cmd: Command) -> str:
        """``AT+ALYMQTTCLOSE``: 705 when nothing is open."""
        if not self.open:
            return self.cme(INVALID_OPERATION)
        self.open = self.dead = False
        await self.mqtt.disconnect()
        return OK

    async def mqttsub(self, cmd: Command) -> str:
        """``AT+ALYMQTTSUB=<topic>,<qos>``: waits for the SUBACK."""
        topic, qos = cmd.arg(0), cmd.int_arg(1, 0, 1)
        if not topic or len(cmd.args) != 2:
            raise ParamError("topic and qos")
        if (refusal := self._session_refusal()) is not None:
            return refusal
        codes = await self.mqtt.subscribe([(topic, qos)])
        if codes is None:
            return self.cme(NETWORK_ERROR)
        return ERROR if any(code >= _REFUSED for code in codes) else OK

    async def mqttunsub(self, cmd: Command) -> str:
        """``AT+ALYMQTTUNSUB=<topic>`` (the manual's set line misspells it ``ALYMQTTSUB``)."""
        topic = cmd.arg(0)
        if not topic or len(cmd.args) != 1:
            raise ParamError("topic")
        if (refusal := self._session_refusal()) is not None:
            return refusal
        done = await self.mqtt.unsubscribe([topic])
        return OK if done else self.cme(NETWORK_ERROR)

    async def mqttpub(self, cmd: Command) -> str:
        """``AT+ALYMQTTPUB="<topic>",<qos>,"<payload>"``, ``\\"`` standing for a quote."""
        match = _PUB_ARGS.fullmatch(cmd.line.partition("=")[2])
        if match is None or int(match[2]) > 1:
            raise ParamError("topic, qos and payload")
        topic, qos, payload = match[1], int(match[2]), _unquote(match[3].strip())
        if (refusal := self._session_refusal()) is not None:
            return refusal
        done = await self.mqtt.publish(topic, payload.encode(), qos)
        return OK if done else self.cme(NETWORK_ERROR)

    # --- what the session does by itself ------------------------------------------------------

    def on_mqtt_message(self, message: InboundMessage) -> None:
        """``+MQTTRECV:<topic>,<payload>``, the payload raw (no length anywhere)."""
        if self.open and not self.dead:
            self.urc(f"+MQTTRECV:{message.topic},".encode() + message.payload)

    def on_mqtt_lost(self) -> None:
        """The cloud cut the session: the module notices, and says nothing."""
        self.dead = self.open

    async def drop_link(self) -> None:
        """The network vanished: the session closes silently."""
        self.dead = self.open
        await self.mqtt.disconnect()

    def _session_refusal(self) -> str | None:
        """The answer of an MQTT command while no session is up, else ``None``."""
        if not self.open:
            return self.cme(INVALID_OPERATION)
        if self.dead or not self.mqtt.connected:
            return self.cme(NETWORK_ERROR)
        return None


def _unquote(text: str) -> str:
    """The payload: without its surrounding quotes, ``\\"`` read as ``"``."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    return text

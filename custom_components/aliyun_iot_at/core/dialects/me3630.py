"""ZTE ME3630, firmware AL_ME3630C1CV1.0B01 or later (seed 000): ``AT+CLOUD*`` commands.

The module signs the Aliyun credentials itself (``AT+CLOUDAUTH``) and connects to the endpoint
its firmware was built for: region, host, port, TLS, keepalive and client id cannot be set.
It announces no loss of the MQTT session, so ``is_connected`` probes with a tiny publish.

Readings of the manual where it is ambiguous:
- Several answers are shown both before and after the ``OK`` (``+ALIAUTH`` is described as
  coming after it and shown before it): every result line is awaited either way, and a
  ``+CME ERROR`` after the ``OK`` counts as the command's failure.
- ``AT+CLOUDPUB``'s third field is "the message, or its length when it is a number". Alink
  JSON is full of commas and quotes, which an unquoted field cannot carry, so every payload
  goes in length mode; the manual shows no prompt, we read it as the usual ``>``.
- Topics: CLOUDPUB's "长度不能操作 64" is a typo of "不能超过 64", must not exceed 64 bytes; the
  manual's own 20-character device name needs exactly 64 for ``…/thing/service/property/set``.
  The limit is applied to CLOUDSUB too. Messages: "需小于 256", at most 255 bytes.
- "At most 8 topics" is read as the module's total; we subscribe one topic per command, so each
  ``+CLOUDSUBACK`` (``<OK>`` in the example) belongs to exactly one topic.
- ``+CMD ERROR`` is the manual's typo for ``+CME ERROR``; the channel reads both.
"""

from __future__ import annotations

from collections.abc import Sequence
import contextlib
import logging
import re
from typing import ClassVar

from ..atcmd import bare, quoted
from ..channel import AtChannel
from ..errors import (
    AtCommandError,
    AtTimeout,
    AuthRefused,
    CmeError,
    FirmwareTooOld,
    LinkError,
    NoNetwork,
    PublishFailed,
    UnsafeValue,
)
from .base import (
    SIM_READY,
    Dialect,
    Endpoint,
    InboundMessage,
    LinkEvents,
    LinkSettings,
    ModuleInfo,
    Step,
    aliyun_qos,
    parse_length_framed,
)

_LOGGER = logging.getLogger(__name__)

# The manual: MQTT commands exist from firmware AL_ME3630C1CV1.0B01 on.
MIN_FIRMWARE = (1, 0, 1)
MIN_FIRMWARE_NAME = "AL_ME3630C1CV1.0B01"
_FIRMWARE = re.compile(r"ME3630\w*?V(\d+)\.(\d+)B(\d+)", re.IGNORECASE)

MAX_TOPIC = 64  # CLOUDPUB: a topic of at most 64 bytes
MAX_MESSAGE = 255  # CLOUDPUB: message shorter than 256 bytes
MAX_AUTH_FIELD = 64  # CLOUDAUTH: pk, dn and ds at most 64 bytes each
MAX_SUBSCRIPTIONS = 8
SUBSCRIBE_QOS = 1
# Ctrl-Z and ESC end or abort data input on most firmware, even in a length-counted mode.
_DATA_FORBIDDEN = b"\x1a\x1b"

# The module talks to the cloud before it answers these: allow for a slow mobile network.
CLOUD_TIMEOUT = 30.0
DIAL_TIMEOUT = 30.0
PUBLISH_TIMEOUT = 10.0

ATTACH = (
    SIM_READY,
    # +ZPAS: "LTE","CS_PS","FDD" when camped; "NO SERVICE" / "LIMITED SERVICE" otherwise.
    Step(
        "AT+ZPAS?",
        r'\+ZPAS: ?"?(?!NO SERVICE|LIMITED SERVICE)\w',
        poll=60.0,
        fail=NoNetwork,
        response_prefix="+ZPAS:",
    ),
)
CONNECT = Step("AT+CLOUDCONN", timeout=CLOUD_TIMEOUT, fail=LinkError)
DISCONNECT = "AT+CLOUDDISCONN"

_DIALED = re.compile(r"\+ZECMCALL: ?CONNECT\b", re.IGNORECASE)
_LATE_ERRORS = ("+CME ERROR:", "+CMD ERROR:")
_SUBACK_FAILED = re.compile(r"FAIL|ERR|\b128\b|0x80", re.IGNORECASE)
# +CLOUDPUBLISH: <packId>,<topic>,<msg_len>,<msg> — the message is counted, it may hold
# commas, quotes and line breaks. The manual's example has no space after the colon.
_PUBLISH_HEADER = r"\+CLOUDPUBLISH: ?(?P<id>\d+),(?P<topic>[^,\r\n]+),(?P<len>\d+),"
_PUBLISH_TEXT = re.compile(_PUBLISH_HEADER)
_PUBLISH_BYTES = re.compile(_PUBLISH_HEADER.encode())


def firmware_version(firmware: str) -> tuple[int, int, int] | None:
    """``(1, 0, 1)`` for ``AL_ME3630C1CV1.0B01``; ``None`` when it is not an ME3630 version."""
    match = _FIRMWARE.search(firmware)
    if match is None:
        return None
    major, minor, build = match.groups()
    return int(major), int(minor), int(build)


def topic_field(topic: str) -> str:
    """A topic as ME3630's unquoted field; ``UnsafeValue`` naming the limit if too long."""
    size = len(topic.encode())
    if size > MAX_TOPIC:
        raise UnsafeValue(
            f"the ME3630 carries topics of at most {MAX_TOPIC} bytes;"
            f" {topic!r} has {size} (use a shorter device name)"
        )
    return bare(topic, "topic")


def auth_command(settings: LinkSettings) -> str:
    """``AT+CLOUDAUTH=<pk>,<dn>,<ds>`` with the manual's unquoted parameters."""
    ident = settings.identity
    pk = bare(ident.product_key, "product key", max_len=MAX_AUTH_FIELD)
    dn = bare(ident.device_name, "device name", max_len=MAX_AUTH_FIELD)
    ds = bare(ident.device_secret, "device secret", max_len=MAX_AUTH_FIELD)
    return f"AT+CLOUDAUTH={pk},{dn},{ds}"


def subscribe_command(topic: str, qos: int = SUBSCRIBE_QOS) -> str:
    """``AT+CLOUDSUB=<topic>,<qos>`` for one topic."""
    return f"AT+CLOUDSUB={topic_field(topic)},{aliyun_qos(qos)}"


def publish_command(topic: str, payload: bytes, qos: int = 0) -> str:
    """``AT+CLOUDPUB=<topic>,<qos>,<length>``: the payload follows the ``>`` prompt."""
    if not payload:
        raise UnsafeValue("the ME3630 cannot publish an empty message")
    if len(payload) > MAX_MESSAGE:
        raise UnsafeValue(
            f"the ME3630 publishes at most {MAX_MESSAGE} bytes per message;"
            f" this one has {len(payload)}"
        )
    if any(byte in _DATA_FORBIDDEN for byte in payload):
        raise UnsafeValue("the message contains Ctrl-Z or ESC, which end the module's input")
    return f"AT+CLOUDPUB={topic_field(topic)},{aliyun_qos(qos)},{len(payload)}"


def parse_publish(text: str) -> InboundMessage | None:
    """The message of a ``+CLOUDPUBLISH`` URC (already framed by its length)."""
    match = _PUBLISH_TEXT.match(text)
    if match is None:
        return None
    return InboundMessage(match.group("topic"), text[match.end() :].encode())


class Me3630(Dialect):
    """ZTE ME3630 with Aliyun firmware."""

    name: ClassVar[str] = "me3630"
    title: ClassVar[str] = "ZTE ME3630"
    max_topics: ClassVar[int] = MAX_SUBSCRIPTIONS
    max_payload: ClassVar[int] = MAX_MESSAGE
    supports_tls: ClassVar[bool] = False
    reports_link_loss: ClassVar[bool] = False

    def __init__(self, channel: AtChannel, settings: LinkSettings, events: LinkEvents) -> None:
        super().__init__(channel, settings, events)
        channel.add_urc(
            self.message_urc("+CLOUDPUBLISH", parse_publish, parse_length_framed(_PUBLISH_BYTES))
        )

    @classmethod
    def matches(cls, info: ModuleInfo) -> bool:
        maker = (info.manufacturer or "").upper()
        named = "ME3630" in (info.model or "").upper() or "ME3630" in (info.firmware or "").upper()
        return named and (not maker or "ZTE" in maker)

    async def initialize(self) -> None:
        await super().initialize()
        await self._check_firmware()

    async def _check_firmware(self) -> None:
        try:
            lines = await self.channel.command("AT+CGMR")
        except AtCommandError:
            return  # the CLOUD commands will tell
        for line in lines:
            version = firmware_version(line)
            if version is not None and version < MIN_FIRMWARE:
                raise FirmwareTooOld(
                    f"ME3630 firmware {line.removeprefix('+CGMR:').strip()} has no Aliyun"
                    f" commands; update it to {MIN_FIRMWARE_NAME} or later"
                )

    async def attach(self) -> None:
        await self.run(*ATTACH)
        if self.settings.apn:
            apn = quoted(self.settings.apn, "APN", max_len=63)
            await self.run(Step(f'AT+CGDCONT=1,"IP",{apn}', fail=NoNetwork))
        try:
            answer = await self._verdict("AT+ZECMCALL=1", "+ZECMCALL:", DIAL_TIMEOUT)
        except (AtCommandError, AtTimeout) as err:
            raise NoNetwork(f"the data call (AT+ZECMCALL=1) failed: {err}") from err
        if not _DIALED.match(answer):
            raise NoNetwork(f"the data call (AT+ZECMCALL=1) failed: {answer}")

    async def connect(self) -> None:
        if self.settings.endpoint != Endpoint():
            _LOGGER.warning(
                "the ME3630 connects to the Aliyun endpoint its firmware was built for;"
                " the configured region or host is not used"
            )
        # A session left from before (one that died silently, or another run) is released
        # first: the manual wants a fresh authentication after every disconnect.
        with contextlib.suppress(AtCommandError, AtTimeout):
            await self.channel.command(DISCONNECT, timeout=CLOUD_TIMEOUT)
        await self._authenticate()
        await self.run(CONNECT)

    async def _authenticate(self) -> None:
        command = auth_command(self.settings)
        try:
            answer = await self._verdict(command, "+ALIAUTH:", CLOUD_TIMEOUT)
        except CmeError as err:
            # The manual: "+CME ERROR: server connection or data transfer failed".
            raise NoNetwork(f"the module could not reach Aliyun to authenticate: {err}") from err
        except AtCommandError as err:
            raise LinkError(
                f"the module refused AT+CLOUDAUTH (firmware {MIN_FIRMWARE_NAME} or later"
                f" needed): {err}"
            ) from err
        except AtTimeout as err:
            raise NoNetwork(f"no authentication result from the module: {err}") from err
        verdict = answer.removeprefix("+ALIAUTH:").strip().upper()
        if "FAIL" in verdict:
            raise AuthRefused("Aliyun refused the device credentials (+ALIAUTH: FAIL)")
        if "OK" not in verdict:
            raise LinkError(f"unexpected authentication result {answer!r}")

    async def subscribe(self, topics: Sequence[str]) -> None:
        if len(topics) > MAX_SUBSCRIPTIONS:
            raise UnsafeValue(
                f"the ME3630 subscribes to at most {MAX_SUBSCRIPTIONS} topics, not {len(topics)}"
            )
        commands = [subscribe_command(topic) for topic in topics]  # refuse before sending
        for topic, command in zip(topics, commands, strict=True):
            try:
                answer = await self._verdict(command, "+CLOUDSUBACK", CLOUD_TIMEOUT)
            except (AtCommandError, AtTimeout) as err:
                raise LinkError(f"subscribing to {topic} failed: {err}") from err
            if _SUBACK_FAILED.search(answer.removeprefix("+CLOUDSUBACK")):
                raise LinkError(f"the cloud refused the subscription to {topic}: {answer}")

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        command = publish_command(topic, payload, qos)
        try:
            await self.channel.command(
                command, timeout=PUBLISH_TIMEOUT, prompt=">", payload=payload
            )
        except AtCommandError as err:
            raise PublishFailed(f"publishing to {topic} failed: {err}") from err

    async def is_connected(self) -> bool:
        """The manual has no state query: a QoS 0 NTP request fails once the session is gone."""
        return await self.probe_by_publishing()

    async def disconnect(self) -> None:
        await self.channel.command(DISCONNECT, timeout=CLOUD_TIMEOUT)

    # --- helpers ---------------------------------------------------------------------

    async def _verdict(self, command: str, prefix: str, timeout: float) -> str:
        """Run ``command`` and return its result line starting with ``prefix``.

        The result may come before or after the ``OK``; after the ``OK`` a ``+CME ERROR``
        line stands for the result and is raised as ``CmeError``. No other command runs
        meanwhile (the link connects and subscribes alone), so those waiters take nothing
        that belongs to another command.
        """
        channel = self.channel
        result = channel.expect(prefix)
        try:
            await channel.command(command, timeout=timeout)
        except BaseException:
            result.cancel()
            raise
        # Only now: before the OK, a +CME ERROR is the command's own final answer.
        late = [] if result.future.done() else [channel.expect(e) for e in _LATE_ERRORS]
        reply = await channel.wait_first([result, *late], timeout, command=command)
        if reply.prefix == prefix:
            return reply.line
        detail = reply.rest.strip()
        code = int(detail) if detail.isdigit() else None
        raise CmeError(channel.mask(command), reply.line, "CME", code)


DIALECT = Me3630

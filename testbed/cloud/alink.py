"""The cloud side of Alink, spoken through the cloud's own MQTT client.

It answers property and event posts with ``…/post_reply``, records what devices send (posts and
their replies to our requests) in a bounded history, and publishes requests to devices.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
import itertools
import json
import logging
import re
from typing import Any, Literal
from urllib.parse import quote

from amqtt.client import MQTTClient
from amqtt.mqtt.constants import QOS_1

from .registry import Device, DeviceKey
from .topics import PROPERTY_POST, REPLY_SUFFIX, SERVICE_PREFIX, split_sys_topic, sys_topic
from .watch import Watch

_LOGGER = logging.getLogger(__name__)

CLIENT_ID = "aliyun-cloud-alink"
CODE_SUCCESS = 200
CODE_PARAMETER_ERROR = 460
CODE_NOT_JSON = 6207
CODE_NO_METHOD = 6300

# amqtt's client takes its credentials only in the broker URI, and logs that URI.
_URI_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)[^@\s]*@")


class _MaskUriPassword(logging.Filter):
    """Masks the password of URIs in amqtt client log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _URI_PASSWORD.sub(r"\1***@", message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


_MASK = _MaskUriPassword()

type UplinkKind = Literal["property_post", "event_post", "reply"]
type Payload = dict[str, Any]


@dataclass(frozen=True)
class Uplink:
    """A message a device sent to the cloud."""

    seq: int
    device: DeviceKey
    kind: UplinkKind
    topic: str
    payload: Payload | None  # None: not a JSON object
    code: int | None  # the code of the cloud's post_reply; None for a device's reply
    received: float  # the cloud's loop time on arrival, to measure a device's rate


class AlinkService:
    """The Alink service of the cloud; ``start`` connects it to the broker as the admin."""

    def __init__(self, history: int) -> None:
        self._history: deque[Uplink] = deque(maxlen=history)
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._post_cursor: dict[DeviceKey, int] = {}
        self._refusals: dict[DeviceKey, deque[tuple[int, str]]] = {}
        self._watch = Watch()
        self._client: MQTTClient | None = None
        self._receiver: asyncio.Task[None] | None = None

    async def start(self, port: int, username: str, password: str) -> None:
        """Connect to the broker and listen to every ``/sys/`` topic."""
        # Once installed, kept: it only hides passwords, of any amqtt client of the process.
        logging.getLogger("amqtt.client").addFilter(_MASK)
        client = MQTTClient(
            client_id=CLIENT_ID,
            # amqtt sends keep_alive - ping_delay: 60 s, inside Aliyun's range.
            config={"keep_alive": 61, "ping_delay": 1, "auto_reconnect": False, "plugins": {}},
        )
        user, secret = quote(username, safe=""), quote(password, safe="")
        await client.connect(f"mqtt://{user}:{secret}@127.0.0.1:{port}")
        await client.subscribe([("/sys/#", QOS_1)])
        self._client = client
        self._receiver = asyncio.create_task(self._receive(client), name="aliyun cloud alink")

    async def stop(self) -> None:
        """Disconnect."""
        receiver, client = self._receiver, self._client
        self._receiver = self._client = None
        if receiver is not None:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
        if client is not None:
            await client.disconnect()

    def uplinks(self, device: Device) -> list[Uplink]:
        """What the device sent, oldest first (bounded history)."""
        return [uplink for uplink in self._history if uplink.device == device.key]

    def forget(self) -> None:
        """Empty the history (ids and the cursors of ``wait_post`` go on)."""
        self._history.clear()

    async def request(self, device: Device, suffix: str, method: str, params: Payload) -> str:
        """Publish an Alink request on ``/sys/{pk}/{dn}/{suffix}``; returns its id."""
        msg_id = str(next(self._ids))
        payload = {"id": msg_id, "version": "1.0", "params": params, "method": method}
        await self.publish_raw(device, suffix, _encode(payload))
        return msg_id

    async def publish_raw(self, device: Device, suffix: str, payload: bytes) -> None:
        """Publish ``payload`` as it is on ``/sys/{pk}/{dn}/{suffix}`` (QoS 1)."""
        if self._client is None:
            raise RuntimeError("cloud not started")
        await self._client.publish(sys_topic(device, suffix), payload, qos=QOS_1)

    def refuse_posts(self, device: Device, code: int, message: str, count: int) -> None:
        """Answer the device's next ``count`` well-formed posts with ``code``."""
        self._refusals.setdefault(device.key, deque()).extend([(code, message)] * count)

    async def wait_post(
        self, device: Device, predicate: Callable[[Payload], bool] | None, timeout: float
    ) -> Payload:
        """The first well-formed property post after the last one returned here."""
        cursor = self._post_cursor.get(device.key, 0)

        def find() -> tuple[int, Payload] | None:
            for uplink in self._history:
                if (
                    uplink.seq > cursor
                    and uplink.device == device.key
                    and uplink.kind == "property_post"
                    and uplink.code == CODE_SUCCESS
                    and uplink.payload is not None
                    and (predicate is None or predicate(uplink.payload))
                ):
                    return uplink.seq, uplink.payload
            return None

        seq, payload = await self._watch.wait_for(find, timeout, f"property post from {device}")
        self._post_cursor[device.key] = seq
        return payload

    async def wait_reply(self, device: Device, msg_id: str, timeout: float) -> Payload:
        """The device's reply to our request ``msg_id``."""

        def find() -> Payload | None:
            for uplink in self._history:
                if (
                    uplink.device == device.key
                    and uplink.kind == "reply"
                    and uplink.payload is not None
                    and uplink.payload.get("id") == msg_id
                ):
                    return uplink.payload
            return None

        return await self._watch.wait_for(find, timeout, f"reply {msg_id} from {device}")

    async def _receive(self, client: MQTTClient) -> None:
        while True:
            message = await client.deliver_message()
            if message is not None:
                await self._on_message(client, message.topic, bytes(message.data))

    async def _on_message(self, client: MQTTClient, topic: str, data: bytes) -> None:
        split = split_sys_topic(topic)
        kind = _kind(split[1]) if split is not None else None
        if split is None or kind is None:
            return  # among them, the cloud's own requests and replies echoed back
        received = asyncio.get_running_loop().time()
        payload = _decode(data)
        if kind == "reply":
            uplink = Uplink(next(self._seq), split[0], kind, topic, payload, None, received)
            await self._record(uplink)
            return
        code, message = _check_request(payload)
        refusals = self._refusals.get(split[0])
        if code == CODE_SUCCESS and refusals:
            code, message = refusals.popleft()
        await self._record(Uplink(next(self._seq), split[0], kind, topic, payload, code, received))
        if code != CODE_SUCCESS:
            _LOGGER.warning("Malformed post on %s: %s", topic, message)
        if payload is None or _wants_reply(payload):
            reply: Payload = {
                "id": payload.get("id", "") if payload else "",
                "code": code,
                "data": {},
                "message": message,
                "version": "1.0",
            }
            if payload is not None and isinstance(payload.get("method"), str):
                reply["method"] = payload["method"]
            await client.publish(f"{topic}{REPLY_SUFFIX}", _encode(reply), qos=QOS_1)

    async def _record(self, uplink: Uplink) -> None:
        self._history.append(uplink)
        await self._watch.changed()


def _kind(suffix: str) -> UplinkKind | None:
    if suffix == PROPERTY_POST:
        return "property_post"
    if suffix.startswith("thing/event/") and suffix.endswith("/post"):
        return "event_post"
    if suffix.startswith(SERVICE_PREFIX) and suffix.endswith(REPLY_SUFFIX):
        return "reply"
    return None


def _check_request(payload: Payload | None) -> tuple[int, str]:
    """The code and message the cloud answers a post with."""
    if payload is None:
        return CODE_NOT_JSON, "request payload is not a JSON object"
    if not isinstance(payload.get("method"), str):
        return CODE_NO_METHOD, "method missing"
    msg_id = payload.get("id")
    if not isinstance(msg_id, str) or not msg_id.isdecimal():
        return CODE_PARAMETER_ERROR, "id must be a decimal string"
    if not isinstance(payload.get("params"), dict):
        return CODE_PARAMETER_ERROR, "params must be an object"
    return CODE_SUCCESS, "success"


def _wants_reply(payload: Payload) -> bool:
    """Aliyun skips the reply when the request says ``"sys":{"ack":0}``."""
    sys = payload.get("sys")
    return not (isinstance(sys, dict) and sys.get("ack") == 0)


def _decode(data: bytes) -> Payload | None:
    try:
        payload = json.loads(data)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _encode(payload: Payload) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()

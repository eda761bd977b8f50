"""Alink JSON: the topics of a device, and the messages it sends and receives.

Names topics, classifies inbound ones and encodes/decodes payloads; publishing and
subscribing belong to the session layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
import json
from typing import NoReturn, cast

from .errors import AtError
from .tsl import PROPERTY_POST

ALINK_VERSION = "1.0"
# Refuse oversized payloads before parsing them: Alink messages are a few hundred bytes.
MAX_PAYLOAD = 64 * 1024
MAX_MESSAGE_ID = 4_294_967_295


class AlinkCode(IntEnum):
    """Reply codes of Alink (device-defined errors are 100000-110000)."""

    SUCCESS = 200
    REQUEST_ERROR = 400
    THROTTLED = 429
    PARAM_ERROR = 460
    INTERNAL_ERROR = 500


_MESSAGES: dict[int, str] = {
    AlinkCode.SUCCESS: "success",
    AlinkCode.REQUEST_ERROR: "request error",
    AlinkCode.THROTTLED: "too many requests",
    AlinkCode.PARAM_ERROR: "request parameter error",
    AlinkCode.INTERNAL_ERROR: "internal error",
}


class AlinkError(AtError, ValueError):
    """A payload is not a well-formed Alink message."""


def _level(value: str, what: str) -> str:
    """A single topic level: anything else would change which topics are meant."""
    if not value or any(c in value for c in "/+#"):
        raise ValueError(f"the {what} must be a non-empty topic level without '/', '+' or '#'")
    return value


@dataclass(frozen=True)
class Topics:
    """The Alink topics of one device, all under ``/sys/{pk}/{dn}/``."""

    product_key: str
    device_name: str

    def __post_init__(self) -> None:
        _level(self.product_key, "product key")
        _level(self.device_name, "device name")

    @property
    def base(self) -> str:
        return f"/sys/{self.product_key}/{self.device_name}/"

    @property
    def property_post(self) -> str:
        return f"{self.base}thing/event/property/post"

    @property
    def property_post_reply(self) -> str:
        return f"{self.property_post}_reply"

    @property
    def property_set(self) -> str:
        return f"{self.base}thing/service/property/set"

    @property
    def property_set_reply(self) -> str:
        return f"{self.property_set}_reply"

    def event_post(self, event_id: str) -> str:
        return f"{self.base}thing/event/{_level(event_id, 'event id')}/post"

    def event_post_reply(self, event_id: str) -> str:
        return f"{self.event_post(event_id)}_reply"

    def service(self, service_id: str) -> str:
        return f"{self.base}thing/service/{_level(service_id, 'service id')}"

    def service_reply(self, service_id: str) -> str:
        return f"{self.service(service_id)}_reply"

    @property
    def rrpc_request_prefix(self) -> str:
        return f"{self.base}rrpc/request/"

    def rrpc_response(self, message_id: str) -> str:
        return f"{self.base}rrpc/response/{_level(message_id, 'message id')}"

    def subscriptions(self) -> tuple[str, ...]:
        """What the device subscribes to; some modules allow only a few subscriptions.

        ``thing/event/+/post_reply`` also covers the property post reply, so that one is not
        subscribed on its own: overlapping subscriptions may deliver a message twice.
        """
        return (
            self.property_set,
            f"{self.base}thing/event/+/post_reply",
            f"{self.base}thing/service/+",
            f"{self.rrpc_request_prefix}+",
        )


@dataclass(frozen=True)
class PropertySet:
    """The cloud sets properties."""


@dataclass(frozen=True)
class PropertyPostReply:
    """The cloud answers a property post."""


@dataclass(frozen=True)
class EventPostReply:
    """The cloud answers an event post."""

    event_id: str


@dataclass(frozen=True)
class ServiceCall:
    """The cloud calls an asynchronous service."""

    service_id: str


@dataclass(frozen=True)
class RrpcRequest:
    """The cloud calls a synchronous service and waits for the answer on the RRPC topic."""

    message_id: str


@dataclass(frozen=True)
class NotOurs:
    """A topic outside this device's Alink topics."""


type Inbound = (
    PropertySet | PropertyPostReply | EventPostReply | ServiceCall | RrpcRequest | NotOurs
)


def classify(topics: Topics, topic: str) -> Inbound:
    """What an inbound topic is."""
    if not topic.startswith(topics.base):
        return NotOurs()
    match topic.removeprefix(topics.base).split("/"):
        case ["thing", "service", "property", "set"]:
            return PropertySet()
        case ["thing", "event", "property", "post_reply"]:
            return PropertyPostReply()
        case ["thing", "event", event_id, "post_reply"] if event_id:
            return EventPostReply(event_id)
        # "{service}_reply" is where a device answers, never a call.
        case ["thing", "service", service_id] if service_id and not service_id.endswith("_reply"):
            return ServiceCall(service_id)
        case ["rrpc", "request", message_id] if message_id:
            return RrpcRequest(message_id)
    return NotOurs()


class MessageIds:
    """Ids of upstream requests: decimal strings 1..4294967295, wrapping around."""

    def __init__(self, start: int = 1) -> None:
        if not 1 <= start <= MAX_MESSAGE_ID:
            raise ValueError(f"the first message id must be from 1 to {MAX_MESSAGE_ID}")
        self._next = start

    @classmethod
    def from_clock(cls, now_ms: int) -> MessageIds:
        """Ids that do not repeat an earlier start's (Aliyun wants them unique per device
        per day): the first is the clock in milliseconds, and a device sends far fewer than
        1000 messages a second, so the ids of every run stay behind the clock."""
        return cls(now_ms % MAX_MESSAGE_ID + 1)

    def next(self) -> str:
        value = self._next
        self._next = value + 1 if value < MAX_MESSAGE_ID else 1
        return str(value)


# --- encoders ------------------------------------------------------------------------------


def _dump(message: dict[str, object]) -> bytes:
    """Compact UTF-8 JSON; NaN and infinity are refused (``ValueError``), not sent."""
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode()


def request(msg_id: str, method: str, params: Mapping[str, object], ack: bool = True) -> bytes:
    """A request; ``ack`` asks the other side for a reply."""
    return _dump(
        {
            "id": msg_id,
            "version": ALINK_VERSION,
            "sys": {"ack": 1 if ack else 0},
            "params": dict(params),
            "method": method,
        }
    )


def property_post(msg_id: str, params: Mapping[str, object]) -> bytes:
    """Post property values (already encoded for their TSL types)."""
    return request(msg_id, PROPERTY_POST, params)


def event_post(msg_id: str, event_id: str, output: Mapping[str, object], time_ms: int) -> bytes:
    """Post an event with its output values, stamped in UTC milliseconds."""
    return request(msg_id, f"thing.event.{event_id}.post", {"value": dict(output), "time": time_ms})


def reply(
    msg_id: str,
    code: int,
    data: Mapping[str, object] | None = None,
    message: str | None = None,
) -> bytes:
    """A reply echoing the request's id; ``message`` defaults to the code's meaning."""
    if message is None:
        message = _MESSAGES.get(code, "error")
    return _dump({"id": msg_id, "code": int(code), "data": dict(data or {}), "message": message})


# --- decoders ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A request from the cloud (property set, service call, RRPC)."""

    id: str
    method: str
    params: dict[str, object]
    version: str


@dataclass(frozen=True)
class Reply:
    """The cloud's answer to one of our requests."""

    id: str
    code: int
    data: object
    message: str


def parse_request(payload: bytes) -> Request:
    """Decode a request, or raise ``AlinkError`` saying what is wrong."""
    doc = _load(payload)
    method = doc.get("method")
    if not isinstance(method, str) or not method:
        _fail("method is missing or not a non-empty string")
    params = doc.get("params")
    if not isinstance(params, dict):
        _fail("params is missing or not an object")
    version = doc.get("version", ALINK_VERSION)
    if not isinstance(version, str):
        _fail("version is not a string")
    return Request(_message_id(doc), method, cast(dict[str, object], params), version)


def parse_reply(payload: bytes) -> Reply:
    """Decode a reply, or raise ``AlinkError`` saying what is wrong."""
    doc = _load(payload)
    code = doc.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        _fail("code is missing or not an integer")
    message = doc.get("message", "")
    if not isinstance(message, str):
        _fail("message is not a string")
    return Reply(_message_id(doc), code, doc.get("data"), message)


def _fail(problem: str) -> NoReturn:
    raise AlinkError(f"malformed Alink message: {problem}")


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _load(payload: bytes) -> dict[str, object]:
    if len(payload) > MAX_PAYLOAD:
        _fail(f"{len(payload)} bytes, more than {MAX_PAYLOAD}")
    try:
        doc = json.loads(payload.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        _fail("not UTF-8")
    except RecursionError:
        _fail("nested too deeply")
    except ValueError as err:
        # The decoder says where, never what: payload text stays out of the message.
        _fail(f"not JSON ({err})")
    if not isinstance(doc, dict):
        _fail("not a JSON object")
    return cast(dict[str, object], doc)


def _message_id(doc: Mapping[str, object]) -> str:
    """The id as sent: a decimal string (an integer is kept as its decimal string)."""
    value = doc.get("id")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return value
    _fail("id is missing or not a decimal string")

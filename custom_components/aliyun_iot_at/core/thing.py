"""The device side of Alink: what the thing answers, and what it posts.

Pure protocol: no I/O. ``Thing.handle`` turns one inbound message into the replies to
publish and what changed; ``record`` and ``occurrence`` check what the device reports, and
``post_values`` and ``post_occurrence`` build the posts. The caller publishes (and decides when),
so the same logic serves Home Assistant, the CLI and the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
import logging
import time
from typing import NamedTuple

from .alink import (
    MAX_MESSAGE_ID,
    AlinkCode,
    AlinkError,
    EventPostReply,
    MessageIds,
    NotOurs,
    PropertyPostReply,
    PropertySet,
    Request,
    RrpcRequest,
    ServiceCall,
    Topics,
    classify,
    event_post,
    parse_reply,
    parse_request,
    property_post,
    reply,
)
from .dialects.base import InboundMessage
from .errors import AtError
from .tsl import (
    PROPERTY_SET,
    Event,
    Param,
    Service,
    ThingModel,
    TypeSpec,
    encode_value,
    validate_value,
)

_LOGGER = logging.getLogger(__name__)

# Posts whose reply is still awaited; replies can be lost (QoS 0, a dropped link), so the
# oldest are forgotten beyond this many.
MAX_PENDING = 64


class Publish(NamedTuple):
    """A message to publish."""

    topic: str
    payload: bytes


@dataclass(frozen=True)
class ServiceCalled:
    """The cloud called one of the model's services; ``params`` are its checked inputs."""

    service: Service
    message_id: str
    params: dict[str, object]


@dataclass(frozen=True)
class PostRefused:
    """The cloud answered one of our posts with an error code."""

    message_id: str
    what: str
    code: int
    message: str


@dataclass(frozen=True)
class Occurrence:
    """A model event that happened: its checked output values, and when (UTC ms)."""

    event_id: str
    output: dict[str, object]
    time_ms: int


@dataclass(frozen=True)
class Outcome:
    """What one inbound message led to.

    ``publish``: the replies to send, in order; ``changes``: the property values a set
    applied, which the device then reports back as a real one does (the caller posts them,
    so they coalesce with other changes); ``service_call`` and ``refused`` when that is what
    came.
    """

    publish: tuple[Publish, ...] = ()
    changes: dict[str, object] = field(default_factory=dict)
    service_call: ServiceCalled | None = None
    refused: PostRefused | None = None


class InvalidValues(AtError, ValueError):
    """Values the thing model does not allow; nothing was applied or built."""


class _BadRequest(Exception):
    """A request that is not for this device as it is (answered 400, nothing applied)."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Thing:
    """One device's Alink state: its property values and the posts awaiting a reply."""

    def __init__(
        self,
        model: ThingModel,
        topics: Topics,
        *,
        ids: MessageIds | None = None,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.model = model
        self.topics = topics
        self._ids = ids or MessageIds.from_clock(clock())
        self._clock = clock
        self._values: dict[str, object] = {}
        self._pending: dict[str, str] = {}

    @property
    def values(self) -> Mapping[str, object]:
        """The last known value of each property (checked Python values; a date is ms)."""
        return self._values

    # --- inbound ----------------------------------------------------------------------------

    def handle(self, message: InboundMessage) -> Outcome:
        """Answer one inbound message; never raises (a bad message is logged and dropped)."""
        try:
            return self._handle(message)
        except Exception:  # a bug here must not stop the link's message dispatch
            _LOGGER.exception("failed to handle a message on %s", message.topic)
            return Outcome()

    def _handle(self, message: InboundMessage) -> Outcome:
        topics = self.topics
        match classify(topics, message.topic):
            case PropertySet():
                return self._answer(message, topics.property_set_reply, self._property_set)
            case ServiceCall(service_id):
                return self._answer(
                    message,
                    topics.service_reply(service_id),
                    lambda request: self._service_call(request, service_id),
                )
            case RrpcRequest(message_id):
                return self._answer(message, topics.rrpc_response(message_id), self._rrpc)
            case PropertyPostReply() | EventPostReply():
                return self._reply(message)
            case NotOurs():
                _LOGGER.debug("dropped a message on a topic that is not ours: %s", message.topic)
        return Outcome()

    def _answer(
        self, message: InboundMessage, reply_topic: str, act: Callable[[Request], Outcome]
    ) -> Outcome:
        """Decode a request, act on it and answer on ``reply_topic``: 200, or the code of
        the refusal (then nothing was applied)."""
        try:
            request = parse_request(message.payload)
        except AlinkError as err:
            # Without a well-formed id there is nothing to answer.
            _LOGGER.warning("dropped a request on %s: %s", message.topic, err)
            return Outcome()
        try:
            outcome = act(request)
        except _BadRequest as err:
            code, text = AlinkCode.REQUEST_ERROR, str(err)
        except InvalidValues as err:
            code, text = AlinkCode.PARAM_ERROR, str(err)
        except Exception:  # a bug: the cloud must still hear that nothing was done
            _LOGGER.exception("failed to act on %s", request.method)
            code, text = AlinkCode.INTERNAL_ERROR, "internal error"
        else:
            answer = Publish(reply_topic, reply(request.id, AlinkCode.SUCCESS))
            return replace(outcome, publish=(answer, *outcome.publish))
        _LOGGER.info("refused %s with %d: %s", request.method, code, text)
        return Outcome((Publish(reply_topic, reply(request.id, code, message=text)),))

    def _rrpc(self, request: Request) -> Outcome:
        """A synchronous call: a property set or a service, as its method says."""
        if request.method == PROPERTY_SET:
            return self._property_set(request)
        return self._service_call(request, None)

    def _property_set(self, request: Request) -> Outcome:
        """Check every value first, then apply them all: nothing is applied partially."""
        if request.method != PROPERTY_SET:
            raise _BadRequest(f"method {request.method} is not {PROPERTY_SET}")

        def settable(identifier: str) -> TypeSpec | str:
            prop = self.model.property(identifier)
            if prop is None:
                return "not a property of the thing model"
            return prop.data_type if prop.writable else "read-only"

        changes = _check(request.params, settable)
        self._values.update(changes)
        return Outcome(changes=changes)

    def _service_call(self, request: Request, service_id: str | None) -> Outcome:
        """A model service, found by its topic (async) or its method (RRPC)."""
        services = self.model.custom_services
        if service_id is None:
            service = next((s for s in services if s.method == request.method), None)
        else:
            service = next((s for s in services if s.identifier == service_id), None)
        if service is None:
            name = request.method if service_id is None else service_id
            raise _BadRequest(f"{name}: not a service of the thing model")
        if request.method != service.method:
            raise _BadRequest(f"method {request.method} is not {service.method}")
        params = _check(request.params, _lookup(service.input, "an input of the service"))
        return Outcome(service_call=ServiceCalled(service, request.id, params))

    def _reply(self, message: InboundMessage) -> Outcome:
        try:
            answer = parse_reply(message.payload)
        except AlinkError as err:
            _LOGGER.warning("dropped a reply on %s: %s", message.topic, err)
            return Outcome()
        what = self._pending.pop(answer.id, None)
        if what is None:
            _LOGGER.debug("dropped a reply to an unknown post %s", answer.id)
            return Outcome()
        if answer.code == AlinkCode.SUCCESS:
            return Outcome()
        _LOGGER.warning(
            "the cloud refused the %s (id %s): %s %s", what, answer.id, answer.code, answer.message
        )
        return Outcome(refused=PostRefused(answer.id, what, answer.code, answer.message))

    # --- outbound ---------------------------------------------------------------------------

    def record(self, values: Mapping[str, object]) -> dict[str, object]:
        """Record ``values`` as the device's; the checked values. ``InvalidValues`` (and
        nothing recorded) when one is not a property of the model or not of its type."""
        if not values:
            raise InvalidValues("no property values to post")

        def known(identifier: str) -> TypeSpec | str:
            prop = self.model.property(identifier)
            return "not a property of the thing model" if prop is None else prop.data_type

        checked = _check(values, known)
        self._values.update(checked)
        return checked

    def post_properties(self, values: Mapping[str, object]) -> Publish:
        """Record ``values`` as the device's and build their post at once."""
        return self.post_values(self.record(values))

    def restore(self, values: Mapping[str, object]) -> dict[str, object]:
        """Take values known from before (a restart) without posting them; the ones taken.
        A value already known, no longer in the model or no longer valid is left out."""
        taken: dict[str, object] = {}
        for identifier, raw in values.items():
            prop = self.model.property(identifier)
            if prop is None or identifier in self._values:
                continue
            try:
                taken[identifier] = validate_value(prop.data_type, raw)
            except ValueError as err:
                _LOGGER.debug("not restoring %s: %s", identifier, err)
        self._values.update(taken)
        return taken

    def post_values(self, values: Mapping[str, object]) -> Publish:
        """The property post of values already checked (by ``record``, ``restore`` or a set)."""
        encoded = self._encoded(values)
        msg_id = self._ids.next()
        self._remember(msg_id, f"property post ({', '.join(encoded)})")
        return Publish(self.topics.property_post, property_post(msg_id, encoded))

    def post_values_size(self, values: Mapping[str, object]) -> int:
        """The most bytes ``post_values(values)`` takes, whatever its message id."""
        return len(property_post(str(MAX_MESSAGE_ID), self._encoded(values)))

    def occurrence(
        self, event_id: str, output: Mapping[str, object], time_ms: int | None = None
    ) -> Occurrence:
        """A model event with its checked output values, stamped now unless ``time_ms``;
        ``InvalidValues`` when the event or an output is not in the model or a value is not
        of its type."""
        event = self._event(event_id)
        checked = _check(output, _lookup(event.output, "an output of the event"))
        return Occurrence(event.identifier, checked, self._clock() if time_ms is None else time_ms)

    def post_occurrence(self, occurrence: Occurrence) -> Publish:
        """The post of an event that happened."""
        event = self._event(occurrence.event_id)
        specs = {p.identifier: p.data_type for p in event.output}
        encoded = {key: encode_value(specs[key], v) for key, v in occurrence.output.items()}
        msg_id = self._ids.next()
        payload = event_post(msg_id, event.identifier, encoded, occurrence.time_ms)
        self._remember(msg_id, f"event {event.identifier}")
        return Publish(self.topics.event_post(event.identifier), payload)

    def post_event(self, event_id: str, output: Mapping[str, object]) -> Publish:
        """Build the post of a model event happening now (see ``occurrence``)."""
        return self.post_occurrence(self.occurrence(event_id, output))

    def _event(self, event_id: str) -> Event:
        event = next((e for e in self.model.custom_events if e.identifier == event_id), None)
        if event is None:
            raise InvalidValues(f"{event_id}: not an event of the thing model")
        return event

    def _encoded(self, values: Mapping[str, object]) -> dict[str, object]:
        encoded: dict[str, object] = {}
        for key, value in values.items():
            prop = self.model.property(key)
            assert prop is not None  # checked by the caller
            encoded[key] = encode_value(prop.data_type, value)
        return encoded

    def _remember(self, msg_id: str, what: str) -> None:
        self._pending.pop(msg_id, None)  # ids wrap around: a reused id is a new post
        self._pending[msg_id] = what
        while len(self._pending) > MAX_PENDING:
            del self._pending[next(iter(self._pending))]


def _lookup(params: Sequence[Param], what: str) -> Callable[[str], TypeSpec | str]:
    """The type of a parameter by identifier, or what is wrong with the identifier."""
    specs = {p.identifier: p.data_type for p in params}
    return lambda identifier: specs.get(identifier, f"not {what}")


def _check(
    values: Mapping[str, object], spec_of: Callable[[str], TypeSpec | str]
) -> dict[str, object]:
    """``values`` checked one by one; ``InvalidValues`` naming every problem."""
    checked: dict[str, object] = {}
    problems: list[str] = []
    for identifier, raw in values.items():
        spec = spec_of(identifier)
        if isinstance(spec, str):
            problems.append(f"{identifier}: {spec}")
            continue
        try:
            checked[identifier] = validate_value(spec, raw)
        except ValueError as err:
            problems.append(f"{identifier}: {err}")
    if problems:
        raise InvalidValues("; ".join(problems))
    return checked

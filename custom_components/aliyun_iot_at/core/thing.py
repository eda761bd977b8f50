"""The device side of Alink: what the thing answers, and what it posts.

Pure protocol: no I/O. ``Thing.handle`` turns one inbound message into the messages to
publish and what changed; ``post_properties`` and ``post_event`` build checked posts. The
caller publishes, so the same logic serves Home Assistant, the CLI and the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
import logging
import time
from typing import NamedTuple

from .alink import (
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
from .tsl import PROPERTY_SET, Param, Service, ThingModel, TypeSpec, encode_value, validate_value

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
class Outcome:
    """What one inbound message led to.

    ``publish``: replies (and a post of the new values) to send, in order; ``changes``: the
    property values a set applied; ``service_call`` and ``refused`` when that is what came.
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
        self._ids = ids or MessageIds()
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
        # The device reports its new state, as a real one does after acting on a set.
        return Outcome((self._post(changes),) if changes else (), changes=changes)

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

    def post_properties(self, values: Mapping[str, object]) -> Publish:
        """Record ``values`` as the device's and build their post; ``InvalidValues`` (and
        nothing recorded) when one is not a property of the model or not of its type."""
        if not values:
            raise InvalidValues("no property values to post")

        def known(identifier: str) -> TypeSpec | str:
            prop = self.model.property(identifier)
            return "not a property of the thing model" if prop is None else prop.data_type

        checked = _check(values, known)
        self._values.update(checked)
        return self._post(checked)

    def restore(self, values: Mapping[str, object]) -> None:
        """Take values known from before (a restart) without posting them; a value already
        known, no longer in the model or no longer valid is left out."""
        for identifier, raw in values.items():
            prop = self.model.property(identifier)
            if prop is None or identifier in self._values:
                continue
            try:
                self._values[identifier] = validate_value(prop.data_type, raw)
            except ValueError as err:
                _LOGGER.debug("not restoring %s: %s", identifier, err)

    def post_current(self) -> Publish | None:
        """A post of every known value (after a reconnect, so the cloud is in step)."""
        return self._post(dict(self._values)) if self._values else None

    def post_event(self, event_id: str, output: Mapping[str, object]) -> Publish:
        """Build the post of a model event with its output values; ``InvalidValues`` when the
        event or an output is not in the model or a value is not of its type."""
        event = next((e for e in self.model.custom_events if e.identifier == event_id), None)
        if event is None:
            raise InvalidValues(f"{event_id}: not an event of the thing model")
        specs = {p.identifier: p.data_type for p in event.output}
        checked = _check(output, _lookup(event.output, "an output of the event"))
        encoded = {key: encode_value(specs[key], value) for key, value in checked.items()}
        msg_id = self._ids.next()
        payload = event_post(msg_id, event.identifier, encoded, self._clock())
        self._remember(msg_id, f"event {event.identifier}")
        return Publish(self.topics.event_post(event.identifier), payload)

    def _post(self, values: Mapping[str, object]) -> Publish:
        """The property post of values already checked."""
        encoded: dict[str, object] = {}
        for key, value in values.items():
            prop = self.model.property(key)
            assert prop is not None  # checked by the caller
            encoded[key] = encode_value(prop.data_type, value)
        msg_id = self._ids.next()
        self._remember(msg_id, f"property post ({', '.join(encoded)})")
        return Publish(self.topics.property_post, property_post(msg_id, encoded))

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

"""What waits to go up to the cloud, and the one sender everything goes up through.

Aliyun drops what a device sends beyond 30 messages a second, and the link of a cheap module
comes and goes. So every upstream message (replies, property posts, event posts) goes through
``Sender``: never more than ``rate`` messages in any one second, every pending property change
in one post, events in order, and whatever the link or the module failed to send kept until
it goes out. A change goes up as soon as the line and the rate allow: whatever changes while a
publish is on the line, or while the rate holds the next one back, goes in the next post.
``Outbox`` is what waits: bounded, and saved and restored by the caller.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
import contextlib
from dataclasses import dataclass
from enum import Enum
from functools import partial
import logging
from typing import Any

from .errors import AtError, UnsafeValue
from .thing import InvalidValues, Occurrence, Publish, Thing

_LOGGER = logging.getLogger(__name__)

# Aliyun's limit is 30 upstream messages a second per device: stay well below it.
DEFAULT_RATE = 20
# Seconds before a failed publish is tried again: soon at first, then rarely.
DEFAULT_RETRY = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# Events (a few hundred bytes each) kept while the link is down; replies are few and brief.
MAX_EVENTS = 500
MAX_REPLIES = 32


@dataclass(frozen=True)
class UplinkSettings:
    """How the sender paces what goes up, and how much may wait."""

    rate: int = DEFAULT_RATE
    retry: tuple[float, ...] = DEFAULT_RETRY
    max_events: int = MAX_EVENTS
    max_replies: int = MAX_REPLIES


class BoundedQueue[T]:
    """Oldest first; when full, the oldest is dropped (logged once until the queue empties)."""

    def __init__(self, what: str, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"at least one of the {what} must fit")
        self._what = what
        self._limit = limit
        self._items: deque[T] = deque()
        self._dropping = False

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)

    def put(self, item: T) -> None:
        """Add ``item`` as the newest."""
        if len(self._items) >= self._limit:
            self._items.popleft()
            self._dropped()
        self._items.append(item)

    def take(self) -> T:
        """Remove and return the oldest."""
        item = self._items.popleft()
        if not self._items:
            self._dropping = False
        return item

    def give_back(self, item: T) -> None:
        """Put back what ``take`` returned: the oldest again, so dropped first if full."""
        if len(self._items) >= self._limit:
            self._dropped()
            return
        self._items.appendleft(item)

    def _dropped(self) -> None:
        if not self._dropping:
            self._dropping = True
            _LOGGER.warning(
                "more than %d %s wait to be sent: dropping the oldest", self._limit, self._what
            )


class Outbox:
    """What waits to go up: the latest value of each changed property (bounded by the thing
    model), events and replies in order (bounded, the oldest dropped first)."""

    def __init__(self, max_events: int = MAX_EVENTS, max_replies: int = MAX_REPLIES) -> None:
        self.properties: dict[str, object] = {}
        self.events: BoundedQueue[Occurrence] = BoundedQueue("events", max_events)
        self.replies: BoundedQueue[Publish] = BoundedQueue("replies", max_replies)

    def __len__(self) -> int:
        return len(self.properties) + len(self.events) + len(self.replies)

    @property
    def durable(self) -> bool:
        """Whether it holds what is worth keeping across a restart (values, events)."""
        return bool(self.properties or self.events)

    def put_properties(self, values: Mapping[str, object]) -> None:
        """Values to post; a value still waiting is replaced by the newer one."""
        self.properties.update(values)

    def take_properties(self, fits: Callable[[Mapping[str, object]], bool]) -> dict[str, object]:
        """The waiting values, as many as ``fits`` one post (at least one)."""
        if fits(self.properties):
            taken, self.properties = self.properties, {}
            return taken
        taken = {}
        for key, value in self.properties.items():
            if taken and not fits({**taken, key: value}):
                break
            taken[key] = value
        for key in taken:
            del self.properties[key]
        return taken

    def give_back_properties(self, values: Mapping[str, object]) -> None:
        """Values a failed post carried: waiting again, unless a newer value is waiting."""
        self.properties = {**values, **self.properties}

    def snapshot(self) -> dict[str, Any]:
        """What outlives a restart, as JSON-ready data. Replies do not: by then the cloud has
        given up waiting for them."""
        return {
            "properties": dict(self.properties),
            "events": [
                {"event": o.event_id, "output": o.output, "time": o.time_ms} for o in self.events
            ],
        }

    def restore(self, snapshot: object, thing: Thing) -> None:
        """Take back a ``snapshot``, checked against the thing model as it is now (it may have
        changed meanwhile): what no longer fits is left out. The thing takes the values too."""
        if not isinstance(snapshot, Mapping):
            return
        properties = snapshot.get("properties")
        if isinstance(properties, Mapping):
            self.put_properties(thing.restore(properties))
        events = snapshot.get("events")
        for entry in events if isinstance(events, list) else ():
            try:
                self.events.put(_occurrence(entry, thing))
            except (InvalidValues, TypeError) as err:
                _LOGGER.debug("not restoring a saved event: %s", err)


def _occurrence(entry: object, thing: Thing) -> Occurrence:
    """An event of a snapshot; ``TypeError`` when it is not shaped like one."""
    match entry:
        case {"event": str(event_id), "output": dict(output), "time": int(time_ms)}:
            return thing.occurrence(event_id, output, time_ms)
    raise TypeError("not an event entry")


class RateLimit:
    """At most ``count`` messages in any ``period`` seconds (a sliding window).

    A message leaves the module somewhere between the start and the end of its publish, so a
    publish starts only ``period`` after the end of the ``count``-th before it: then no
    window holds more than ``count``, wherever in its publish each one left.
    """

    def __init__(self, count: int, period: float = 1.0) -> None:
        if count < 1:
            raise ValueError("the rate must allow at least one message")
        self._period = period
        self._ends: deque[float] = deque(maxlen=count)

    async def wait(self) -> None:
        """Until one more publish may start."""
        if len(self._ends) == self._ends.maxlen:
            delay = self._ends[0] + self._period - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)

    def done(self) -> None:
        """A publish ended, whether the message went or not."""
        self._ends.append(asyncio.get_running_loop().time())


type PublishFn = Callable[[str, bytes], Awaitable[None]]


class _Kind(Enum):
    REPLY = "reply"
    PROPERTIES = "properties"
    EVENT = "event"


class Sender:
    """The one way up: paced by ``RateLimit``, coalescing property changes, retrying.

    The owner says when the link is up (``link_up``/``link_down``); the sender waits on an
    event, never polls. Kinds of message take turns, so none starves the others.
    """

    def __init__(
        self,
        thing: Thing,
        publish: PublishFn,
        *,
        settings: UplinkSettings | None = None,
        max_payload: int | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        settings = settings or UplinkSettings()
        if not settings.retry:
            raise ValueError("at least one retry delay is needed")
        self.outbox = Outbox(settings.max_events, settings.max_replies)
        self._thing = thing
        self._publish = publish
        self._settings = settings
        self._max_payload = max_payload
        self._on_change = on_change
        self._limit = RateLimit(settings.rate)
        self._wake = asyncio.Event()
        self._reconnected = asyncio.Event()
        self._up = False
        self._ups = 0  # how many times the link came up: a retry need not wait for an older one
        self._failures = 0
        self._turn = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def held_back(self) -> bool:
        """Whether something waits and cannot go now: the link is down or the last attempt
        failed."""
        return bool(self.outbox) and (not self._up or self._failures > 0)

    # --- what goes up ----------------------------------------------------------------------

    def post_properties(self, values: Mapping[str, object]) -> None:
        """Post checked property values (coalesced with those still waiting)."""
        if values:
            self.outbox.put_properties(values)
            self._changed()

    def post_event(self, occurrence: Occurrence) -> None:
        """Post an event, after those still waiting."""
        self.outbox.events.put(occurrence)
        self._changed()

    def reply(self, message: Publish) -> None:
        """Send a reply to the cloud."""
        self.outbox.replies.put(message)
        self._changed()

    # --- the link --------------------------------------------------------------------------

    def link_up(self) -> None:
        """The link can publish: send what waits."""
        self._up = True
        self._ups += 1
        self._failures = 0
        self._reconnected.set()
        self._wake.set()

    def link_down(self) -> None:
        """The link cannot publish: hold everything."""
        self._up = False
        self._notify()

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Send in the background until ``stop``."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="aliyun_iot_at sender"
            )

    async def stop(self) -> None:
        """Stop sending; what waits stays in the outbox."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            kind = self._next_kind() if self._up else None
            if kind is None:
                await self._wake.wait()
                continue
            # Changes made meanwhile join the post: it takes the values when it goes.
            await self._limit.wait()
            await self._send(kind)

    def _next_kind(self) -> _Kind | None:
        """The next kind with something waiting, taking turns."""
        kinds = list(_Kind)
        for step in range(len(kinds)):
            index = (self._turn + step) % len(kinds)
            if self._waiting(kinds[index]):
                self._turn = index + 1
                return kinds[index]
        return None

    def _waiting(self, kind: _Kind) -> bool:
        outbox = self.outbox
        match kind:
            case _Kind.REPLY:
                return bool(outbox.replies)
            case _Kind.PROPERTIES:
                return bool(outbox.properties)
            case _Kind.EVENT:
                return bool(outbox.events)

    async def _send(self, kind: _Kind) -> None:
        outbox = self.outbox
        give_back: Callable[[], None]
        match kind:
            case _Kind.REPLY:
                message = outbox.replies.take()
                give_back = partial(outbox.replies.give_back, message)
            case _Kind.PROPERTIES:
                values = outbox.take_properties(self._fits)
                message = self._thing.post_values(values)
                give_back = partial(outbox.give_back_properties, values)
            case _Kind.EVENT:
                occurrence = outbox.events.take()
                message = self._thing.post_occurrence(occurrence)
                give_back = partial(outbox.events.give_back, occurrence)
        ups = self._ups
        try:
            done = await self._publish_once(message)
        except asyncio.CancelledError:
            give_back()  # stopped mid-publish: saved with the rest, sent after a restart
            raise
        if done:
            self._failures = 0
            self._notify()
            return
        give_back()
        self._failures += 1
        self._notify()
        await self._back_off(ups)

    async def _publish_once(self, message: Publish) -> bool:
        """Publish; False when it failed and is worth another try (True: sent, or dropped as
        something this module can never carry)."""
        try:
            await self._publish(message.topic, message.payload)
        except UnsafeValue as err:
            # It can never go through this module: keeping it would block what follows.
            _LOGGER.warning("dropped a message to %s: %s", message.topic, err)
        except AtError as err:
            _LOGGER.debug("not sent to %s (kept for later): %s", message.topic, err)
            return False
        finally:
            self._limit.done()
        return True

    def _fits(self, values: Mapping[str, object]) -> bool:
        limit = self._max_payload
        return limit is None or self._thing.post_values_size(values) <= limit

    async def _back_off(self, ups: int) -> None:
        """Wait before trying again, less if the link comes back meanwhile."""
        if self._ups != ups:
            return  # it came back while the attempt failed: try at once
        delays = self._settings.retry
        self._reconnected.clear()
        await _wait(self._reconnected, delays[min(self._failures, len(delays)) - 1])

    def _changed(self) -> None:
        self._wake.set()
        self._notify()

    def _notify(self) -> None:
        if self._on_change is not None:
            self._on_change()


async def _wait(event: asyncio.Event, timeout: float | None) -> None:
    """Until ``event`` is set, or ``timeout`` seconds (None: no limit) have passed."""
    if timeout is None:
        await event.wait()
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()

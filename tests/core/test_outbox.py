"""The outbox and the sender: coalescing, bounds, saving, pacing and retries.

The link is a recording stand-in here, so pacing can be measured exactly; the sender against
the emulated module and the cloud is in tests/integration/test_outbox.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
import json
import logging
from typing import Any

import pytest

from custom_components.aliyun_iot_at.core.alink import Topics
from custom_components.aliyun_iot_at.core.errors import (
    AtError,
    NotConnected,
    PortError,
    PublishFailed,
    UnsafeValue,
)
from custom_components.aliyun_iot_at.core.outbox import (
    DEFAULT_RATE,
    BoundedQueue,
    Outbox,
    RateLimit,
    Sender,
    UplinkSettings,
)
from custom_components.aliyun_iot_at.core.thing import Occurrence, Publish, Thing
from custom_components.aliyun_iot_at.core.tsl import parse_thing_model

TOPICS = Topics("a1FPRUWiCPA", "lamp1")
PROPERTY_POST = TOPICS.property_post
MODEL = parse_thing_model(
    {
        "properties": [
            {
                "identifier": f"P{i}",
                "name": f"P{i}",
                "accessMode": "rw",
                "dataType": {"type": "int", "specs": {"min": "0", "max": "100000"}},
            }
            for i in range(10)
        ]
        + [
            {
                "identifier": "Note",
                "name": "Note",
                "accessMode": "rw",
                "dataType": {"type": "text", "specs": {"length": "2048"}},
            }
        ],
        "events": [
            {
                "identifier": "Tick",
                "outputData": [
                    {"identifier": "Seq", "dataType": {"type": "int", "specs": {}}},
                ],
            }
        ],
    }
)
# Short enough for the tests, the same shape as the defaults.
FAST = UplinkSettings(rate=10, retry=(0.05,), max_events=50, max_replies=8)


def make_thing() -> Thing:
    return Thing(MODEL, TOPICS, clock=lambda: 1_700_000_000_000)


def tick(thing: Thing, seq: int) -> Occurrence:
    return thing.occurrence("Tick", {"Seq": seq})


# --- the outbox ----------------------------------------------------------------------------


def test_the_latest_value_of_each_property_waits() -> None:
    outbox = Outbox()
    outbox.put_properties({"P0": 1})
    outbox.put_properties({"P1": 2})
    outbox.put_properties({"P0": 3})

    assert outbox.take_properties(lambda values: True) == {"P0": 3, "P1": 2}
    assert not outbox.durable
    assert len(outbox) == 0


def test_values_that_do_not_fit_one_post_wait_for_the_next() -> None:
    outbox = Outbox()
    outbox.put_properties({f"P{i}": i for i in range(5)})

    assert outbox.take_properties(lambda values: len(values) <= 2) == {"P0": 0, "P1": 1}
    # One that fits nothing still goes (alone): it is refused where it cannot be carried.
    assert outbox.take_properties(lambda values: False) == {"P2": 2}
    assert outbox.properties == {"P3": 3, "P4": 4}


def test_values_of_a_failed_post_wait_again_unless_newer_ones_wait() -> None:
    outbox = Outbox()
    outbox.put_properties({"P0": 1, "P1": 2})
    taken = outbox.take_properties(lambda values: True)
    outbox.put_properties({"P0": 5})

    outbox.give_back_properties(taken)

    assert outbox.properties == {"P0": 5, "P1": 2}


def test_a_full_queue_drops_the_oldest_and_says_so_once_per_backlog(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue: BoundedQueue[int] = BoundedQueue("events", 3)
    with caplog.at_level(logging.WARNING):
        for item in range(6):
            queue.put(item)
        assert list(queue) == [3, 4, 5]
        assert len(caplog.records) == 1
        assert "more than 3 events" in caplog.records[0].getMessage()

        # Given back to a full queue, the oldest is the one dropped.
        oldest = queue.take()
        queue.put(6)
        queue.give_back(oldest)
        assert list(queue) == [4, 5, 6]
        assert len(caplog.records) == 1

        while queue:
            queue.take()
        for item in range(4):
            queue.put(item)
    # A new backlog is reported again.
    assert len(caplog.records) == 2


def test_memory_stays_bounded_however_long_the_link_is_down() -> None:
    thing = make_thing()
    outbox = Outbox(max_events=50, max_replies=8)
    for seq in range(10_000):
        outbox.put_properties({f"P{seq % 10}": seq})
        outbox.events.put(tick(thing, seq))
        outbox.replies.put(Publish("t", b"{}"))

    assert (len(outbox.properties), len(outbox.events), len(outbox.replies)) == (10, 50, 8)
    assert [o.output["Seq"] for o in outbox.events] == list(range(9950, 10_000))


def test_a_snapshot_restores_what_still_fits_the_model() -> None:
    thing = make_thing()
    outbox = Outbox()
    outbox.put_properties({"P0": 7, "Note": "hi"})
    outbox.events.put(tick(thing, 1))
    outbox.events.put(tick(thing, 2))
    outbox.replies.put(Publish("t", b"{}"))
    # Through JSON, as storage keeps it.
    saved: dict[str, Any] = json.loads(json.dumps(outbox.snapshot()))
    saved["properties"] |= {"Gone": 1, "P1": "not a number"}
    saved["events"] += [
        {"event": "Gone", "output": {}, "time": 1},
        {"event": "Tick", "output": {"Seq": "x"}, "time": 1},
        {"event": "Tick", "output": {"Seq": 3}},
        "junk",
    ]

    restored = Outbox()
    later = make_thing()
    restored.restore(saved, later)

    assert restored.properties == {"P0": 7, "Note": "hi"}
    assert later.values == {"P0": 7, "Note": "hi"}
    assert [(o.output, o.time_ms) for o in restored.events] == [
        ({"Seq": 1}, 1_700_000_000_000),
        ({"Seq": 2}, 1_700_000_000_000),
    ]
    assert not restored.replies  # the cloud stopped waiting for them long ago


@pytest.mark.parametrize("snapshot", [{}, {"properties": [1], "events": {"a": 1}}, [1], None])
def test_a_snapshot_of_another_shape_restores_nothing(snapshot: object) -> None:
    outbox = Outbox()
    outbox.restore(snapshot, make_thing())
    assert len(outbox) == 0


# --- the rate limit --------------------------------------------------------------------------


def most_in_any_window(times: list[float], window: float) -> int:
    """The most of ``times`` (sorted) inside any half-open window of ``window`` seconds."""
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most


async def test_the_rate_limit_holds_in_every_window() -> None:
    loop = asyncio.get_running_loop()
    limit = RateLimit(5, period=0.2)
    times: list[float] = []
    for _ in range(16):
        await limit.wait()
        # Where a message leaves inside its publish varies: anywhere satisfies the limit.
        await asyncio.sleep(0.01 * (len(times) % 3))
        times.append(loop.time())
        await asyncio.sleep(0.01)
        limit.done()

    assert most_in_any_window(times, 0.2) == 5
    assert times[-1] - times[0] < 1.0  # three full windows waited, not many more


# --- the sender ----------------------------------------------------------------------------


@dataclass
class Sent:
    at: float
    topic: str
    message: dict[str, Any]


class Module:
    """Stands in for the link: records what goes out, fails as told."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.failures: list[AtError] = []
        self.refuse: Callable[[str], bool] = lambda topic: False
        self.on_the_line = 0.0  # seconds a publish takes (the serial line, the module)
        self._changed = asyncio.Event()

    async def publish(self, topic: str, payload: bytes) -> None:
        await asyncio.sleep(self.on_the_line)  # a real publish gives way to the loop
        if self.refuse(topic):
            raise UnsafeValue("too long for this module")
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(Sent(asyncio.get_running_loop().time(), topic, json.loads(payload)))
        self._changed.set()

    async def wait_sent(self, count: int, timeout: float = 5.0) -> list[Sent]:
        async with asyncio.timeout(timeout):
            while len(self.sent) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.sent

    def posts(self) -> list[dict[str, Any]]:
        return [s.message["params"] for s in self.sent if s.topic == PROPERTY_POST]

    def ticks(self) -> list[int]:
        return [s.message["params"]["value"]["Seq"] for s in self.sent if "Tick" in s.topic]


@pytest.fixture
def module() -> Module:
    return Module()


@pytest.fixture
async def sender(module: Module) -> AsyncIterator[Sender]:
    running = Sender(make_thing(), module.publish, settings=FAST)
    running.start()
    yield running
    await running.stop()


async def test_nothing_goes_while_the_link_is_down_and_everything_after(
    sender: Sender, module: Module
) -> None:
    thing = make_thing()
    sender.post_properties({"P0": 1, "P1": 1})
    for seq in range(3):
        sender.post_event(tick(thing, seq))
    sender.post_properties({"P0": 2})
    await asyncio.sleep(0.1)
    assert module.sent == []
    assert sender.held_back

    sender.link_up()
    await module.wait_sent(4)

    assert module.posts() == [{"P0": 2, "P1": 1}]
    assert module.ticks() == [0, 1, 2]
    await asyncio.sleep(0.1)
    assert len(module.sent) == 4
    assert not sender.held_back


async def test_a_burst_is_paced_and_coalesced_and_every_final_value_arrives(
    sender: Sender, module: Module
) -> None:
    thing = make_thing()
    sender.link_up()
    loop = asyncio.get_running_loop()
    start = loop.time()
    # 1000 changes of ten properties and 30 events within about a second.
    for n in range(1000):
        sender.post_properties({f"P{n % 10}": n})
        if n % 33 == 0:
            sender.post_event(tick(thing, n // 33))
        if n % 20 == 0:
            await asyncio.sleep(0.02)
    # The events take about three seconds at ten a second, and the last values may follow.
    async with asyncio.timeout(10):
        while len(module.ticks()) < 31 or module.posts()[-1].get("P9") != 999:
            await module.wait_sent(len(module.sent) + 1)

    assert most_in_any_window([s.at for s in module.sent], 1.0) <= FAST.rate
    assert module.ticks() == list(range(31))
    final: dict[str, Any] = {}
    for params in module.posts():
        final |= params
    assert final == {f"P{i}": 990 + i for i in range(10)}
    # Coalesced: the thousand changes went up in as many posts as the rate let through.
    duration = loop.time() - start
    assert len(module.posts()) <= FAST.rate * (duration + 1) < 100


async def test_changes_made_while_a_post_is_on_the_line_go_in_the_next_one(
    sender: Sender, module: Module
) -> None:
    module.on_the_line = 0.2
    sender.link_up()
    sender.post_properties({"P0": 1})
    await asyncio.sleep(0.05)  # the first post is on the line
    sender.post_properties({"P0": 2, "P1": 3})
    sender.post_properties({"P0": 4})

    await module.wait_sent(2)
    await asyncio.sleep(0.3)

    assert module.posts() == [{"P0": 1}, {"P0": 4, "P1": 3}]


async def test_the_default_pace_stays_below_aliyuns_limit(module: Module) -> None:
    thing = make_thing()
    sender = Sender(thing, module.publish)
    sender.start()
    try:
        sender.link_up()
        for seq in range(45):
            sender.post_event(tick(thing, seq))
        await module.wait_sent(45)
    finally:
        await sender.stop()

    assert most_in_any_window([s.at for s in module.sent], 1.0) == DEFAULT_RATE < 30


async def test_kinds_take_turns(sender: Sender, module: Module) -> None:
    thing = make_thing()
    for seq in range(5):
        sender.post_event(tick(thing, seq))
    sender.reply(Publish(TOPICS.property_set_reply, b'{"id":"1","code":200}'))
    sender.post_properties({"P0": 1})

    sender.link_up()
    sent = await module.wait_sent(4)

    # Five events wait, yet the reply and the post go among the first three.
    assert [s.topic for s in sent[:4]] == [
        TOPICS.property_set_reply,
        PROPERTY_POST,
        TOPICS.event_post("Tick"),
        TOPICS.event_post("Tick"),
    ]


@pytest.mark.parametrize(
    "failure",
    [PublishFailed("+QMTPUBEX: 0,1,2"), PortError("the port was lost"), NotConnected("down")],
)
async def test_what_the_module_fails_to_send_is_sent_again(
    sender: Sender, module: Module, failure: AtError
) -> None:
    thing = make_thing()
    sender.link_up()
    module.failures = [failure, failure]
    sender.post_event(tick(thing, 1))
    sender.post_event(tick(thing, 2))
    sender.post_properties({"P0": 5})

    await module.wait_sent(3)

    assert module.ticks() == [1, 2]  # in order, although the first failed twice
    assert module.posts() == [{"P0": 5}]


async def test_a_message_the_module_cannot_carry_is_dropped_not_retried(
    sender: Sender, module: Module, caplog: pytest.LogCaptureFixture
) -> None:
    thing = make_thing()
    module.refuse = lambda topic: "Tick" in topic
    sender.link_up()
    sender.post_event(tick(thing, 1))
    sender.post_properties({"P0": 5})

    await module.wait_sent(1)
    await asyncio.sleep(0.2)

    assert module.posts() == [{"P0": 5}]
    assert len(sender.outbox) == 0
    assert "dropped a message" in caplog.text


async def test_the_link_coming_back_cuts_the_retry_wait_short(module: Module) -> None:
    slow = UplinkSettings(retry=(30.0,))
    sender = Sender(make_thing(), module.publish, settings=slow)
    sender.start()
    try:
        sender.link_up()
        module.failures = [NotConnected("down")]
        sender.post_properties({"P0": 1})
        await asyncio.sleep(0.05)
        assert sender.held_back
        sender.link_down()
        sender.link_up()
        await module.wait_sent(1, timeout=1.0)
    finally:
        await sender.stop()
    assert module.posts() == [{"P0": 1}]


async def test_posts_are_split_to_fit_the_module(module: Module) -> None:
    thing = make_thing()
    limit = 200
    sender = Sender(thing, module.publish, settings=FAST, max_payload=limit)
    sender.start()
    try:
        sender.link_up()
        values: dict[str, object] = {f"P{i}": 10_000 + i for i in range(10)}
        values["Note"] = "x" * 60
        sender.post_properties(values)
        async with asyncio.timeout(5):
            while sum(len(p) for p in module.posts()) < len(values):
                await module.wait_sent(len(module.sent) + 1)
    finally:
        await sender.stop()

    assert len(module.posts()) > 1
    merged: dict[str, Any] = {}
    for params in module.posts():
        merged |= params
    assert merged == values
    for sent in module.sent:
        assert len(json.dumps(sent.message, separators=(",", ":"))) <= limit


async def test_every_change_is_reported_for_saving(module: Module) -> None:
    thing = make_thing()
    calls: list[tuple[int, bool]] = []
    sender: Sender

    def changed() -> None:
        calls.append((len(sender.outbox), sender.held_back))

    sender = Sender(thing, module.publish, settings=FAST, on_change=changed)
    sender.start()
    try:
        sender.post_event(tick(thing, 1))
        sender.link_up()
        await module.wait_sent(1)
        await asyncio.sleep(0)
        sender.link_down()
    finally:
        await sender.stop()

    # Queued while down (held back), sent (empty), the link went down (nothing waits).
    assert calls == [(1, True), (0, False), (0, False)]


async def test_what_is_in_flight_when_sending_stops_is_kept() -> None:
    thing = make_thing()
    stuck = asyncio.Event()

    async def never_done(topic: str, payload: bytes) -> None:
        stuck.set()
        await asyncio.Event().wait()

    sender = Sender(thing, never_done, settings=FAST)
    sender.start()
    sender.link_up()
    sender.post_event(tick(thing, 1))
    await stuck.wait()
    assert len(sender.outbox) == 0  # taken, being published

    await sender.stop()

    assert [o.output["Seq"] for o in sender.outbox.events] == [1]

"""Sustained load with faults, through Home Assistant, on every dialect.

The cloud sets one property and Home Assistant changes another, together at Aliyun's rate
limit (30 upstream messages a second per device), while faults strike the connected link at
random (faults during a reconnect are the fault matrix's). Once the load stops, both sides
must converge by themselves: every change reached the other side with its final value, in
the order it was made; and what the integration's code holds in memory did not grow from one
quiet point (after a warm-up) to the next (after the soak).

``SOAK_SECONDS`` (the soak per dialect, default 10) makes it longer. Every run prints its
seed; ``SOAK_SEED`` repeats the faults, their kinds and the pauses between them (where they
land in the traffic depends on the machine too).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
import contextlib
import gc
import itertools
import json
import logging
import os
from pathlib import Path
import random
import time
import tracemalloc
from typing import Any

from homeassistant.components.number import ATTR_VALUE, SERVICE_SET_VALUE
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNAVAILABLE, STATE_UNKNOWN, Platform
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers.event import async_track_state_change_event
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components import aliyun_iot_at
from custom_components.aliyun_iot_at.const import (
    ATTR_CONFIG_ENTRY_ID,
    ATTR_VALUES,
    DOMAIN,
    SERVICE_POST_PROPERTIES,
)
from custom_components.aliyun_iot_at.coordinator import AliyunIotAtCoordinator
from custom_components.aliyun_iot_at.core import alink, thing as core_thing
from custom_components.aliyun_iot_at.core.dialects.base import InboundMessage
from custom_components.aliyun_iot_at.core.thing import Outcome
from testbed.cloud import AliyunCloud, Device, Uplink
from testbed.emulator import ModuleEmulator
from tests.conftest import SecretsInUse
from tests.e2e.conftest import PK
from tests.integration.helpers import until

from .bench import assert_nothing_left_behind, expected_subscriptions
from .ha import entity_id
from .matrix import DIALECTS, KEPT, Case

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "10"))
# Load and faults before the first memory snapshot: what is made once (the first reconnect's
# objects, caches, queues filling to their bounds) is made by then.
WARM_UP_SECONDS = 4.0
SEED = int(os.environ.get("SOAK_SEED") or random.randrange(2**32))
# Aliyun's limit of upstream messages a second per device. Each change of either side makes
# one (a set is answered, a change is posted): the two sides together change this often.
RATE = 30
# The most the link may take to come back, or both sides to agree once the load stops, on a
# loaded machine. (A module that restarts while a publish waits for its result holds the
# publish up to the result's timeout, 30 s.)
CONVERGE = 60.0
# How long a set's reply may still be on its way before the cloud sends the set again (a set
# sent twice does no harm).
REPLY_WAIT = 2.0
# Seconds from the link being back to the next fault.
FAULT_GAP = (0.5, 2.0)
FAULTS = ("kick", "drop", "restart", "replug", "noise")
# Growth allowed of what the integration's code holds from one quiet point to the next (up
# to 2 KiB seen). A leak of 32 bytes for each change (the soak makes 300) is more.
MEMORY_BOUND = 8 * 1024
_OUR_CODE = str(Path(alink.__file__).parent.parent / "*")

CLOUD_KEY = "CloudSetting"  # set by the cloud
HOME_KEY = "HomeSetting"  # changed in Home Assistant
# Wide ranges: every value either side sends is a new one, so the order of what arrived tells.
_SETTING = {"type": "int", "specs": {"min": "0", "max": "1000000", "step": "1"}}
THING_MODEL = json.dumps(
    {
        "profile": {"productKey": PK},
        "properties": [
            {"identifier": key, "name": key, "accessMode": "rw", "dataType": _SETTING}
            for key in (CLOUD_KEY, HOME_KEY)
        ],
        "events": [],
        "services": [],
    }
)


@pytest.fixture(params=DIALECTS)
def case(request: pytest.FixtureRequest) -> Case:
    return Case("soak", request.param, KEPT)


@pytest.fixture
def thing_model() -> str:
    return THING_MODEL


@pytest.fixture
def ha_timing(ha_timing: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """What waits is saved at the production pace (a save copies the outbox). Of the posts
    awaiting a reply, a few are kept, not 64: the posts the faults lose (never answered)
    fill that many during the warm-up, so it holds as much at both quiet points."""
    monkeypatch.setattr(aliyun_iot_at, "OUTBOX_SAVE_DELAY", 10.0)
    monkeypatch.setattr(core_thing, "MAX_PENDING", 4)


@pytest.fixture
def traced() -> Iterator[None]:
    """Memory allocations traced from before the entry is set up: what the integration
    replaces during the soak (a port reopened, a new session) replaces something traced."""
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


@pytest.fixture
def ha_entry(traced: None, ha_entry: MockConfigEntry) -> MockConfigEntry:
    """The entry, set up under ``traced``."""
    return ha_entry


@pytest.fixture
async def cloud(socket_enabled: None, secrets_in_use: SecretsInUse) -> AsyncIterator[AliyunCloud]:
    """The cloud, remembering all the device sends between two quiet points."""
    async with AliyunCloud(history=1_000_000) as running:
        secrets_in_use.add_source(running.secrets)
        yield running


class Soak:
    """Both sides' changes and the faults, and what each side got of them."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: MockConfigEntry,
        cloud: AliyunCloud,
        device: Device,
        module: ModuleEmulator,
        rng: random.Random,
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.coordinator: AliyunIotAtCoordinator = entry.runtime_data.coordinator
        self.cloud = cloud
        self.device = device
        self.module = module
        self.rng = rng
        self._values = itertools.count(1)  # every value sent is a new one
        # The cloud's sets in order: (request id, value).
        self.sets: list[tuple[str, int]] = []
        # Home Assistant's changes in order.
        self.changes: list[int] = []
        # The cloud's sets the device applied, and the values the entity showed.
        self.applied: list[int] = []
        self.shown: list[int] = []
        self.faults: list[str] = []
        # What the cloud received, kept here (``archive``): request id -> code of the reply,
        # and the values of each key it accepted in posts.
        self._replies: dict[str, int] = {}
        self._posts: dict[str, list[int]] = {CLOUD_KEY: [], HOME_KEY: []}
        self.cloud_entity = entity_id(hass, Platform.NUMBER, CLOUD_KEY)
        self._home_entity = entity_id(hass, Platform.NUMBER, HOME_KEY)
        self._untrack = async_track_state_change_event(hass, [self.cloud_entity], self._shown)
        self._unwrap = self._watch_applied()

    def close(self) -> None:
        self._untrack()
        self._unwrap()

    @property
    def connected(self) -> bool:
        return self.coordinator.connected

    # --- what the integration did -------------------------------------------------------------

    def _watch_applied(self) -> Callable[[], None]:
        """Record the cloud values the device applies (its entities may be unavailable then)."""
        thing = self.coordinator.thing
        handle = thing.handle

        def applying(message: InboundMessage) -> Outcome:
            outcome = handle(message)
            value = outcome.changes.get(CLOUD_KEY)
            if isinstance(value, int):
                self.applied.append(_own(value))
            return outcome

        thing.handle = applying  # type: ignore[method-assign]

        def unwrap() -> None:
            del thing.handle  # the class's method again

        return unwrap

    @callback
    def _shown(self, event: Event[EventStateChangedData]) -> None:
        state = event.data["new_state"]
        if state is not None and state.state not in (STATE_UNAVAILABLE, STATE_UNKNOWN):
            self.shown.append(_own(int(float(state.state))))

    # --- the load -----------------------------------------------------------------------------

    async def run(self, seconds: float) -> None:
        """Both sides at the rate limit, and the faults, for ``seconds``; then until the
        fault in progress is over."""
        stop = asyncio.Event()
        work = [
            asyncio.create_task(_paced(RATE / 2, self._cloud_set, stop)),
            asyncio.create_task(_paced(RATE / 2, self._home_change, stop)),
            asyncio.create_task(self._faults(stop)),
        ]
        try:
            await asyncio.wait(work, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
            stop.set()
            async with asyncio.timeout(CONVERGE):
                await asyncio.gather(*work)
        finally:
            for task in work:
                task.cancel()
            await asyncio.gather(*work, return_exceptions=True)

    async def _cloud_set(self) -> None:
        value = next(self._values)
        self.sets.append((await self.cloud.set_properties(self.device, {CLOUD_KEY: value}), value))

    async def _home_change(self) -> None:
        """A change through the entity; while it is unavailable (the link is down), through
        the action, which keeps the value until the link is back."""
        value = next(self._values)
        state = self.hass.states.get(self._home_entity)
        if state is not None and state.state != STATE_UNAVAILABLE:
            await self.hass.services.async_call(
                Platform.NUMBER,
                SERVICE_SET_VALUE,
                {ATTR_ENTITY_ID: self._home_entity, ATTR_VALUE: value},
                blocking=True,
            )
        if self.coordinator.data.get(HOME_KEY) != value:  # unavailable meanwhile: skipped
            await self.hass.services.async_call(
                DOMAIN,
                SERVICE_POST_PROPERTIES,
                {ATTR_CONFIG_ENTRY_ID: self.entry.entry_id, ATTR_VALUES: {HOME_KEY: value}},
                blocking=True,
            )
        assert self.coordinator.data.get(HOME_KEY) == value
        self.changes.append(value)

    async def _faults(self, stop: asyncio.Event) -> None:
        module, rng = self.module, self.rng
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(rng.uniform(*FAULT_GAP)):
                    await stop.wait()
            if stop.is_set():
                return
            await _until(lambda: self.connected, "the link back after a fault")
            kind = rng.choice(FAULTS)
            self.faults.append(kind)
            match kind:
                case "kick":
                    await self.cloud.kick(self.device)
                case "drop":
                    await module.drop_link()
                case "restart":
                    await module.restart()
                case "replug":
                    await module.unplug()
                    await asyncio.sleep(rng.uniform(0.05, 0.5))
                    await module.replug()
                case "noise":
                    # Whole lines of it: a line it cut would be lost, and the command
                    # waiting for that line would wait out its timeout (the fault matrix's
                    # "cut URC").
                    module.inject(rng.randbytes(rng.randrange(16, 1024)) + b"\r\n")

    # --- once it is over ----------------------------------------------------------------------

    async def converge(self) -> None:
        """Until both sides agree on the final values and nothing waits to go up. The last
        set may be lost with the link (a set the broker had no session for, one a restarting
        module swallowed): as a cloud application does, the cloud sends it again."""
        await _until(lambda: self.connected, "the link back after the last fault")
        await self._final_set_answered()
        final_set, final_change = self.sets[-1][1], self.changes[-1]
        await _until(lambda: self.shown[-1:] == [final_set], "the entity showing the last set")
        await _until(
            lambda: (
                self.posted(CLOUD_KEY)[-1:] == [final_set]
                and self.posted(HOME_KEY)[-1:] == [final_change]
            ),
            "the cloud told the final values",
        )
        await _until(lambda: not len(self.coordinator.sender.outbox), "the outbox empty")

    async def _final_set_answered(self) -> None:
        msg_id, final = self.sets[-1]
        try:
            async with asyncio.timeout(CONVERGE):
                while final not in self.answered():
                    with contextlib.suppress(TimeoutError):
                        reply = await self.cloud.wait_reply(self.device, msg_id, timeout=REPLY_WAIT)
                        assert reply["code"] == 200, reply
                        continue
                    msg_id = await self.cloud.set_properties(self.device, {CLOUD_KEY: final})
                    self.sets.append((msg_id, final))
        except TimeoutError as err:
            raise TimeoutError(f"not within {CONVERGE:g} s: the last set answered") from err

    def archive(self) -> None:
        """Keep what the cloud received here, and make it forget it: its history keeps the
        payloads it decoded, in memory our code freed before (Python reuses freed dicts),
        which tracemalloc would count as still ours."""
        self._note(self.cloud.uplinks(self.device), self._replies, self._posts)
        self.cloud.forget_uplinks()

    def _received(self) -> tuple[dict[str, int], dict[str, list[int]]]:
        replies, posts = dict(self._replies), {key: list(seen) for key, seen in self._posts.items()}
        self._note(self.cloud.uplinks(self.device), replies, posts)
        return replies, posts

    @staticmethod
    def _note(uplinks: list[Uplink], replies: dict[str, int], posts: dict[str, list[int]]) -> None:
        for uplink in uplinks:
            payload = uplink.payload
            if payload is None:
                continue
            if uplink.kind == "reply":
                replies[str(payload.get("id"))] = _own(payload.get("code", 0))
            elif uplink.kind == "property_post" and uplink.code == 200:
                params: dict[str, Any] = payload.get("params", {})
                for key, seen in posts.items():
                    if key in params:
                        seen.append(_own(params[key]))

    def replies(self) -> dict[str, int]:
        """The code of each reply the device sent, by request id."""
        return self._received()[0]

    def answered(self) -> list[int]:
        """The value of every set the device answered with 200, in the order sent."""
        codes = self.replies()
        return [value for msg_id, value in self.sets if codes.get(msg_id) == 200]

    def posted(self, key: str) -> list[int]:
        """Every value of ``key`` the cloud accepted in a post, in order."""
        return self._received()[1][key]


async def _paced(
    per_second: float, step: Callable[[], Awaitable[None]], stop: asyncio.Event
) -> None:
    """``step`` ``per_second`` times a second until ``stop`` (slower when the machine is, never
    in a burst to catch up)."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    while not stop.is_set():
        await step()
        due = max(due + 1 / per_second, loop.time())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(due):
                await stop.wait()


async def _until(condition: Callable[[], bool], what: str, timeout: float = CONVERGE) -> None:
    """Until ``condition`` holds (it announces nothing: polled)."""
    try:
        await until(condition, timeout)
    except TimeoutError as err:
        raise TimeoutError(f"not within {timeout:g} s: {what}") from err


def _own(value: int) -> int:
    """A copy of ``value`` made here: the test's records are not the integration's memory."""
    return int(str(value))


def _in_order(seen: list[int], sent: list[int]) -> bool:
    """Whether ``seen`` is made of values of ``sent``, in its order; a value may be seen
    again (a reconnect posts the current values once more)."""
    position = 0
    for value in seen:
        while position < len(sent) and sent[position] != value:
            position += 1
        if position == len(sent):
            return False
    return True


class _TextOnly(logging.Filter):
    """Makes a record keep its text, not the objects it was logged with: pytest keeps every
    record of a test, and with them what our code made (its errors, its lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return True


@contextlib.contextmanager
def _records_text_only() -> Iterator[None]:
    """``_TextOnly`` on the root logger's handlers (pytest's among them) meanwhile."""
    handlers = list(logging.getLogger().handlers)
    text_only = _TextOnly()
    for handler in handlers:
        handler.addFilter(text_only)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(text_only)


@contextlib.contextmanager
def _production_loop(loop: asyncio.AbstractEventLoop) -> Iterator[list[str]]:
    """The event loop as Home Assistant runs it, without asyncio's debug mode (the test
    harness turns it on: it records where every callback came from, which under this load is
    most of the work). Yields the serial ports' fatal write errors the loop was told of,
    which are kept from failing the test (see ``_port_write_error``); anything else the loop
    is told of goes to the harness, which fails the test."""
    debug, handler = loop.get_debug(), loop.get_exception_handler()
    port_errors: list[str] = []

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if _port_write_error(context):
            port_errors.append(repr(context.get("exception")))
        elif handler is not None:
            handler(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_debug(False)
    loop.set_exception_handler(handle)
    try:
        yield port_errors
    finally:
        loop.set_exception_handler(handler)
        loop.set_debug(debug)


def _port_write_error(context: dict[str, Any]) -> bool:
    """A write to a port that has just vanished (``replug``): the serial transport reports it
    to the event loop as well as to the channel (which then reconnects), and Home Assistant
    logs it as an error. Known, reported; not this test's subject."""
    return context.get("message") == "Fatal write error on serial transport" and isinstance(
        context.get("exception"), OSError
    )


def _our_memory(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes still held of what lines of our code allocated. (Counting what libraries made
    for our code too, by the callers' frames, would count more than ours: Python hands freed
    dicts and tuples on to the next ones made, anywhere, and tracemalloc keeps their first
    maker; held by the libraries' caches and the test bed's records, that count grows with
    the traffic, leak or not.)"""
    ours = snapshot.filter_traces([tracemalloc.Filter(True, _OUR_CODE)])
    return sum(stat.size for stat in ours.statistics("filename"))


@pytest.mark.timeout(WARM_UP_SECONDS + SOAK_SECONDS + 8 * CONVERGE)
async def test_soak(
    case: Case,
    hass: HomeAssistant,
    ha_entry: MockConfigEntry,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    ptys_before_link: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    print(f"soak: {SOAK_SECONDS:g} s on {case.dialect}; SOAK_SEED={SEED} repeats it")
    started = time.monotonic()
    # Every AT line at DEBUG, formatted, checked for secrets and kept by pytest, would be most
    # of the work (the other tests check our lines at DEBUG); the broker's lines only slow it.
    caplog.set_level(logging.INFO, "custom_components.aliyun_iot_at")
    for chatty in ("amqtt", "transitions", "testbed"):
        caplog.set_level(logging.WARNING, chatty)
    soak = Soak(hass, ha_entry, cloud, device, module, random.Random(f"{SEED}-{case.dialect}"))
    held: list[int] = []
    laps: list[str] = []

    def lap(name: str) -> None:
        laps.append(f"{name} {time.monotonic() - started:.1f}")

    def measure() -> None:
        soak.archive()
        caplog.clear()
        gc.collect()
        held.append(_our_memory(tracemalloc.take_snapshot()))

    try:
        with (
            _production_loop(asyncio.get_running_loop()) as port_errors,
            _records_text_only(),
        ):
            try:
                await soak.run(WARM_UP_SECONDS)
                await soak.converge()
                lap("warm-up")
                measure()
                sets_before, changes_before = len(soak.sets), len(soak.changes)
                await soak.run(SOAK_SECONDS)
                lap("soak")
                await soak.converge()
                lap("converged")
                measure()
            finally:
                soak.close()
    except BaseException as err:
        err.add_note(f"SOAK_SEED={SEED}, {case.dialect}, faults {soak.faults}, {laps}")
        raise

    sets = [value for _, value in soak.sets]
    changes = len(sets) - sets_before + len(soak.changes) - changes_before
    growth = held[1] - held[0]
    print(
        f"{case.dialect}: {changes} changes in {SOAK_SECONDS:g} s "
        f"({changes / SOAK_SECONDS:.1f}/s), {len(soak.answered())} of {len(sets)} sets "
        f"answered; faults {soak.faults}; port write errors {len(port_errors)}; "
        f"our memory {held[0]} -> {held[1]} bytes ({growth:+d}); "
        f"{', '.join(laps)}; {time.monotonic() - started:.1f} s"
    )
    try:
        # Nothing the cloud sent was refused.
        assert set(soak.replies().values()) == {200}
        # Cloud to Home Assistant: the device applied the sets in the order sent, every one
        # it answered among them; the entity showed them in that order, and shows the last.
        assert _in_order(soak.applied, sets)
        assert _in_order(soak.answered(), soak.applied)
        assert _in_order(soak.shown, soak.applied)
        shown = hass.states.get(soak.cloud_entity)
        assert shown is not None
        assert float(shown.state) == sets[-1]
        # Home Assistant to the cloud: the posts told Home Assistant's values in the order
        # they were taken, the last one last (``converge``); the device told the cloud what it
        # applied likewise.
        assert _in_order(soak.posted(HOME_KEY), soak.changes)
        assert _in_order(soak.posted(CLOUD_KEY), soak.applied)
        # Back to one session, subscribed once, the port open once.
        assert cloud.subscriptions(device) == expected_subscriptions()
        assert_nothing_left_behind(ptys_before_link)
        # The integration's memory did not grow with what went through it.
        assert growth < MEMORY_BOUND, f"our code holds {growth} bytes more after the soak"
    except AssertionError as err:
        err.add_note(f"SOAK_SEED={SEED}, {case.dialect}, faults {soak.faults}")
        raise

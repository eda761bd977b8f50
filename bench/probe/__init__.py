"""The benchmark's probe inside Home Assistant: it takes times where things happen.

Loaded from ``configuration.yaml`` (``bench_probe: {socket: PATH}``), it serves the benchmark
on a Unix socket, one JSON object a line each way. A request has an ``id`` and an ``op`` and
gets one reply with the same ``id``; state changes of watched entities are pushed as
``{"event": "state", "entity": …, "state": …, "t": …}``. Times are ``time.monotonic()``,
one clock for every process of the machine (Linux's CLOCK_MONOTONIC), so the benchmark
compares them with its own. Self-contained: Home Assistant imports it as a custom component.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import json
import time
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import (
    EVENT_HOMEASSISTANT_STARTED,
    EVENT_HOMEASSISTANT_STOP,
    STATE_UNAVAILABLE,
)
from homeassistant.core import (
    CALLBACK_TYPE,
    Event,
    EventStateChangedData,
    HomeAssistant,
    callback,
)
from homeassistant.helpers import config_validation as cv, entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.helpers.typing import ConfigType
import voluptuous as vol

DOMAIN = "bench_probe"
CONFIG_SCHEMA = vol.Schema(
    {DOMAIN: vol.Schema({vol.Required("socket"): cv.string})}, extra=vol.ALLOW_EXTRA
)

LINE_LIMIT = 1 << 24

type Message = dict[str, Any]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Listen on the socket until Home Assistant stops."""
    started = asyncio.Event()

    @callback
    def _started(event: Event) -> None:
        started.set()

    if hass.is_running:
        started.set()
    else:
        hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STARTED, _started)

    async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _Session(hass, started, writer).serve(reader)

    # A burst's request is one long line.
    server = await asyncio.start_unix_server(_serve, config[DOMAIN]["socket"], limit=LINE_LIMIT)

    @callback
    def _stop(event: Event) -> None:
        server.close()

    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _stop)
    return True


class _Session:
    """One connected benchmark."""

    def __init__(
        self, hass: HomeAssistant, started: asyncio.Event, writer: asyncio.StreamWriter
    ) -> None:
        self._hass = hass
        self._started = started
        self._writer = writer
        self._unsubscribe: list[CALLBACK_TYPE] = []
        self._ops: dict[str, Callable[[Message], Awaitable[Message]]] = {
            "ping": self._ping,
            "add_entry": self._add_entry,
            "watch": self._watch,
            "unwatch": self._unwatch,
            "call": self._call,
            "burst": self._burst,
        }

    async def serve(self, reader: asyncio.StreamReader) -> None:
        """Answer requests, each in its own task, until the benchmark hangs up."""
        tasks: set[asyncio.Task[None]] = set()
        try:
            while line := await reader.readline():
                task = asyncio.create_task(self._answer(json.loads(line)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for unsubscribe in self._unsubscribe:
                unsubscribe()
            for task in tasks:
                task.cancel()
            self._writer.close()

    def _send(self, message: Message) -> None:
        if not self._writer.is_closing():
            self._writer.write(json.dumps(message).encode() + b"\n")

    async def _answer(self, request: Message) -> None:
        try:
            reply = await self._ops[request["op"]](request)
        except Exception as err:  # the benchmark shows it
            reply = {"error": f"{type(err).__name__}: {err}"}
        self._send({"id": request["id"], **reply})

    async def _ping(self, request: Message) -> Message:
        await self._started.wait()
        return {}

    async def _add_entry(self, request: Message) -> Message:
        """Add and set up a config entry; when it is set up and when all its entities are
        available."""
        hass = self._hass
        entry = ConfigEntry(
            data=request["data"],
            discovery_keys=MappingProxyType({}),
            domain=request["domain"],
            minor_version=1,
            options=request["options"],
            source="user",
            subentries_data=None,
            title=request["title"],
            unique_id=request["unique_id"],
            version=1,
        )
        start = time.monotonic()
        await hass.config_entries.async_add(entry)
        set_up = time.monotonic()
        entities = [
            e
            for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
            if e.disabled_by is None
        ]
        available = await self._until_available(
            [e.entity_id for e in entities], float(request["available_timeout"])
        )
        return {
            "entry_id": entry.entry_id,
            "state": entry.state.value,
            "t0": start,
            "t_setup": set_up,
            "t_available": available,
            "entities": {e.unique_id: e.entity_id for e in entities},
        }

    async def _until_available(self, entity_ids: list[str], timeout: float) -> float | None:
        """When every one of ``entity_ids`` had a state other than unavailable."""

        def all_available() -> bool:
            states = [self._hass.states.get(entity_id) for entity_id in entity_ids]
            return all(s is not None and s.state != STATE_UNAVAILABLE for s in states)

        if all_available():
            return time.monotonic()
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

        @callback
        def _changed(event: Event[EventStateChangedData]) -> None:
            if not done.done() and all_available():
                done.set_result(time.monotonic())

        unsubscribe = async_track_state_change_event(self._hass, entity_ids, _changed)
        try:
            async with asyncio.timeout(timeout):
                return await done
        except TimeoutError:
            return None
        finally:
            unsubscribe()

    async def _watch(self, request: Message) -> Message:
        """Push every state change of ``entities`` from now on."""

        @callback
        def _changed(event: Event[EventStateChangedData]) -> None:
            new = event.data["new_state"]
            self._send(
                {
                    "event": "state",
                    "entity": event.data["entity_id"],
                    "state": None if new is None else new.state,
                    "t": time.monotonic(),
                }
            )

        self._unsubscribe.append(
            async_track_state_change_event(self._hass, request["entities"], _changed)
        )
        return {}

    async def _unwatch(self, request: Message) -> Message:
        """Stop pushing state changes (they cost Home Assistant a socket write each)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        return {}

    async def _call(self, request: Message) -> Message:
        """One blocking action call: when it was made and when it returned."""
        start = time.monotonic()
        error = await self._run_call(request["domain"], request["service"], request["data"])
        return {"t0": start, "t1": time.monotonic(), "error": error}

    async def _burst(self, request: Message) -> Message:
        """``calls`` ([domain, service, data] each) spread evenly over ``duration`` seconds,
        each in its own task; the reply once all returned or ``wait`` seconds after the last
        one was made (the rest are cancelled)."""
        calls: list[tuple[str, str, Message]] = request["calls"]
        spacing = float(request["duration"]) / len(calls)
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[str | None]] = []
        start = loop.time()
        for index, (domain, service, data) in enumerate(calls):
            await asyncio.sleep(start + index * spacing - loop.time())
            tasks.append(asyncio.create_task(self._run_call(domain, service, data)))
        last_made = time.monotonic()
        done, pending = await asyncio.wait(tasks, timeout=float(request["wait"]))
        finished = time.monotonic()
        for task in pending:
            task.cancel()
        errors = [error for task in done if (error := task.result()) is not None]
        return {
            "t0": start,
            "t_last_made": last_made,
            "t_done": finished if not pending else None,
            "completed": len(done),
            "errors": len(errors),
            "first_error": errors[0] if errors else None,
        }

    async def _run_call(self, domain: str, service: str, data: Message) -> str | None:
        """Make the call; what went wrong, or None."""
        try:
            await self._hass.services.async_call(domain, service, data, blocking=True)
        except Exception as err:  # reported, not raised: a burst goes on
            return f"{type(err).__name__}: {err}"
        return None

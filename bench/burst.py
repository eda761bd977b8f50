"""The burst: 1000 property changes made in Home Assistant within one second.

Five properties, 200 changes each, in turn: the switch (``switch.turn_on``/``turn_off``), two
numbers (``number.set_value``) and two read-only sensors (the ``post_properties`` action). The
cloud's record says how many messages came, the most in any one second, and whether the
last value of each property arrived: the last post that carries it must carry that value.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import time
from typing import Any

from .bed import Bed
from .stats import most_in_window

CHANGES = 1000
DURATION = 1.0
QUIET = 1.0  # no post for this long after the last value arrived: the burst is over
POLL = 0.1

type Call = tuple[str, str, dict[str, Any]]


@dataclass(frozen=True)
class BurstResult:
    """What the cloud saw of the burst."""

    changes: int
    made_in: float  # from the first change made to the last
    failed: int  # calls that raised
    unfinished: int  # calls still running when watching ended (then cancelled)
    first_error: str | None
    received: int  # messages from the device from the burst's start to the end of watching
    most_per_second: int
    delivered: int  # properties whose last value arrived
    properties: int
    last_after: float | None  # last value's arrival after the last change; None: not all came
    watched: float  # how long after the last change the cloud was watched


def plan(bed: Bed, changes: int = CHANGES) -> tuple[list[Call], dict[str, object]]:
    """The calls in order, and the value each property ends with."""
    switch, brightness, colour = (
        bed.entity(key) for key in ("PowerSwitch", "Brightness", "ColorTemperature")
    )
    calls: list[Call] = []
    final: dict[str, object] = {}
    for index in range(changes):
        step = index // 5
        match index % 5:
            case 0:
                on = step % 2 == 0
                calls.append(("switch", "turn_on" if on else "turn_off", {"entity_id": switch}))
                final["PowerSwitch"] = int(on)
            case 1:
                level = step * 7 % 101
                calls.append(("number", "set_value", {"entity_id": brightness, "value": level}))
                final["Brightness"] = level
            case 2:
                kelvin = 2700 + step * 19 % 3801
                calls.append(("number", "set_value", {"entity_id": colour, "value": kelvin}))
                final["ColorTemperature"] = kelvin
            case 3:
                celsius = round(20 + step / 10, 1)
                calls.append(_post(bed, "CurrentTemperature", celsius))
                final["CurrentTemperature"] = celsius
            case _:
                watts = step * 1.5
                calls.append(_post(bed, "RealTimePower", watts))
                final["RealTimePower"] = watts
    return calls, final


def _post(bed: Bed, identifier: str, value: float) -> Call:
    data = {"config_entry_id": bed.entry_id, "values": {identifier: value}}
    return ("aliyun_iot_at", "post_properties", data)


async def burst(bed: Bed, wait: float) -> BurstResult:
    """Make the burst; watch the cloud until every last value came and the line went quiet,
    or ``wait`` seconds after the last change."""
    calls, final = plan(bed)
    posts = bed.posts.mark()
    uplinks = len(bed.cloud.uplinks(bed.device))
    request = asyncio.create_task(
        bed.hass.request("burst", timeout=wait + 60, calls=calls, duration=DURATION, wait=wait)
    )
    deadline = time.monotonic() + DURATION + wait
    while time.monotonic() < deadline:
        # Polled in the benchmark's process, not in Home Assistant's.
        await asyncio.sleep(POLL)
        arrived = bed.posts.since(posts)
        quiet = not arrived or time.monotonic() - arrived[-1].t >= QUIET
        if request.done() and quiet and _last_values(bed, posts, final) is not None:
            break
    reply = await request
    watched_until = time.monotonic()
    last_made = float(reply["t_last_made"])
    arrived = bed.posts.since(posts)
    delivered = _last_values(bed, posts, final)
    return BurstResult(
        changes=len(calls),
        made_in=last_made - float(reply["t0"]),
        failed=int(reply["errors"]),
        unfinished=len(calls) - int(reply["completed"]),
        first_error=reply["first_error"],
        received=len(bed.cloud.uplinks(bed.device)) - uplinks,
        most_per_second=most_in_window([post.t for post in arrived]),
        delivered=sum(1 for key in final if _last_post_of(bed, posts, key, final[key])),
        properties=len(final),
        last_after=None if delivered is None else delivered - last_made,
        watched=watched_until - last_made,
    )


def _last_values(bed: Bed, since: int, final: dict[str, object]) -> float | None:
    """When the last of ``final``'s values arrived, if they all did."""
    times = [_last_post_of(bed, since, key, value) for key, value in final.items()]
    return None if any(t is None for t in times) else max(t for t in times if t is not None)


def _last_post_of(bed: Bed, since: int, key: str, value: object) -> float | None:
    """When the last post carrying ``key`` arrived, if it carries ``value``."""
    for post in reversed(bed.posts.since(since)):
        if key in post.item["params"]:
            return post.t if post.item["params"][key] == value else None
    return None

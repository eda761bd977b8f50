"""Latency both ways, one change at a time on a quiet line.

Cloud → Home Assistant: from just before the cloud publishes a property set to the switch's
state change in Home Assistant. The floor is the wire time of the URC the module writes with
the message (framing included): the state changes when it is parsed; the set_reply and the
device's report that follow are not on this path.

Home Assistant → cloud: from the ``switch.turn_on``/``turn_off`` call to the property post
reaching the cloud. The floor is the wire time of the publish command and its CR, the
module's prompt and the payload (or, for a dialect with the payload in the command line,
that line): the bytes that must cross before the module can publish; its ``OK`` and result
come after.

Changes are made on a quiet line, one at a time, each once the previous one's traffic (the
cloud's post_reply) has crossed it; ``ha_to_cloud`` with ``quiet`` False makes each call as
soon as the previous post reached the cloud, its post_reply still to come (a user toggling
twice).

Each sample is split: the ``hop`` is what lies outside Home Assistant and the line (the cloud,
the broker, the module's MQTT client, the module's turnaround at the prompt); what is left
beyond the floor is ours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import time

from .bed import Bed, Payload
from .hass import StateChange

SAMPLE_TIMEOUT = 10.0


@dataclass(frozen=True)
class Sample:
    """One change: its latency, the wire floor under it, and the part outside our code."""

    latency: float
    floor: float
    hop: float

    @property
    def ours(self) -> float:
        """What the latency has beyond the floor and the hop."""
        return self.latency - self.floor - self.hop


async def cloud_to_ha(bed: Bed, count: int) -> list[Sample]:
    """``count`` property sets from the cloud, each timed to the entity's state change."""
    switch = bed.entity("PowerSwitch")
    samples: list[Sample] = []
    for index in range(count):
        value = index % 2 == 0
        states, urcs = bed.hass.states.mark(), bed.module.urcs.mark()
        start = time.monotonic()
        await bed.cloud.set_properties(bed.device, {"PowerSwitch": int(value)})
        changed = await bed.hass.states.wait(
            state_is(switch, "on" if value else "off"),
            since=states,
            timeout=SAMPLE_TIMEOUT,
            what=f"{switch} state change",
        )
        urc = await bed.module.urcs.wait(
            lambda line: b"/thing/service/property/set" in line,
            since=urcs,
            timeout=SAMPLE_TIMEOUT,
            what="property set URC",
        )
        await bed.settle(urcs)
        samples.append(Sample(changed.t - start, bed.wire(len(urc.item) + 4), urc.t - start))
    return samples


async def ha_to_cloud(bed: Bed, count: int, *, quiet: bool = True) -> list[Sample]:
    """``count`` switch calls in Home Assistant, each timed to the post at the cloud; each
    on a quiet line, or (``quiet`` False) right after the previous post arrived."""
    switch = bed.entity("PowerSwitch")
    samples: list[Sample] = []
    for index in range(count):
        value = index % 2 == 0
        posts, blocks, urcs = bed.posts.mark(), bed.module.blocks.mark(), bed.module.urcs.mark()
        lines = len(bed.module.received)
        reply = await bed.hass.request(
            "call",
            domain="switch",
            service="turn_on" if value else "turn_off",
            data={"entity_id": switch},
        )
        if reply["error"] is not None:
            raise RuntimeError(f"switch call failed: {reply['error']}")
        post = await bed.posts.wait(
            posts_value("PowerSwitch", int(value)),
            since=posts,
            timeout=SAMPLE_TIMEOUT,
            what="property post",
        )
        split = bed.module.publish_split(blocks, lines, "PowerSwitch", post.t)
        if quiet:
            await bed.settle(urcs)
        latency = post.t - float(reply["t0"])
        samples.append(Sample(latency, bed.wire(split.wire_bytes), split.module_time))
    return samples


def state_is(entity: str, state: str) -> Callable[[StateChange], bool]:
    """Matches a change of ``entity`` to ``state``."""
    return lambda change: change.entity == entity and change.state == state


def posts_value(key: str, value: object) -> Callable[[Payload], bool]:
    """Matches a property post carrying ``key`` with ``value``."""
    return lambda post: post["params"].get(key) == value

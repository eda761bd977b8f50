"""Recovery: from the module's link-drop URC to the entities available again.

The module answers at once (no registration or boot delay), so the time is the host's
reconnect sequence: its commands, the wire time they take, and the broker's CONNECT.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .bed import Bed

RECOVERY_TIMEOUT = 60.0
PAUSE = 0.5  # between drops, after the reconnect's own traffic


@dataclass(frozen=True)
class Recovery:
    """One drop: the time to available again, and the wire time of the bytes meanwhile."""

    time: float
    wire: float


async def recoveries(bed: Bed, count: int) -> list[Recovery]:
    """Drop the module's link ``count`` times, each time until the switch is back."""
    switch = bed.entity("PowerSwitch")
    results: list[Recovery] = []
    for _ in range(count):
        states, urcs = bed.hass.states.mark(), bed.module.urcs.mark()
        before = bed.module.wire_bytes()
        await bed.module.drop_link()
        dropped = await bed.module.urcs.wait(
            lambda line: True, since=urcs, timeout=RECOVERY_TIMEOUT, what="link-drop URC"
        )
        down = await bed.hass.states.wait(
            lambda c: c.entity == switch and c.state == "unavailable",
            since=states,
            timeout=RECOVERY_TIMEOUT,
            what=f"{switch} unavailable",
        )
        back = await bed.hass.states.wait(
            lambda c: c.entity == switch and c.state != "unavailable",
            since=down.index + 1,
            timeout=RECOVERY_TIMEOUT,
            what=f"{switch} available again",
        )
        results.append(Recovery(back.t - dropped.t, bed.wire(bed.module.wire_bytes() - before)))
        # The values go out again once the link is back: let that finish first.
        await bed.settle(urcs)
        await asyncio.sleep(PAUSE)
    return results

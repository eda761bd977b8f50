"""The arithmetic of the report: wire time, percentiles, rates."""

from __future__ import annotations

from collections.abc import Sequence
import math

from testbed.emulator.pacer import BITS_PER_BYTE


def wire_time(size: int, baudrate: int) -> float:
    """Seconds ``size`` bytes take on a serial line (start bit, 8 data bits, stop bit)."""
    return size * BITS_PER_BYTE / baudrate


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile, interpolated between the two nearest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * fraction
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def most_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most of ``times`` that fall in any half-open interval ``window`` seconds long."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best

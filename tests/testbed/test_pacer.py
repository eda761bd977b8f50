"""The serial line's pace: bytes are handed on at their wire time, in order."""

from __future__ import annotations

import asyncio

import pytest

from testbed.emulator.pacer import Pacer

_TICK = 1e-6  # a timer may fire this early (the loop's clock resolution)


async def test_each_write_ends_at_its_wire_time() -> None:
    loop = asyncio.get_running_loop()
    arrivals: list[tuple[float, bytes]] = []
    pacer = Pacer(10_000, lambda data: arrivals.append((loop.time(), data)))  # 1 ms a byte
    start = loop.time()
    pacer.feed(b"abc")
    pacer.feed(b"de")
    await asyncio.sleep(0.03)

    # Pieces of 2 ms, never spanning two writes: "c" is not held back to go with "d".
    assert [data for _, data in arrivals] == [b"ab", b"c", b"de"]
    elapsed = [when - start for when, _ in arrivals]
    assert elapsed[0] >= 0.002 - _TICK
    assert elapsed[1] >= 0.003 - _TICK
    assert elapsed[2] >= 0.005 - _TICK


async def test_an_idle_line_starts_when_fed_again() -> None:
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    pacer = Pacer(1_000, lambda data: arrivals.append(loop.time()))  # 10 ms a byte
    pacer.feed(b"a")
    await asyncio.sleep(0.03)
    again = loop.time()
    pacer.feed(b"b")
    await asyncio.sleep(0.03)

    assert len(arrivals) == 2
    assert arrivals[1] - again >= 0.01 - _TICK


async def test_clear_drops_what_is_still_on_the_wire() -> None:
    got: list[bytes] = []
    first = asyncio.Event()

    def deliver(data: bytes) -> None:
        got.append(data)
        first.set()

    pacer = Pacer(100, deliver)  # 100 ms a byte
    pacer.feed(b"abc")
    await first.wait()
    pacer.clear()
    await asyncio.sleep(0.25)

    assert got == [b"a"]


def test_a_baudrate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(0, lambda data: None)

"""``scripts/bench``: measure, then print the tables (Markdown) on stdout.

For each baud rate: a fresh cloud, module and Home Assistant; the config entry set up; the
latency from the cloud; link drops; the latency to the cloud; the burst last (what it leaves
queued cannot disturb the rest). At the first baud rate, the idle cost beside a second Home
Assistant without the entry. The parser's throughput needs none of it and is measured first.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from pathlib import Path
import sys
import time

from custom_components.aliyun_iot_at.core.dialects import DIALECT_NAMES

from .bed import DEVICE_NAME, PRODUCT_KEY, open_bed
from .burst import burst
from .hass import INTEGRATION, ROOT, HassProcess
from .idle import Idle, idle_cost
from .latency import cloud_to_ha, ha_to_cloud
from .machine import describe, load
from .parser import parser_throughput
from .recovery import recoveries
from .report import (
    Point,
    burst_table,
    idle_table,
    latency_table,
    parser_table,
    setup_table,
)

SLOW = 57600  # below this baud rate, --samples-slow applies
# Seconds after setup before the idle window: Home Assistant saves its registries 10 s after
# the entry added entities, which is the setup's cost, not the idle one.
IDLE_SETTLE = 20.0


def _log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def measure_point(
    args: argparse.Namespace, baudrate: int, with_idle: bool
) -> tuple[Point, Idle | None]:
    """Everything at one baud rate (and the idle cost when asked)."""
    out: Path = args.out / str(baudrate)
    samples = args.samples if baudrate >= SLOW else args.samples_slow
    alone = HassProcess(out / "hass-alone", args.integration) if with_idle else None
    starting = asyncio.create_task(alone.start()) if alone is not None else None
    idle: Idle | None = None
    try:
        hass = HassProcess(out / "hass", args.integration)
        async with open_bed(baudrate, args.dialect, out, hass) as bed:
            _log(f"{baudrate} baud: Home Assistant up; adding the entry")
            await bed.add_entry()
            assert bed.setup is not None
            point = Point(baudrate, args.dialect, bed.setup)
            if alone is not None and starting is not None:
                await starting
                await asyncio.sleep(IDLE_SETTLE)
                _log(f"{baudrate} baud: idle for {args.idle:g} s")
                idle = await idle_cost(bed.hass, alone, bed.module, args.idle)
                await alone.stop()
            _log(f"{baudrate} baud: {samples} property sets from the cloud")
            point.cloud_to_ha = await cloud_to_ha(bed, samples)
            _log(f"{baudrate} baud: {args.recoveries} link drops")
            point.recoveries = await recoveries(bed, args.recoveries)
            # What follows needs no state from Home Assistant: the probe stops reporting
            # them, which would cost Home Assistant a socket write per change.
            await bed.hass.request("unwatch")
            _log(f"{baudrate} baud: {samples} switch calls in Home Assistant")
            point.ha_to_cloud = await ha_to_cloud(bed, samples)
            _log(f"{baudrate} baud: {args.back_to_back} switch calls back to back")
            point.back_to_back = await ha_to_cloud(bed, args.back_to_back, quiet=False)
            _log(f"{baudrate} baud: the burst")
            point.burst = await burst(bed, args.burst_wait)
            if point.burst.first_error:
                _log(f"{baudrate} baud: first failed call: {point.burst.first_error}")
            _log(f"{baudrate} baud: done; stopping Home Assistant")
    finally:
        if starting is not None and not starting.done():
            starting.cancel()
        if alone is not None:
            await alone.stop()
    await asyncio.to_thread(_dump, out / "samples.json", point)
    return point, idle


def _dump(path: Path, point: Point) -> None:
    """Every sample, for a closer look than the table's."""
    path.write_text(json.dumps(dataclasses.asdict(point), indent=1))


async def run(args: argparse.Namespace) -> int:
    """Measure everything and print the report."""
    preface = describe(sys.argv[1:])
    load_before = load()
    _log("parser throughput")
    parsed = await parser_throughput(PRODUCT_KEY, DEVICE_NAME)
    points: list[Point] = []
    idle: Idle | None = None
    for index, baudrate in enumerate(args.baud):
        point, measured = await measure_point(args, baudrate, index == 0 and args.idle > 0)
        points.append(point)
        idle = idle or measured
    tables = [
        latency_table(
            f"Cloud → Home Assistant: property set → entity state ({args.dialect})",
            "cloud hop",
            [(str(p.baudrate), p.cloud_to_ha) for p in points],
        ),
        latency_table(
            f"Home Assistant → cloud: switch.turn_on/off → post at the cloud ({args.dialect})",
            "not-ours hop",
            [(str(p.baudrate), p.ha_to_cloud) for p in points]
            + [(f"{p.baudrate}, back to back", p.back_to_back) for p in points],
        ),
        burst_table(points),
        *([idle_table(idle)] if idle is not None else []),
        setup_table(points),
        parser_table(parsed),
    ]
    preface.append(f"- load average (1, 5, 15 min): {load_before} before, {load()} after")
    print("\n".join(preface) + "\n\n" + "\n\n".join(table.render() for table in tables))
    return 0


def main() -> int:
    """Entry point of ``python -m bench.run``."""
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument(
        "--baud", type=int, action="append", help="baud rate (repeat; default 115200 and 9600)"
    )
    parser.add_argument("--dialect", choices=DIALECT_NAMES, default="quectel")
    parser.add_argument("--samples", type=int, default=500, help="latency samples each way")
    parser.add_argument("--samples-slow", type=int, default=50, help=f"the same below {SLOW} baud")
    parser.add_argument(
        "--back-to-back", type=int, default=20, help="switch calls each right after a post"
    )
    parser.add_argument("--idle", type=float, default=60.0, help="idle window, s (0: skip)")
    parser.add_argument("--recoveries", type=int, default=5, help="link drops")
    parser.add_argument(
        "--burst-wait", type=float, default=30.0, help="watch the cloud this long after a burst"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument(
        "--integration",
        type=Path,
        default=INTEGRATION,
        help="the integration's folder (another copy of it, to compare)",
    )
    args = parser.parse_args()
    args.baud = args.baud or [115200, 9600]
    args.out = args.out.resolve()
    args.integration = args.integration.resolve()
    for baudrate in args.baud:
        (args.out / str(baudrate)).mkdir(parents=True, exist_ok=True)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())

"""The printed report: one Markdown table per measurement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
import math
import statistics

from .bed import Setup
from .burst import BurstResult
from .idle import Idle
from .latency import Sample
from .parser import Throughput
from .recovery import Recovery
from .stats import percentile


@dataclass
class Point:
    """Everything measured at one baud rate."""

    baudrate: int
    dialect: str
    setup: Setup
    cloud_to_ha: list[Sample] = field(default_factory=list)
    ha_to_cloud: list[Sample] = field(default_factory=list)
    back_to_back: list[Sample] = field(default_factory=list)  # HA → cloud without the gap
    recoveries: list[Recovery] = field(default_factory=list)
    burst: BurstResult | None = None


class Table:
    """A Markdown table with aligned columns."""

    def __init__(self, title: str, headers: Sequence[str]) -> None:
        self.title = title
        self.rows: list[list[str]] = [list(headers)]

    def add(self, *cells: str) -> None:
        """Append a row."""
        self.rows.append(list(cells))

    def render(self) -> str:
        """The title, then the table."""
        widths = [max(len(row[i]) for row in self.rows) for i in range(len(self.rows[0]))]

        def line(row: list[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return (
            "\n".join([f"### {self.title}", "", line(self.rows[0]), rule])
            + "\n"
            + ("\n".join(line(row) for row in self.rows[1:]))
        )


def ms(seconds: float | None) -> str:
    """Seconds as milliseconds; a dash when there is no figure."""
    return "—" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def latency_table(title: str, hop: str, rows: Sequence[tuple[str, list[Sample]]]) -> Table:
    """p50/p95/p99 beside the floor, the ratios, and the split of the p50; one row per
    (label, samples)."""
    table = Table(
        title,
        [
            "baud",
            "n",
            "p50",
            "p95",
            "p99",
            "floor",
            "p50/floor",
            "p99/floor",
            f"{hop} p50",
            "ours beyond floor p50 / p99",
        ],
    )
    for label, samples in rows:
        if not samples:
            continue
        latencies = [s.latency for s in samples]
        floor = statistics.median(s.floor for s in samples)
        ours = [s.ours for s in samples]
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        table.add(
            label,
            str(len(samples)),
            ms(p50),
            ms(percentile(latencies, 0.95)),
            ms(p99),
            ms(floor),
            f"{p50 / floor:.2f}",
            f"{p99 / floor:.2f}",
            ms(percentile([s.hop for s in samples], 0.5)),
            f"{ms(percentile(ours, 0.5))} / {ms(percentile(ours, 0.99))}",
        )
    return table


def burst_table(points: Sequence[Point]) -> Table:
    """What the cloud saw of each burst."""
    table = Table(
        "Burst: 1000 property changes in one second from Home Assistant",
        [
            "baud",
            "changes made in",
            "calls failed / unfinished",
            "messages received",
            "most in any 1 s",
            "last values arrived",
            "last value after burst end",
        ],
    )
    for point in points:
        result = point.burst
        if result is None:
            continue
        table.add(
            str(point.baudrate),
            f"{result.changes} in {result.made_in:.2f} s",
            f"{result.failed} / {result.unfinished}",
            str(result.received),
            str(result.most_per_second),
            f"{result.delivered} of {result.properties}",
            f"{result.last_after:.2f} s"
            if result.last_after is not None
            else f"not all within {result.watched:.0f} s",
        )
    return table


def idle_table(idle: Idle) -> Table:
    """CPU seconds of both Home Assistants over the same idle window."""
    table = Table(
        f"Idle: CPU time of the Home Assistant process over {idle.seconds:.0f} s",
        ["Home Assistant", "user+system (ticks of 10 ms)", "on-CPU (schedstat)", "CPU %"],
    )
    rows = (("with the device connected, idle", idle.with_device), ("alone", idle.alone))
    for name, cpu in rows:
        table.add(
            name, f"{cpu.ticks:.2f} s", f"{cpu.on_cpu:.3f} s", f"{cpu.on_cpu / idle.seconds:.3%}"
        )
    extra = idle.with_device.on_cpu - idle.alone.on_cpu
    table.add(
        "difference",
        f"{idle.with_device.ticks - idle.alone.ticks:+.2f} s",
        f"{extra:+.3f} s",
        f"{extra / idle.seconds:+.3%}",
    )
    table.add("AT commands meanwhile", ", ".join(idle.commands) or "none", "", "")
    return table


def setup_table(points: Sequence[Point]) -> Table:
    """Setup and recovery times beside the wire time of what crossed the line."""
    table = Table(
        "Setup and recovery (the module answers at once)",
        [
            "baud",
            "first AT command",
            "entry set up",
            "entities available",
            "its wire time",
            "recovery p50 / max (n)",
            "its wire time p50",
        ],
    )
    for point in points:
        times = [r.time for r in point.recoveries]
        table.add(
            str(point.baudrate),
            ms(point.setup.first_command),
            ms(point.setup.set_up),
            ms(point.setup.available),
            ms(point.setup.wire),
            f"{ms(percentile(times, 0.5))} / {ms(max(times, default=None))} ({len(times)})",
            ms(percentile([r.wire for r in point.recoveries], 0.5)),
        )
    return table


def parser_table(results: Sequence[Throughput]) -> Table:
    """Lines a second parsed beside the line rate at 115200 baud."""
    table = Table(
        "Parser throughput (AtChannel.data_received, 64-byte reads)",
        ["stream", "bytes a line", "lines/s parsed", "lines/s at 115200 baud", "headroom"],
    )
    for result in results:
        table.add(
            result.stream,
            str(result.line_bytes),
            f"{result.parsed_per_second:,.0f}",
            f"{result.line_rate:,.0f}",
            f"{result.parsed_per_second / result.line_rate:,.0f}×",
        )
    return table

"""Idle cost: CPU time of Home Assistant with a connected, idle device, beside Home
Assistant alone (the same configuration, no config entry), over the same seconds."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .hass import HassProcess
from .module import TimedEmulator


@dataclass(frozen=True)
class Cpu:
    """CPU seconds used: user + system time (clock ticks), and on-CPU time (schedstat)."""

    ticks: float
    on_cpu: float


@dataclass(frozen=True)
class Idle:
    """CPU each used over ``seconds``."""

    seconds: float
    with_device: Cpu
    alone: Cpu
    commands: tuple[str, ...]  # what the host sent the module meanwhile


async def idle_cost(
    with_device: HassProcess, alone: HassProcess, module: TimedEmulator, seconds: float
) -> Idle:
    """Both processes measured side by side, doing nothing."""
    lines = len(module.received)
    start = [_cpu(with_device), _cpu(alone)]
    await asyncio.sleep(seconds)
    end = [_cpu(with_device), _cpu(alone)]
    return Idle(
        seconds,
        with_device=_minus(end[0], start[0]),
        alone=_minus(end[1], start[1]),
        commands=tuple(module.received[lines:]),
    )


def _cpu(process: HassProcess) -> Cpu:
    return Cpu(process.cpu_seconds(), process.on_cpu_seconds())


def _minus(after: Cpu, before: Cpu) -> Cpu:
    return Cpu(after.ticks - before.ticks, after.on_cpu - before.on_cpu)

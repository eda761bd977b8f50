"""What a result is worth without: the machine, its load, the versions, the command."""

from __future__ import annotations

import os
from pathlib import Path
import platform
import shlex
import subprocess
import time

from homeassistant.const import __version__ as HA_VERSION

from .hass import ROOT


def describe(argv: list[str]) -> list[str]:
    """Lines of Markdown naming the machine, the versions and the command."""
    return [
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
        f"- machine: {os.cpu_count()} CPUs ({_cpu_model()}), {_memory()} memory, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, Home Assistant {HA_VERSION}",
        f"- code: {_git('rev-parse', '--short', 'HEAD')}"
        f" ({_changed()} files changed or new in the working tree)",
        f"- command: `{shlex.join(['scripts/bench', *argv])}`",
    ]


def load() -> str:
    """The load averages (1, 5, 15 minutes)."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _memory() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    return "unknown"


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip() or "unknown"


def _changed() -> int:
    status = _git("status", "--porcelain", "--untracked-files=all")
    return 0 if status == "unknown" else len(status.splitlines())

"""A real Home Assistant (``python -m homeassistant -c DIR``) with the probe, in a subprocess.

The integration (this repository's, or another copy of it to compare with) is linked into
the configuration's ``custom_components`` but only runs once the benchmark adds a config
entry, so the same configuration without an entry is Home Assistant alone. Its CPU time
comes from ``/proc/<pid>/stat`` (every thread of it, in clock ticks) and, finer, from each
thread's ``schedstat``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
import itertools
import json
import os
from pathlib import Path
import shutil
import sys
import tempfile
from types import TracebackType
from typing import Any, Self

from .timeline import Timeline

ROOT = Path(__file__).resolve().parents[1]
INTEGRATION = ROOT / "custom_components" / "aliyun_iot_at"
PROBE = ROOT / "bench" / "probe"
CONFIGURATION = """\
homeassistant:
  name: bench
  time_zone: Asia/Shanghai
  country: CN
  unit_system: metric
logger:
  default: warning
bench_probe:
  socket: {socket}
"""
START_TIMEOUT = 180.0
STOP_TIMEOUT = 30.0

type Message = dict[str, Any]


@dataclass(frozen=True)
class StateChange:
    """A state change the probe saw."""

    entity: str
    state: str | None


class HassProcess:
    """Home Assistant in its own process, driven through the probe's socket."""

    def __init__(self, config: Path, integration: Path = INTEGRATION) -> None:
        self.config = config
        self.integration = integration
        self.states: Timeline[StateChange] = Timeline()
        self._socket_dir = Path(tempfile.mkdtemp(prefix="bench-"))
        self._socket = self._socket_dir / "probe.sock"
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._replies: dict[int, asyncio.Future[Message]] = {}
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def pid(self) -> int:
        """The process id."""
        assert self._process is not None
        return self._process.pid

    async def start(self) -> None:
        """A fresh configuration, Home Assistant started, the probe answering."""
        self._write_config()
        log = (self.config / "stdout.log").open("wb")
        with log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "homeassistant", "-c", str(self.config), "--skip-pip",
                stdout=log, stderr=log, cwd=self.config,
            )  # fmt: skip
        async with asyncio.timeout(START_TIMEOUT):
            reader, self._writer = await self._connect()
            self._reader_task = asyncio.create_task(self._read(reader))
            await self.request("ping")

    async def stop(self) -> None:
        """Stop Home Assistant (killed if it does not stop in time); remove the socket."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)
            self._reader_task = None
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        shutil.rmtree(self._socket_dir, ignore_errors=True)

    async def request(self, op: str, timeout: float = 60.0, **args: Any) -> Message:
        """Send a request to the probe; its reply (``RuntimeError`` if it reports an error)."""
        assert self._writer is not None
        request_id = next(self._ids)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = future
        self._writer.write(json.dumps({"id": request_id, "op": op, **args}).encode() + b"\n")
        try:
            async with asyncio.timeout(timeout):
                reply = await future
        finally:
            self._replies.pop(request_id, None)
        if "error" in reply and op != "call":
            raise RuntimeError(f"probe {op}: {reply['error']}")
        return reply

    def cpu_seconds(self) -> float:
        """User and system CPU time of the process so far (all its threads)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        # Fields after the command name, which is in parentheses and may hold spaces.
        fields = stat[stat.rindex(")") + 2 :].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / os.sysconf("SC_CLK_TCK")

    def on_cpu_seconds(self) -> float:
        """Time on a CPU of the threads alive now, in nanoseconds' precision (schedstat);
        threads that ended are not counted."""
        total = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9

    def _write_config(self) -> None:
        if self.config.exists():
            shutil.rmtree(self.config)
        components = self.config / "custom_components"
        components.mkdir(parents=True)
        for name, source in (("aliyun_iot_at", self.integration), ("bench_probe", PROBE)):
            (components / name).symlink_to(source, target_is_directory=True)
        (self.config / "configuration.yaml").write_text(CONFIGURATION.format(socket=self._socket))

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        # Polled in the benchmark while Home Assistant starts: nothing to wake us otherwise.
        while True:
            if self._process is not None and self._process.returncode is not None:
                raise RuntimeError(f"Home Assistant exited; see {self.config / 'stdout.log'}")
            with contextlib.suppress(FileNotFoundError, ConnectionRefusedError):
                return await asyncio.open_unix_connection(str(self._socket))
            await asyncio.sleep(0.1)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            message: Message = json.loads(line)
            if message.get("event") == "state":
                self.states.add(StateChange(message["entity"], message["state"]), message["t"])
            elif (future := self._replies.get(message.get("id", -1))) and not future.done():
                future.set_result(message)
        for future in self._replies.values():
            if not future.done():
                future.set_exception(ConnectionError("the probe hung up"))

"""``scripts/demo --auto`` as a child process, driven through its console like a person would.

The console plays the Aliyun IoT Platform: ``set`` sends a property set to the device, ``posts``
lists what the device sent. The demo's stdout is read without threads (select on the pipe).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
import json
import os
from pathlib import Path
import select
import shutil
import subprocess
import time
from typing import IO, Any

PROPERTY_POST = "/thing/event/property/post"


class DemoProcess:
    """A running demo: its READY facts, its console, and everything it printed."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        stdin: IO[bytes],
        stdout: IO[bytes],
        config: Path,
    ) -> None:
        self._process = process
        self._config = config
        self._stdin = stdin
        self._stdout = stdout
        self._partial = b""
        self._consumed = 0
        self.transcript: list[str] = []
        self.ready: dict[str, Any] = {}

    @classmethod
    @contextmanager
    def run(
        cls, script: Path, config: Path, port: int, timeout: float, logs: Path
    ) -> Iterator[DemoProcess]:
        """Start the demo on ``port`` with a fresh ``config``; stopped on exit, when its
        stderr and Home Assistant's log are left in ``logs``."""
        config.mkdir(parents=True)
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / "demo.stderr").open("wb") as stderr:
            process = subprocess.Popen(
                [script, "--auto", "--config", str(config), "--port", str(port)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        assert process.stdin is not None and process.stdout is not None
        demo = cls(process, process.stdin, process.stdout, config)
        try:
            line = demo.wait_line(lambda line: line.startswith("READY "), timeout)
            demo.ready = json.loads(line.removeprefix("READY "))
            yield demo
        finally:
            demo.stop()
            if (config / "hass.log").exists():
                shutil.copy(config / "hass.log", logs / "hass.log")

    def wait_line(self, matches: Callable[[str], bool], timeout: float) -> str:
        """The next line printed that ``matches`` (earlier ones are passed over)."""
        deadline = time.monotonic() + timeout
        while True:
            while self._consumed < len(self.transcript):
                line = self.transcript[self._consumed]
                self._consumed += 1
                if matches(line):
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the demo did not print the line awaited in {timeout} s")
            self._read(remaining)

    def command(self, line: str) -> None:
        """Type a console command; what was printed before it is passed over."""
        while self._read(0):
            pass
        self._consumed = len(self.transcript)
        self._stdin.write(f"{line}\n".encode())
        self._stdin.flush()

    def uplinks(self) -> list[tuple[str, dict[str, Any]]]:
        """Every (topic, payload) the device sent the cloud so far."""
        self.command("posts")
        listed: list[tuple[str, dict[str, Any]]] = []
        while not (line := self.wait_line(lambda _: True, 10)).endswith(" messages)"):
            topic, _, payload = line.partition(" ")
            listed.append((topic, json.loads(payload)))
        return listed

    def property_posts(self) -> list[dict[str, Any]]:
        """The params of every property post the cloud received, oldest first."""
        uplinks = self.uplinks()
        return [payload["params"] for topic, payload in uplinks if topic.endswith(PROPERTY_POST)]

    def set_property(self, identifier: str, value: object) -> dict[str, Any]:
        """Send a property set from the cloud; returns the device's set_reply."""
        self.command(f"set {identifier} {json.dumps(value)}")
        line = self.wait_line(lambda line: line.startswith(("set_reply: ", "error: ")), 15)
        if line.startswith("error: "):
            raise AssertionError(f"the cloud's set failed: {line}")
        reply: dict[str, Any] = json.loads(line.removeprefix("set_reply: "))
        return reply

    def problems_logged(self, domain: str) -> list[str]:
        """Home Assistant's log lines that report ``domain``'s code (blocking calls,
        deprecations: "custom integration 'domain'") or an error in it."""
        lines = (self._config / "hass.log").read_text("utf-8", errors="replace").splitlines()
        return [
            line
            for line in lines
            if f"custom integration '{domain}'" in line or (" ERROR " in line and domain in line)
        ]

    def stop(self) -> None:
        """Quit through the console; terminate, then kill, if it does not."""
        if self._process.poll() is None:
            try:
                self._stdin.write(b"quit\n")
                self._stdin.close()
                self._process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self._process.terminate()
                try:
                    self._process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
        self._stdout.close()

    def _read(self, timeout: float) -> bool:
        """Add what the demo prints within ``timeout`` to the transcript; whether it did."""
        readable, _, _ = select.select([self._stdout], [], [], timeout)
        if not readable:
            return False
        chunk = os.read(self._stdout.fileno(), 65536)
        if not chunk:
            raise RuntimeError(f"the demo exited with {self._process.wait(timeout=30)}")
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        self.transcript += [line.decode(errors="replace") for line in lines]
        return True

"""``scripts/modem`` end to end: the CLI in its own process, on the emulated module's pty.

The CLI runs as ``scripts/modem`` runs it, on this test's interpreter: the script's loader
program (its here-document) loads the core on its own, without Home Assistant.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import json
from pathlib import Path
import re
import sys

import pytest

from custom_components.aliyun_iot_at.core.dialects import DIALECT_NAMES
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

from .conftest import DN, DS, PK, WRONG_SECRET, property_set

ROOT = Path(__file__).parents[2]
CORE = ROOT / "custom_components" / "aliyun_iot_at" / "core"
TIMEOUT = 20.0


def modem(*args: str) -> list[str]:
    """The command line of ``scripts/modem <args>`` on this interpreter; the loader goes in
    with ``-c``, so that stdin stays the CLI's input."""
    script = (ROOT / "scripts" / "modem").read_text()
    loader = script.split("<<'PY'\n", 1)[1].split("\nPY\n", 1)[0]
    return [sys.executable, "-c", loader, str(CORE), *args]


def connect_args(device: Path, dialect: str, secret: str = DS) -> list[str]:
    return [
        "connect",
        "--device",
        str(device),
        "--dialect",
        dialect,
        "--product-key",
        PK,
        "--device-name",
        DN,
        "--device-secret",
        secret,
    ]


class Modem:
    """The CLI in a subprocess: lines to its stdin, JSON lines from its stdout, and its
    stderr read as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stderr: list[str] = []

    async def said(self, pattern: str) -> re.Match[str]:
        """The first stderr line from now on that matches ``pattern``."""
        assert self.process.stderr is not None
        async with asyncio.timeout(TIMEOUT):
            while True:
                line = (await self.process.stderr.readline()).decode()
                if not line:
                    raise AssertionError(f"no {pattern!r} on stderr: {self.stderr}")
                self.stderr.append(line)
                if match := re.search(pattern, line):
                    return match

    async def printed(self) -> object:
        """The next JSON line on stdout."""
        assert self.process.stdout is not None
        async with asyncio.timeout(TIMEOUT):
            return json.loads(await self.process.stdout.readline())

    async def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()

    async def end_input(self) -> int:
        """Close stdin; the exit code, the rest of stderr read."""
        assert self.process.stdin is not None and self.process.stderr is not None
        self.process.stdin.close()
        async with asyncio.timeout(TIMEOUT):
            self.stderr += (await self.process.stderr.read()).decode().splitlines(keepends=True)
            return await self.process.wait()


@pytest.fixture(params=DIALECT_NAMES)
def dialect(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def connected(module: ModuleEmulator, dialect: str) -> AsyncIterator[Modem]:
    """``scripts/modem connect`` on the module, killed after the test if still running."""
    process = await asyncio.create_subprocess_exec(
        *modem(*connect_args(module.path, dialect)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield Modem(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_connect_relays_a_property_set_and_posts_what_it_reads(
    cloud: AliyunCloud, device: Device, connected: Modem
) -> None:
    await connected.said(r"^link connected$")

    msg_id = await cloud.set_properties(device, {"PowerSwitch": 1})
    expected = property_set(msg_id, {"PowerSwitch": 1})
    assert await connected.printed() == {
        "topic": expected.topic,
        "payload": expected.payload.decode(),
    }

    await connected.type('{"PowerSwitch": 1}')
    posted = await connected.said(r"^posted id (\S+)$")
    post = await cloud.wait_post(device)
    assert cloud.uplinks(device)[-1].topic == f"/sys/{PK}/{DN}/thing/event/property/post"
    assert post["params"] == {"PowerSwitch": 1}
    assert post["id"] == posted.group(1)

    assert await connected.end_input() == 0
    await cloud.wait_offline(device)
    assert connected.stderr[-1] == "link stopped\n"
    assert not any(line.startswith(("error", "not posted")) for line in connected.stderr)


async def test_a_line_that_is_no_json_object_is_not_posted(
    cloud: AliyunCloud, device: Device, connected: Modem
) -> None:
    await connected.said(r"^link connected$")
    await connected.type("[1, 2]")
    await connected.said(r"^not posted: not a JSON object$")
    await connected.type("{nope")
    await connected.said(r"^not posted: ")
    assert await connected.end_input() == 0
    assert cloud.uplinks(device) == []


async def test_probe_names_the_dialect(module: ModuleEmulator, dialect: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *modem("probe", "--device", str(module.path)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(TIMEOUT):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert f"dialect: {dialect}\n" in out.decode()


async def test_a_wrong_secret_fails_clearly_without_the_secret(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, dialect: str
) -> None:
    secret = WRONG_SECRET.device_secret
    process = await asyncio.create_subprocess_exec(
        *modem(*connect_args(module.path, dialect, secret)),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(TIMEOUT):
        out, err = await process.communicate()
    stderr = err.decode()
    assert process.returncode == 2
    assert re.search(r"^error: .*refused", stderr, re.MULTILINE), stderr
    assert secret not in stderr
    assert secret not in out.decode()
    assert not cloud.is_online(device)

"""What the dialect tests share: the link's side of a dialect, a port nothing listens on, and
a channel to the test file's emulated ``module``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
import socket

import pytest

from custom_components.aliyun_iot_at.core.channel import AtChannel
from custom_components.aliyun_iot_at.core.dialects import dialect_class
from custom_components.aliyun_iot_at.core.dialects.base import InboundMessage
from custom_components.aliyun_iot_at.core.transport import open_channel
from testbed.emulator import ModuleEmulator, Personality


class Events:
    """The link's side of a dialect (``LinkEvents``): what the dialect reported."""

    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []
        self.lost: list[str] = []
        self.changed = asyncio.Event()

    def message(self, message: InboundMessage) -> None:
        self.messages.append(message)
        self.changed.set()

    def link_lost(self, reason: str) -> None:
        self.lost.append(reason)
        self.changed.set()

    async def next_message(self, timeout: float = 5.0) -> InboundMessage:
        """The oldest message not taken yet, waiting for one if need be."""
        async with asyncio.timeout(timeout):
            while not self.messages:
                self.changed.clear()
                await self.changed.wait()
        return self.messages.pop(0)


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def offline_port(socket_enabled: None) -> int:
    """Where the module's MQTT (or HTTP) goes when no cloud is behind it: nowhere."""
    return closed_port()


@asynccontextmanager
async def channel_to(module: ModuleEmulator) -> AsyncIterator[AtChannel]:
    """A channel open to ``module``, knowing its dialect's power-on lines; closed after."""
    restart_lines = dialect_class(module.personality.dialect).restart_lines
    channel = await open_channel(str(module.path), restart_lines=restart_lines)
    assert channel.is_open
    try:
        yield channel
    finally:
        channel.close()
        await channel.wait_closed()


@asynccontextmanager
async def emulated(
    personality: str | type[Personality],
    link: Path,
    mqtt_port: int,
    *,
    http_port: int | None = None,
    firmware: str | None = None,
) -> AsyncIterator[tuple[ModuleEmulator, AtChannel]]:
    """An emulated module on a pty at ``link`` and a channel open to it; both closed after."""
    async with (
        ModuleEmulator(
            personality, link=link, mqtt_port=mqtt_port, http_port=http_port, firmware=firmware
        ) as module,
        channel_to(module) as channel,
    ):
        yield module, channel


@pytest.fixture
async def channel(module: ModuleEmulator) -> AsyncIterator[AtChannel]:
    """A channel open to the test file's ``module``."""
    async with channel_to(module) as opened:
        yield opened

"""End to end: the link drives an emulated module over a pty to the local cloud.

A test file names its module with a ``dialect`` fixture; the rest is shared: the device in
the cloud, the emulated module, and sessions — links with the messages they delivered and the
states they went through.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
import json
from pathlib import Path

import pytest

from custom_components.aliyun_iot_at.core import alink
from custom_components.aliyun_iot_at.core.dialects.base import (
    DeviceIdentity,
    Endpoint,
    InboundMessage,
    LinkSettings,
)
from custom_components.aliyun_iot_at.core.errors import AtError
from custom_components.aliyun_iot_at.core.link import Link, LinkState, PortSettings
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator, Personality

# Short enough for the ME3630, whose topics may not exceed 64 bytes.
PK = "a1E2eTest01"
DN = "e2e-device"
DS = "Hq3YtJ0v9m2LkfP8sWc6RbN4xZ1aDgE7"
IDENTITY = DeviceIdentity(PK, DN, DS)
WRONG_SECRET = replace(IDENTITY, device_secret="0" * 32)
TOPICS = alink.Topics(PK, DN)
HOST = f"{PK}.iot-as-mqtt.cn-shanghai.aliyuncs.com"


def cloud_json(payload: Mapping[str, object]) -> bytes:
    """What the cloud puts on the wire."""
    return json.dumps(payload, separators=(",", ":")).encode()


def property_set(msg_id: str, params: Mapping[str, object]) -> InboundMessage:
    """The property set the cloud sends with ``cloud.set_properties``, as the link delivers it."""
    method = "thing.service.property.set"
    message = {"id": msg_id, "version": "1.0", "params": params, "method": method}
    return InboundMessage(TOPICS.property_set, cloud_json(message))


class Emulators:
    """Modules on ptys in the test's folder, their MQTT and HTTP going to the local cloud."""

    def __init__(self, folder: Path, cloud: AliyunCloud) -> None:
        self._folder = folder
        self._cloud = cloud
        self._made = 0

    def new(
        self, personality: str | type[Personality], *, firmware: str | None = None
    ) -> ModuleEmulator:
        """A module (not started yet) with its own pty."""
        self._made += 1
        return ModuleEmulator(
            personality,
            link=self._folder / f"tty{self._made}",
            mqtt_port=self._cloud.mqtt_port,
            http_port=self._cloud.http_port,
            firmware=firmware,
        )


class Session:
    """A link to the module, the messages it delivered and the states it went through."""

    def __init__(
        self,
        module: ModuleEmulator,
        dialect: str,
        *,
        identity: DeviceIdentity = IDENTITY,
        endpoint: Endpoint | None = None,
        health_interval: float = 60.0,
        attach_timeout: float = 60.0,
    ) -> None:
        self.inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
        self._changes: list[tuple[LinkState, AtError | None]] = []
        self._changed = asyncio.Event()
        settings = LinkSettings(identity, endpoint or Endpoint(), attach_timeout=attach_timeout)
        self.link = Link(
            PortSettings(str(module.path)),
            dialect,
            settings,
            alink.Topics(identity.product_key, identity.device_name).subscriptions(),
            on_message=self.inbox.put_nowait,
            on_state=self._on_state,
            backoff=(0.05,),
            health_interval=health_interval,
        )

    def _on_state(self, state: LinkState, error: AtError | None) -> None:
        self._changes.append((state, error))
        self._changed.set()

    async def wait_state(self, state: LinkState, timeout: float = 10.0) -> AtError | None:
        """Until the link enters ``state``; the error it came with. Changes up to it are
        consumed: the next call waits for a later visit."""
        async with asyncio.timeout(timeout):
            while state not in (entered for entered, _ in self._changes):
                self._changed.clear()
                await self._changed.wait()
        index = next(i for i, (entered, _) in enumerate(self._changes) if entered is state)
        error = self._changes[index][1]
        del self._changes[: index + 1]
        return error

    async def next_message(self, timeout: float = 5.0) -> InboundMessage:
        async with asyncio.timeout(timeout):
            return await self.inbox.get()


async def lose_and_recover(
    session: Session,
    cloud: AliyunCloud,
    device: Device,
    lose: Callable[[], Awaitable[object]],
) -> AtError | None:
    """Start ``session``'s supervisor and, once the device is online, ``lose`` the session
    (a cause answering ``False`` fails the test); return the error the link reported the loss
    with, once it is up and online again."""
    session.link.start()
    await session.wait_state(LinkState.CONNECTED)
    await cloud.wait_online(device)
    assert await lose() is not False
    error = await session.wait_state(LinkState.DISCONNECTED)
    await session.wait_state(LinkState.CONNECTED)
    await cloud.wait_online(device)
    return error


async def a_set_arrives(session: Session, cloud: AliyunCloud, device: Device) -> None:
    """A property set the cloud sends now reaches the link: it subscribed again."""
    msg_id = await cloud.set_properties(device, {"PowerSwitch": 0})
    assert json.loads((await session.next_message()).payload)["id"] == msg_id


class Sessions:
    """Makes sessions on the test's module (or another one); stops them all after the test."""

    def __init__(self, module: ModuleEmulator, dialect: str, endpoint: Endpoint) -> None:
        self._module = module
        self._dialect = dialect
        self._endpoint = endpoint
        self.made: list[Session] = []

    def new(
        self,
        module: ModuleEmulator | None = None,
        *,
        identity: DeviceIdentity = IDENTITY,
        endpoint: Endpoint | None = None,
        health_interval: float = 60.0,
        attach_timeout: float = 60.0,
    ) -> Session:
        session = Session(
            module or self._module,
            self._dialect,
            identity=identity,
            endpoint=endpoint or self._endpoint,
            health_interval=health_interval,
            attach_timeout=attach_timeout,
        )
        self.made.append(session)
        return session


@pytest.fixture
def device(cloud: AliyunCloud) -> Device:
    return cloud.add_device(PK, DN, DS)


@pytest.fixture
def endpoint() -> Endpoint:
    """Where the test file's sessions go."""
    return Endpoint()


@pytest.fixture
def emulators(tmp_path: Path, cloud: AliyunCloud) -> Emulators:
    return Emulators(tmp_path, cloud)


@pytest.fixture
async def module(emulators: Emulators, dialect: str) -> AsyncIterator[ModuleEmulator]:
    """The test file's module."""
    async with emulators.new(dialect) as emulator:
        yield emulator


@pytest.fixture
async def sessions(
    module: ModuleEmulator, dialect: str, endpoint: Endpoint
) -> AsyncIterator[Sessions]:
    made = Sessions(module, dialect, endpoint)
    yield made
    for session in made.made:
        await session.link.stop()


@pytest.fixture
def session(sessions: Sessions) -> Session:
    """A session whose link checks the session only every minute: only what the module
    announces (or a failed publish) tells it of a loss in a test's time."""
    return sessions.new()


@pytest.fixture
def watched(sessions: Sessions) -> Session:
    """A session whose link checks the session often: for modules that announce no loss."""
    return sessions.new(health_interval=0.1)

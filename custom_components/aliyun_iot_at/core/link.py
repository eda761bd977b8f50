"""The link: one port, one module, one Aliyun MQTT session kept alive by itself.

``connect_once`` is a single attempt that raises the typed error a user can act on (the config
flow's test-before-configure, the CLI). ``start`` runs a supervisor that connects, watches
for every kind of loss (the dialect's URC, a reboot, the port vanishing, a failed publish, a
periodic check for modules that announce nothing) and reconnects with backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
import contextlib
from dataclasses import dataclass
from enum import StrEnum
import logging

from .channel import AtChannel
from .dialects import dialect_class
from .dialects.base import Dialect, InboundMessage, LinkSettings, ModuleInfo
from .errors import AtError, AuthRefused, NotConnected, PortError, PublishFailed
from .identify import read_info
from .transport import DEFAULT_BAUDRATE, open_channel

_LOGGER = logging.getLogger(__name__)

# Seconds between reconnect attempts: quick at first, then at most every five minutes.
DEFAULT_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Seconds a closing port may take: the serial transport flushes and closes it in the executor
# after ``close`` returned, so the link waits for it before the port counts as closed.
PORT_CLOSE_TIMEOUT = 5.0


class LinkState(StrEnum):
    """Where the session is."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    STOPPED = "stopped"


@dataclass(frozen=True)
class PortSettings:
    """The port: a device path or a pyserial URL, and its baud rate."""

    url: str
    baudrate: int = DEFAULT_BAUDRATE


StateCallback = Callable[[LinkState, AtError | None], None]
MessageCallback = Callable[[InboundMessage], None]


class Link:
    """Owns the port and the module's MQTT session."""

    def __init__(
        self,
        port: PortSettings,
        dialect: str,
        settings: LinkSettings,
        topics: Sequence[str],
        *,
        on_message: MessageCallback,
        on_state: StateCallback | None = None,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        health_interval: float = 60.0,
    ) -> None:
        self.port = port
        self.dialect_name = dialect
        self.settings = settings
        self.topics = tuple(topics)
        self.info: ModuleInfo | None = None
        self.state = LinkState.DISCONNECTED
        self.last_error: AtError | None = None
        self._dialect_cls = dialect_class(dialect)
        self._on_message = on_message
        self._on_state = on_state
        self._backoff = tuple(backoff)
        self._health_interval = health_interval
        self._channel: AtChannel | None = None
        self._dialect: Dialect | None = None
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._task: asyncio.Task[None] | None = None
        self._publish_lock = asyncio.Lock()

    # --- LinkEvents (called by the dialect) ---------------------------------------------

    def message(self, message: InboundMessage) -> None:
        """A message arrived; hand it on."""
        self._on_message(message)

    def link_lost(self, reason: str) -> None:
        """The session is gone: wake the supervisor."""
        if not self._lost.is_set():
            self._lost_reason = reason
            self._lost.set()

    # --- one attempt ------------------------------------------------------------------

    async def connect_once(self) -> ModuleInfo:
        """Open the port if needed and bring the session up once; raise what went wrong."""
        self._set_state(LinkState.CONNECTING, None)
        self._lost.clear()
        try:
            channel = await self._ensure_channel()
            dialect = self._dialect_cls(channel, self.settings, self)
            self._dialect = dialect
            await dialect.initialize()
            if self.info is None:
                self.info = await read_info(channel)
            await dialect.attach()
            await dialect.connect()
            await dialect.subscribe(self.topics)
        except AtError as err:
            self._set_state(LinkState.DISCONNECTED, err)
            raise
        self._set_state(LinkState.CONNECTED, None)
        return self.info

    async def _ensure_channel(self) -> AtChannel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        channel = await open_channel(
            self.port.url, self.port.baudrate, restart_lines=self._dialect_cls.restart_lines
        )
        channel.on_restart = lambda line: self.link_lost(f"the module restarted ({line})")
        channel.on_lost = lambda exc: self.link_lost("the port was lost")
        self._channel = channel
        return channel

    # --- the supervisor -----------------------------------------------------------------

    def start(self) -> None:
        """Keep the session up in the background until ``stop``."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"aliyun_iot_at link {self.port.url}"
            )

    async def _supervise(self) -> None:
        attempt = 0
        while True:
            if self.state is not LinkState.CONNECTED:
                try:
                    await self.connect_once()
                except AtError as err:
                    # Some modules cannot tell a refused login from an unreachable broker, so
                    # refused credentials are retried too — but only at the slowest pace, so
                    # the cloud does not throttle the device.
                    slowest = len(self._backoff) - 1
                    step = slowest if isinstance(err, AuthRefused) else min(attempt, slowest)
                    delay = self._backoff[step]
                    attempt += 1
                    _LOGGER.debug("connect failed (%s); retrying in %g s", err, delay)
                    await self._drop_channel_if_broken()
                    await asyncio.sleep(delay)
                    continue
            attempt = 0
            await self._watch()
            self._set_state(LinkState.DISCONNECTED, NotConnected(self._lost_reason))
            await self._drop_channel_if_broken()

    async def _watch(self) -> None:
        """Return when the session is lost; poll cheaply for modules that say nothing."""
        dialect = self._dialect
        assert dialect is not None
        while not self._lost.is_set():
            try:
                async with asyncio.timeout(self._health_interval):
                    await self._lost.wait()
            except TimeoutError:
                async with self._publish_lock:
                    alive = await _session_alive(dialect)
                if not alive:
                    self.link_lost("the module no longer reports a session")

    async def _drop_channel_if_broken(self) -> None:
        """After a loss, keep a healthy port but close one that stopped answering."""
        channel = self._channel
        if channel is None:
            return
        if channel.is_open:
            try:
                await channel.command("AT", timeout=2.0)
            except AtError:
                pass
            else:
                return
        await self._close_channel()

    async def _close_channel(self) -> None:
        """Close the port and wait until it is closed: the transport finishes closing it
        after ``close`` returns, and a port reopened (or a loop ended) meanwhile would find
        it still open. The channel stays ours until then, so a ``stop`` arriving meanwhile
        waits for it too."""
        channel = self._channel
        if channel is None:
            return
        channel.close()
        try:
            async with asyncio.timeout(PORT_CLOSE_TIMEOUT):
                await channel.wait_closed()
        except TimeoutError:
            _LOGGER.debug("the port did not close within %g s", PORT_CLOSE_TIMEOUT)
        if self._channel is channel:
            self._channel = None

    # --- use ----------------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        """Publish now; ``NotConnected`` while the session is down."""
        dialect = self._dialect
        if self.state is not LinkState.CONNECTED or dialect is None:
            raise NotConnected("the cloud link is down")
        async with self._publish_lock:
            try:
                await dialect.publish(topic, payload, qos)
            except (PublishFailed, PortError) as err:
                # A failed publish is how ML302/ME3630 show a silent loss: check the session.
                if isinstance(err, PortError) or not await _session_alive(dialect):
                    self.link_lost(str(err))
                raise

    async def signal(self) -> int | None:
        """The module's signal strength in dBm, None when it does not know; ``NotConnected``
        while the session is down. Taken between publishes, never inside one."""
        dialect = self._dialect
        if self.state is not LinkState.CONNECTED or dialect is None:
            raise NotConnected("the cloud link is down")
        async with self._publish_lock:
            return await dialect.signal()

    @property
    def max_payload(self) -> int:
        """The largest payload the module publishes at once."""
        return self._dialect_cls.max_payload

    async def stop(self) -> None:
        """Stop the supervisor, close the session and the port; return once it is closed."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._dialect is not None and self.state is LinkState.CONNECTED:
            try:
                await self._dialect.disconnect()
            except AtError as err:
                _LOGGER.debug("disconnect failed: %s", err)
        await self._close_channel()
        self._set_state(LinkState.STOPPED, None)

    def _set_state(self, state: LinkState, error: AtError | None) -> None:
        self.last_error = error
        if state is self.state and error is None:
            return
        self.state = state
        if self._on_state is not None:
            self._on_state(state, error)


async def _session_alive(dialect: Dialect) -> bool:
    try:
        return await dialect.is_connected()
    except AtError:
        return False

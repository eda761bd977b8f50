"""The module's one MQTT session, carried by amqtt's client to the local stand-in of the cloud.

Modules are told to reach Aliyun hosts, which are unreachable here: every host name maps to
the local cloud. What the module was asked to reach is kept in ``target`` for assertions.

How amqtt 0.12.1 reports things (read from its source):
- a refused CONNECT raises ``ConnectError`` whose ``return_code`` is the CONNACK code; a TCP
  failure raises it with ``return_code`` ``None``. The socket of a refused CONNECT is left
  open, so it is closed here.
- a lost connection has no callback: the client cancels its pending ``deliver_message``
  (which then returns ``None``, or raises ``CancelledError`` when it had not started yet, or
  ``AMQTTError`` when the connection was gone before it asked).
- ``auto_reconnect`` defaults to on; a module reports the loss instead, so it is off.
- operations waiting for an acknowledgement are not woken when the connection drops, so each
  one is raced against the loss and a packet timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
import logging
import math
from typing import Any

from amqtt.client import MQTTClient
from amqtt.errors import AMQTTError, ClientError, ProtocolHandlerError

_LOGGER = logging.getLogger(__name__)

NO_LINK = -1  # connect(): the broker could not be reached at all


@dataclass(frozen=True)
class InboundMessage:
    """A PUBLISH the cloud sent to the module."""

    topic: str
    payload: bytes
    qos: int
    packet_id: int | None
    retain: bool


class _Client(MQTTClient):  # type: ignore[misc]
    """amqtt's client, given the user name and password directly instead of in the broker
    URI: amqtt logs that URI, and the password must never reach a log."""

    def __init__(
        self, client_id: str, config: dict[str, Any], username: str, password: str
    ) -> None:
        super().__init__(client_id, config)
        self._credentials = (username or None, password or None)

    def _init_session(self, *args: Any, **kwargs: Any) -> Any:
        session = super()._init_session(*args, **kwargs)
        session.username, session.password = self._credentials
        return session


class MqttBridge:
    """Connect, subscribe, publish and disconnect on behalf of the emulated module.

    ``on_message`` gets every inbound PUBLISH; ``on_lost`` is called once when the broker
    ends the session (never after ``disconnect``).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_message: Callable[[InboundMessage], None],
        on_lost: Callable[[], None],
        timeout: float = 5.0,
    ) -> None:
        self._host = host
        self._port = port
        self._on_message = on_message
        self._on_lost = on_lost
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._client: _Client | None = None
        self._pump: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self.target: tuple[str, int, bool] | None = None  # (host, port, tls) last asked for

    @property
    def connected(self) -> bool:
        """Whether the MQTT session is up."""
        return self._client is not None and not self._lost.is_set()

    async def connect(
        self,
        host: str,
        port: int,
        client_id: str,
        username: str,
        password: str,
        keepalive: int,
        tls: bool,
    ) -> int:
        """Open the session: 0 when accepted, the CONNACK code when refused, else ``NO_LINK``.

        ``tls`` is taken as the module's flag only: the local link is plain TCP (the local
        cloud has no certificate a module would trust).
        """
        async with self._lock:
            await self._close()
            self.target = (host, port, tls)
            config = {
                "auto_reconnect": False,
                "keep_alive": keepalive,
                "ping_delay": 0,  # CONNECT carries exactly the module's keepalive
                "connection_timeout": math.ceil(self._timeout),  # amqtt wants an int
                "plugins": {},  # amqtt's packet logger would log the CONNECT password
            }
            client = _Client(client_id, config, username, password)
            try:
                await client.connect(f"mqtt://{self._host}:{self._port}")
            except ClientError as err:
                await _release(client)
                if _cancelling():
                    # amqtt turns a cancellation into ConnectError; restore it.
                    raise asyncio.CancelledError from err
                code = getattr(err, "return_code", None)
                _LOGGER.debug("MQTT connect failed: %s (code %s)", err, code)
                return NO_LINK if code is None else int(code)
            _cancel_as_cancelled(client._handler)
            self._client = client
            self._lost.clear()
            self._pump = asyncio.create_task(self._deliver(client))
            return 0

    async def subscribe(self, topics: Sequence[tuple[str, int]]) -> list[int] | None:
        """Subscribe: the SUBACK codes (granted QoS, 0x80 refused), ``None`` when it failed."""
        codes: list[int] | None = await self._call(lambda c: c.subscribe(list(topics)))
        return codes

    async def unsubscribe(self, topics: Sequence[str]) -> bool:
        """Unsubscribe; whether the UNSUBACK came."""
        return await self._call(lambda c: _done(c.unsubscribe(list(topics)))) is not None

    async def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> bool:
        """Publish (QoS 1/2 wait for the acknowledgement); whether it went out."""
        return (
            await self._call(lambda c: _done(c.publish(topic, payload, qos=qos, retain=retain)))
            is not None
        )

    async def disconnect(self) -> None:
        """End the session (DISCONNECT when it is still up); no ``on_lost``. Idempotent."""
        async with self._lock:
            await self._close()

    async def _close(self) -> None:
        client, self._client = self._client, None
        pump, self._pump = self._pump, None
        if pump is not None and not pump.done():
            pump.cancel()
            await asyncio.wait([pump])
        if client is None:
            return
        if not self._lost.is_set():
            try:
                await client.disconnect()
            except Exception as err:  # the session is going away regardless
                _LOGGER.debug("MQTT disconnect failed: %r", err)
        await _release(client)

    async def _deliver(self, client: _Client) -> None:
        try:
            while (message := await client.deliver_message()) is not None:
                self._on_message(
                    InboundMessage(
                        topic=message.topic,
                        payload=bytes(message.data),
                        qos=message.qos or 0,
                        packet_id=message.packet_id,
                        retain=bool(message.retain),
                    )
                )
        except asyncio.CancelledError:
            if _cancelling():
                raise
        except (ClientError, AMQTTError) as err:
            # AMQTTError: the connection closed before amqtt's delivery task started.
            _LOGGER.debug("MQTT delivery ended: %r", err)
        self._lost.set()
        self._on_lost()

    async def _call[T](self, operation: Callable[[_Client], Awaitable[T]]) -> T | None:
        """Run ``operation`` on the session unless it is down, drops meanwhile, or times out."""
        client = self._client
        # amqtt waits for a reconnection (there is none) when the connection is gone.
        if client is None or self._lost.is_set() or not client._connected_state.is_set():
            return None
        task = asyncio.ensure_future(operation(client))
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait(
                (task, lost), timeout=self._timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            task.cancel()
            lost.cancel()
            await asyncio.wait((task, lost))
        if task.cancelled() or task.exception() is not None:
            reason = "cancelled" if task.cancelled() else repr(task.exception())
            _LOGGER.debug("MQTT operation failed: %s", reason)
            return None
        return task.result()


async def _done(operation: Awaitable[Any]) -> bool:
    """Await an amqtt call whose result is not needed; ``True`` once it completed."""
    await operation
    return True


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _cancel_as_cancelled(handler: Any) -> None:
    """amqtt 0.12.1 acknowledges each QoS 1 message in a task of its own, which the end of the
    connection cancels and nothing awaits; its packet writer turns the cancellation into
    ``ProtocolHandlerError``, which asyncio then reports as an exception never retrieved.
    Here a cancelled write stays a cancellation: the task ends cancelled, quietly."""
    send = handler._send_packet

    async def send_packet(packet: Any) -> None:
        try:
            await send(packet)
        except ProtocolHandlerError as err:
            if isinstance(err.__cause__, asyncio.CancelledError):
                raise asyncio.CancelledError from err
            raise

    handler._send_packet = send_packet


async def _release(client: Any) -> None:
    """Finish what amqtt 0.12.1 leaves behind: the open socket of a refused or cancelled
    CONNECT, a reader task still winding down after ``disconnect``, and the two tasks an
    operation cancelled while it waited for a reconnection leaves waiting (destroyed pending
    once the client is gone)."""
    client._no_more_connections.set()
    client._connected_state.set()
    handler = client._handler
    if handler is None:
        return
    await handler.stop()
    if handler._reader_task is not None:
        await asyncio.wait([handler._reader_task])

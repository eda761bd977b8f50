"""The cloud's MQTT broker: amqtt on 127.0.0.1 applying Aliyun's connection and topic rules.

The broker owns its TCP server (amqtt's "external" listener), so it knows its port and can
cut a device's socket to emulate a link dropped by the cloud.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
import logging
import secrets

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import BrokerConfig, ListenerConfig, ListenerType
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.mqtt.publish import PublishPacket
from amqtt.session import Session

from .auth import (
    AuthFailure,
    AuthLog,
    AuthRefused,
    check_keepalive,
    check_signed_connect,
    check_token_connect,
    same_secret,
)
from .plugin import AliyunPlugin
from .registry import Device, DeviceKey, DeviceRegistry
from .topics import may_use
from .watch import Watch

_LOGGER = logging.getLogger(__name__)

ADMIN_USERNAME = "aliyun-cloud-service"
_LISTENER = "default"
# Where the broker keeps, in amqtt's Session.attributes, who a session authenticated as.
_IDENTITY = "aliyun_identity"


class _Admin:
    """The identity of the cloud's own service client."""


_ADMIN = _Admin()


@dataclass
class _AliyunBrokerConfig(BrokerConfig):  # type: ignore[misc]
    """amqtt caps granted subscription QoS at ``max-qos``: Aliyun serves QoS 0 and 1 only."""

    max_qos: int = QOS_1


class _Connection(StreamWriterAdapter):  # type: ignore[misc]
    """amqtt's writer for one TCP connection, which the cloud can also cut."""

    def __init__(self, stream: asyncio.StreamWriter) -> None:
        super().__init__(stream)
        self._stream = stream

    @property
    def closed(self) -> bool:
        """Closed by amqtt or cut by the cloud."""
        return bool(self.is_closed) or self._stream.is_closing()

    def cut(self) -> None:
        """Close the socket under amqtt's feet, as a dropped link would."""
        self._stream.close()

    def write(self, data: bytes) -> None:
        """Write, or fail as a reset connection does once it is closed: amqtt 0.12.1 re-arms
        a session's keepalive timer after each packet it sends, also on a connection it has
        stopped (a broadcast still on its way), and that timer outlives the broker. A failed
        write is taken as the connection closing, before the timer is re-armed."""
        if self.closed:
            raise ConnectionResetError("the connection is closed")
        super().write(data)


type _Holders = list[tuple[Session, int]]


class _SnapshotList(list[tuple[Session, int]]):
    """Iterated as it was when the iteration began."""

    def __iter__(self) -> Iterator[tuple[Session, int]]:
        return iter(self.copy())


class _Subscriptions(dict[str, _Holders]):
    """amqtt's subscription table (filter -> sessions), safe to change while it is walked.

    amqtt 0.12.1 walks it with awaits inside the loop (a broadcast asks the topic filter of
    each subscriber), while its session-expiry task, every second, removes the subscriptions of
    closed sessions from the same lists: the subscriber after a removed one was then skipped
    and the message silently lost. Walks here go over a snapshot.
    """

    def __setitem__(self, key: str, value: _Holders) -> None:
        super().__setitem__(key, _SnapshotList(value))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.keys()))

    def items(self) -> list[tuple[str, _Holders]]:  # type: ignore[override]
        return list(super().items())


@dataclass(frozen=True)
class _Link:
    """A device's accepted connection."""

    session: Session
    connection: _Connection


class CloudBroker:
    """amqtt broker with Aliyun's rules; also the ``BrokerHooks`` its plugin asks."""

    def __init__(self, registry: DeviceRegistry, auth_log: AuthLog) -> None:
        self._registry = registry
        self._auth_log = auth_log
        self._admin_password = secrets.token_hex(16)
        self._broker: Broker | None = None
        self._server: asyncio.Server | None = None
        self._port = 0
        self._connections: set[asyncio.Task[None]] = set()
        self._online: dict[DeviceKey, _Link] = {}
        self._presence = Watch()

    def __repr__(self) -> str:
        return f"CloudBroker(port={self._port}, online={sorted(self._online)})"

    @property
    def port(self) -> int:
        """The MQTT port on 127.0.0.1."""
        if self._server is None:
            raise RuntimeError("broker not started")
        return self._port

    @property
    def admin_password(self) -> str:
        """The password of ``ADMIN_USERNAME``, made at construction."""
        return self._admin_password

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        if self._server is not None:
            return
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0, start_serving=False)
        port: int = server.sockets[0].getsockname()[1]
        plugin = f"{AliyunPlugin.__module__}.{AliyunPlugin.__qualname__}"
        config = _AliyunBrokerConfig(
            listeners={
                _LISTENER: ListenerConfig(type=ListenerType.EXTERNAL, bind=f"127.0.0.1:{port}")
            },
            plugins={plugin: {"hooks": self}},
            timeout_disconnect_delay=0,
        )
        broker = Broker(config)
        broker._subscriptions = _Subscriptions()  # see _Subscriptions
        await broker.start()
        self._broker, self._server, self._port = broker, server, port
        await server.start_serving()
        _LOGGER.debug("MQTT broker listening on 127.0.0.1:%d", port)

    async def stop(self) -> None:
        """Close every session and the listening socket."""
        server, broker = self._server, self._broker
        if server is None or broker is None:
            return
        self._server = self._broker = None
        server.close()
        await broker.shutdown()
        # Connections that never sent a CONNECT are not amqtt sessions: drop them too.
        server.close_clients()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()
        self._online.clear()

    def is_online(self, device: Device) -> bool:
        """Whether the device has an accepted MQTT session."""
        return device.key in self._online

    async def wait_online(self, device: Device, timeout: float) -> None:
        """Until the device has an accepted session."""
        await self._presence.wait_for(
            lambda: True if self.is_online(device) else None, timeout, f"session of {device}"
        )

    async def wait_offline(self, device: Device, timeout: float) -> None:
        """Until the device has no session."""
        await self._presence.wait_for(
            lambda: None if self.is_online(device) else True, timeout, f"end of {device}'s session"
        )

    def subscriptions(self, device: Device) -> list[str]:
        """The topic filters the device's connected sessions hold, sorted; a filter held
        twice (by two sessions) is listed twice. amqtt keeps the subscriptions of a closed
        session until its client id connects again: those are left out."""
        broker = self._broker
        if broker is None:
            return []
        return sorted(
            topic
            for topic, holders in broker.subscriptions.items()
            for session, _ in holders
            if _device_of(session) == device.key and session.transitions.is_connected()
        )

    async def kick(self, device: Device, timeout: float) -> bool:
        """Cut the device's connection and wait until the broker has dropped its session.

        Returns whether there was a session to cut.
        """
        link = self._online.get(device.key)
        if link is None:
            return False
        _LOGGER.info("Cutting the connection of %s", device)
        link.connection.cut()
        await self._presence.wait_for(
            lambda: None if self._online.get(device.key) is link else True,
            timeout,
            f"end of {device}'s session",
        )
        return True

    # BrokerHooks, asked by AliyunPlugin.

    def authenticate(self, session: Session) -> bool:
        client_id: str = session.client_id or ""
        username: str = session.username or ""
        session.attributes.pop(_IDENTITY, None)
        try:
            identity = self._identify(client_id, username, session.password, session.keep_alive)
        except AuthRefused as refused:
            self._auth_log.record(AuthFailure("mqtt", client_id, username, refused.reason))
            return False
        session.attributes[_IDENTITY] = identity
        return True

    def may_access(self, session: Session, topic: str) -> bool:
        identity = session.attributes.get(_IDENTITY)
        if identity is _ADMIN:
            return True
        return isinstance(identity, Device) and may_use(identity, topic)

    async def client_connected(self, client_id: str, session: Session) -> None:
        device = session.attributes.get(_IDENTITY)
        if not isinstance(device, Device) or self._broker is None:
            return
        _, handler = self._broker.sessions.get(client_id, (None, None))
        connection = handler.writer if handler is not None else None
        # The connection may be gone already, or belong to a newer session.
        if (
            not isinstance(connection, _Connection)
            or connection.closed
            or handler.session is not session
        ):
            return
        old = self._online.get(device.key)
        self._online[device.key] = _Link(session, connection)
        _LOGGER.info("%s online as %r", device, client_id)
        if old is not None and old.connection is not connection:
            # Aliyun keeps one session per device: a new one closes the old.
            _LOGGER.info("%s opened a new session: closing the old one", device)
            old.connection.cut()
        await self._presence.changed()

    async def packet_received(self, packet: object, session: Session) -> None:
        if not isinstance(packet, PublishPacket) or packet.qos != QOS_2:
            return
        device = session.attributes.get(_IDENTITY)
        link = self._online.get(device.key) if isinstance(device, Device) else None
        if link is not None and link.session is session:
            # Aliyun takes QoS 0 and 1 only; the message is dropped with the connection.
            _LOGGER.warning("%s published with QoS 2: closing its connection", device)
            link.connection.cut()

    def _identify(
        self, client_id: str, username: str, password: str | None, keepalive: int
    ) -> Device | _Admin:
        check_keepalive(keepalive)
        if username == ADMIN_USERNAME:
            if not same_secret(self._admin_password, password):
                raise AuthRefused("wrong service password")
            return _ADMIN
        # iotIds hold no "&"; a client id with "|" or a "dn&pk" user name means a signed CONNECT.
        if "|" in client_id or "&" in username:
            device = check_signed_connect(self._registry, client_id, username, password)
        else:
            device = check_token_connect(self._registry, client_id, username, password)
        self._registry.accepted(password or "")
        return device

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        broker = self._broker
        if broker is None:
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        connection = _Connection(writer)
        try:
            await broker.external_connected(StreamReaderAdapter(reader), connection, _LISTENER)
        except (AMQTTError, MQTTError, NoDataError, OSError) as err:
            _LOGGER.debug("MQTT connection ended: %r", err)
        finally:
            if task is not None:
                self._connections.discard(task)
            await self._forget(connection)

    async def _forget(self, connection: _Connection) -> None:
        for key, link in list(self._online.items()):
            if link.connection is connection:
                del self._online[key]
                _LOGGER.info("%s/%s offline", *key)
                await self._presence.changed()


def _device_of(session: Session) -> DeviceKey | None:
    identity = session.attributes.get(_IDENTITY)
    return identity.key if isinstance(identity, Device) else None

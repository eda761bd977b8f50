"""The amqtt plugin through which the cloud decides who connects and which topics they use.

amqtt builds its plugins itself from the broker config, so the plugin only forwards each
question to the ``BrokerHooks`` object handed to it in that config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from amqtt.broker import BrokerContext
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session


@runtime_checkable
class BrokerHooks(Protocol):
    """What the plugin asks the cloud."""

    def authenticate(self, session: Session) -> bool:
        """Whether the CONNECT of ``session`` is let in."""

    def may_access(self, session: Session, topic: str) -> bool:
        """Whether ``session`` may publish, subscribe or receive on ``topic``."""

    async def client_connected(self, client_id: str, session: Session) -> None:
        """A session was accepted."""

    async def packet_received(self, packet: object, session: Session) -> None:
        """A packet arrived from an accepted session."""


class AliyunPlugin(BaseAuthPlugin, BaseTopicPlugin):  # type: ignore[misc]
    """Authentication, topic ACL and session events, all answered by ``Config.hooks``."""

    @dataclass
    class Config:
        """amqtt fills this from the plugin's entry in the broker config."""

        hooks: BrokerHooks | None = None

    def __init__(self, context: BrokerContext) -> None:
        super().__init__(context)
        hooks = self.config.hooks
        if not isinstance(hooks, BrokerHooks):
            raise TypeError("AliyunPlugin needs its 'hooks' config")
        self._hooks = hooks

    async def authenticate(self, *, session: Session) -> bool:
        return self._hooks.authenticate(session)

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        return session is not None and topic is not None and self._hooks.may_access(session, topic)

    async def on_broker_client_connected(self, *, client_id: str, client_session: Session) -> None:
        await self._hooks.client_connected(client_id, client_session)

    async def on_mqtt_packet_received(
        self, *, packet: object, session: Session | None = None
    ) -> None:
        # amqtt reports the CONNECT packet before any session exists.
        if session is not None:
            await self._hooks.packet_received(packet, session)

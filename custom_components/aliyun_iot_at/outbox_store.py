"""The outbox kept across restarts of Home Assistant, in its storage.

Written only when it matters, so a healthy link costs no disk writes: while something waits
that cannot go out (the link is down, a publish failed), and once more when all of it has
gone, so that a restart neither loses what waited nor sends it twice. A write waits
``delay`` seconds, gathering the changes made meanwhile; closing writes at once.
"""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.storage import Store

from .const import DOMAIN, LOGGER
from .core.outbox import Sender
from .core.thing import Thing

STORAGE_VERSION = 1


def _key(entry_id: str) -> str:
    return f"{DOMAIN}.{entry_id}.outbox"


class OutboxStore:
    """Saves and restores the outbox of ``sender``."""

    def __init__(self, hass: HomeAssistant, entry_id: str, sender: Sender, delay: float) -> None:
        self._store: Store[dict[str, Any]] = Store(hass, STORAGE_VERSION, _key(entry_id))
        self._sender = sender
        self._delay = delay
        self._stored_durable = False  # whether the stored copy holds anything to send
        self._scheduled = False

    async def async_restore(self, thing: Thing) -> None:
        """Put back what waited when Home Assistant stopped (``thing`` takes the values)."""
        data = await self._store.async_load()
        if not data:
            return
        outbox = self._sender.outbox
        outbox.restore(data, thing)
        self._stored_durable = True
        LOGGER.debug(
            "restored %d property values and %d events to send",
            len(outbox.properties),
            len(outbox.events),
        )

    @callback
    def async_changed(self) -> None:
        """The outbox changed: save soon if the stored copy no longer tells what waits."""
        if self._scheduled:
            return
        outbox = self._sender.outbox
        waiting = outbox.durable and self._sender.held_back
        if waiting or (self._stored_durable and not outbox.durable):
            self._scheduled = True
            self._store.async_delay_save(self._data, self._delay)

    async def async_flush(self) -> None:
        """Save now if there is anything to tell (unloading, stopping)."""
        if self._scheduled or self._stored_durable or self._sender.outbox.durable:
            await self._store.async_save(self._data())

    def _data(self) -> dict[str, Any]:
        self._scheduled = False
        outbox = self._sender.outbox
        self._stored_durable = outbox.durable
        return outbox.snapshot()


async def async_remove_outbox(hass: HomeAssistant, entry_id: str) -> None:
    """Forget the stored outbox of a removed entry."""
    await Store[dict[str, Any]](hass, STORAGE_VERSION, _key(entry_id)).async_remove()

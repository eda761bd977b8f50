"""The coordinator: owns the link to the module and the device's Alink state.

Push only: the link supervisor reconnects by itself and wakes on events; the coordinator
turns what arrives into entity updates, and entity changes into posts. Everything it sends
goes through one sender (``core.outbox``): paced below Aliyun's rate limit, coalesced, and
kept — across a restart too — while the link is down.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    ConfigEntryNotReady,
    ServiceValidationError,
)
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util.signal_type import SignalType

from .const import CONF_DIALECT, DOMAIN, EVENT_SERVICE_CALL, LOGGER
from .core.dialects.base import InboundMessage, ModuleInfo
from .core.errors import AtError, AuthRefused
from .core.link import Link, LinkState
from .core.outbox import Sender, UplinkSettings
from .core.thing import InvalidValues, PostRefused, ServiceCalled, Thing
from .data import AliyunIotAtConfigEntry
from .outbox_store import OutboxStore
from .repairs import async_update_link_issues
from .settings import link_settings, port_settings, thing_model, topics


class AliyunIotAtCoordinator(DataUpdateCoordinator[Mapping[str, object]]):
    """One module, one Aliyun device: its link, its thing model and its property values."""

    config_entry: AliyunIotAtConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: AliyunIotAtConfigEntry,
        *,
        backoff: Sequence[float],
        health_interval: float,
        uplink: UplinkSettings,
        save_delay: float,
    ) -> None:
        super().__init__(hass, LOGGER, config_entry=entry, name=entry.title)
        assert entry.unique_id is not None  # the config flow always sets it
        self.unique_id = entry.unique_id
        self.model = thing_model(entry.options)
        device_topics = topics(entry.data)
        self.thing = Thing(self.model, device_topics)
        self.link = Link(
            port_settings(entry.data),
            entry.data[CONF_DIALECT],
            link_settings(entry.data, entry.options),
            device_topics.subscriptions(),
            on_message=self._on_message,
            on_state=self._on_state,
            backoff=backoff,
            health_interval=health_interval,
        )
        self.sender = Sender(
            self.thing,
            self.link.publish,
            settings=uplink,
            max_payload=self.link.max_payload,
            on_change=self._outbox_changed,
        )
        self._outbox_store = OutboxStore(hass, entry.entry_id, self.sender, save_delay)
        self.data = self.thing.values
        self.service_signal = SignalType[ServiceCalled](f"{DOMAIN}_{entry.entry_id}_service")
        self.last_refused: PostRefused | None = None
        # The unique ids of the entities made for this model, to find stale ones.
        self.unique_ids: set[str] = set()
        self._supervised = False
        self._down_logged = False
        # Per property, the entities showing it: a change updates those, not every entity.
        self._value_listeners: dict[str, list[CALLBACK_TYPE]] = {}

    @property
    def connected(self) -> bool:
        """Whether the cloud session is up."""
        return self.link.state is LinkState.CONNECTED

    @property
    def device_info(self) -> DeviceInfo:
        """The device: the module as it identified itself."""
        info = self.link.info or ModuleInfo()
        return DeviceInfo(
            identifiers={(DOMAIN, self.unique_id)},
            name=self.config_entry.title,
            manufacturer=info.manufacturer,
            model=info.model,
            sw_version=info.firmware,
        )

    async def _async_update_data(self) -> Mapping[str, object]:
        """Nothing to fetch: values arrive by push."""
        return self.thing.values

    # --- life cycle ---------------------------------------------------------------------------

    async def async_connect(self) -> None:
        """Bring the session up once, take back what waited to be sent before a restart, then
        keep the session up in the background (``async_start_sending`` sends)."""
        try:
            await self.link.connect_once()
        except AuthRefused as err:
            await self.link.stop()
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="auth_refused"
            ) from err
        except AtError as err:
            await self.link.stop()
            raise ConfigEntryNotReady(
                translation_domain=DOMAIN,
                translation_key="not_ready",
                translation_placeholders={"error": str(err)},
            ) from err
        await self._outbox_store.async_restore(self.thing)
        self.link.start()
        self._supervised = True

    @callback
    def async_start_sending(self) -> None:
        """Send in the background, starting with every known value (the controls restored
        theirs by now) and what waited before a restart, in one post."""
        self.async_post_current()
        self.sender.start()

    async def async_close(self) -> None:
        """Close the session and the port, and save what is still waiting (unload, Home
        Assistant stopping)."""
        self._supervised = False
        await self.sender.stop()
        await self.link.stop()
        await self._outbox_store.async_flush()

    # --- from the link ------------------------------------------------------------------------

    @callback
    def _on_message(self, message: InboundMessage) -> None:
        outcome = self.thing.handle(message)
        for reply in outcome.publish:
            self.sender.reply(reply)
        if outcome.changes:
            # The device reports its new state, as a real one does after acting on a set.
            self.sender.post_properties(outcome.changes)
            self._values_changed(outcome.changes)
        if outcome.service_call is not None:
            self._service_called(outcome.service_call)
        if outcome.refused is not None:
            self.last_refused = outcome.refused

    @callback
    def _on_state(self, state: LinkState, error: AtError | None) -> None:
        # Repair issues follow the link (repairs.py).
        async_update_link_issues(self.hass, self.config_entry, state, error)
        if state is LinkState.CONNECTED:
            if self._down_logged:
                LOGGER.info("%s: the cloud link is back", self.config_entry.title)
                self._down_logged = False
            # The cloud gets every value again, and what waited goes out.
            self.async_post_current()
            self.sender.link_up()
        else:
            self.sender.link_down()
        if state is LinkState.DISCONNECTED and self._supervised:
            if not self._down_logged:
                LOGGER.warning("%s: the cloud link is down: %s", self.config_entry.title, error)
                self._down_logged = True
            if isinstance(error, AuthRefused):
                # The supervisor gave up: only new credentials help.
                self.config_entry.async_start_reauth(self.hass)
        self.async_update_listeners()

    @callback
    def _service_called(self, call: ServiceCalled) -> None:
        device = dr.async_get(self.hass).async_get_device({(DOMAIN, self.unique_id)})
        self.hass.bus.async_fire(
            EVENT_SERVICE_CALL,
            {
                "device_id": device.id if device else None,
                "service": call.service.identifier,
                "message_id": call.message_id,
                "params": call.params,
            },
        )
        async_dispatcher_send(self.hass, self.service_signal, call)

    @callback
    def async_add_value_listener(self, identifier: str, update: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call ``update`` when the value of ``identifier`` changes; returns the remover.
        (Listeners of the coordinator itself hear of the link's state, which every entity's
        availability follows.)"""
        listeners = self._value_listeners.setdefault(identifier, [])
        listeners.append(update)

        @callback
        def remove() -> None:
            listeners.remove(update)

        return remove

    @callback
    def _values_changed(self, identifiers: Iterable[str]) -> None:
        for identifier in identifiers:
            for update in tuple(self._value_listeners.get(identifier, ())):
                update()

    @callback
    def _outbox_changed(self) -> None:
        self._outbox_store.async_changed()

    # --- from Home Assistant ------------------------------------------------------------------

    @callback
    def async_restore(self, identifier: str, value: object) -> None:
        """A value the entity had before Home Assistant restarted (posted by
        ``async_post_current``)."""
        self.thing.restore({identifier: value})

    @callback
    def async_post_current(self) -> None:
        """Post every known value (coalesced with what waits)."""
        self.sender.post_properties(self.thing.values)

    async def async_set_values(self, values: Mapping[str, object]) -> None:
        """Take property values as the device's and post them (they wait while the link is
        down)."""
        try:
            checked = self.thing.record(values)
        except InvalidValues as err:
            raise _invalid(err) from err
        self.sender.post_properties(checked)
        self._values_changed(checked)

    async def async_post_event(self, event_id: str, output: Mapping[str, object]) -> None:
        """Post a model event happening now with its output values (it waits while the link
        is down)."""
        try:
            occurrence = self.thing.occurrence(event_id, output)
        except InvalidValues as err:
            raise _invalid(err) from err
        self.sender.post_event(occurrence)

    async def async_read_signal(self) -> int | None:
        """The module's signal strength in dBm; None when it is not known."""
        try:
            return await self.link.signal()
        except AtError as err:
            LOGGER.debug("%s: no signal strength: %s", self.config_entry.title, err)
            return None


def _invalid(err: InvalidValues) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="invalid_values",
        translation_placeholders={"problem": str(err)},
    )

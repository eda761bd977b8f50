"""The coordinator: owns the link to the module and the device's Alink state.

Push only: the link supervisor reconnects by itself and wakes on events; the coordinator
turns what arrives into entity updates, and entity changes into posts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    ConfigEntryNotReady,
    HomeAssistantError,
    ServiceValidationError,
)
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util.signal_type import SignalType

from .const import CONF_DIALECT, DOMAIN, EVENT_SERVICE_CALL, LOGGER
from .core.dialects.base import InboundMessage, ModuleInfo
from .core.errors import AtError, AuthRefused, NotConnected
from .core.link import Link, LinkState
from .core.thing import InvalidValues, PostRefused, Publish, ServiceCalled, Thing
from .data import AliyunIotAtConfigEntry
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
        self.data = self.thing.values
        self.service_signal = SignalType[ServiceCalled](f"{DOMAIN}_{entry.entry_id}_service")
        self.last_refused: PostRefused | None = None
        # The unique ids of the entities made for this model, to find stale ones.
        self.unique_ids: set[str] = set()
        self._supervised = False
        self._down_logged = False

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
        """Bring the session up once, then keep it up in the background."""
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
        self.link.start()
        self._supervised = True

    async def async_close(self) -> None:
        """Close the session and the port (unload, Home Assistant stopping)."""
        self._supervised = False
        await self.link.stop()

    # --- from the link ------------------------------------------------------------------------

    @callback
    def _on_message(self, message: InboundMessage) -> None:
        outcome = self.thing.handle(message)
        if outcome.publish:
            self._send(outcome.publish)
        if outcome.changes:
            self.async_set_updated_data(self.thing.values)
        if outcome.service_call is not None:
            self._service_called(outcome.service_call)
        if outcome.refused is not None:
            self.last_refused = outcome.refused

    @callback
    def _on_state(self, state: LinkState, error: AtError | None) -> None:
        if state is LinkState.CONNECTED:
            if self._down_logged:
                LOGGER.info("%s: the cloud link is back", self.config_entry.title)
                self._down_logged = False
            # Whatever changed while the link was down reaches the cloud now.
            self.async_post_current()
        elif state is LinkState.DISCONNECTED and self._supervised:
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
    def _send(self, posts: Iterable[Publish]) -> None:
        self.config_entry.async_create_background_task(
            self.hass, self._publish_quietly(tuple(posts)), "aliyun_iot_at publish"
        )

    async def _publish_quietly(self, posts: tuple[Publish, ...]) -> None:
        """Replies and posts of our own: a loss is logged, values go out on reconnect."""
        for post in posts:
            try:
                await self.link.publish(post.topic, post.payload)
            except AtError as err:
                LOGGER.debug("not published on %s: %s", post.topic, err)
                return

    # --- from Home Assistant ------------------------------------------------------------------

    @callback
    def async_restore(self, identifier: str, value: object) -> None:
        """A value the entity had before Home Assistant restarted (posted by
        ``async_post_current``)."""
        self.thing.restore({identifier: value})

    @callback
    def async_post_current(self) -> None:
        """Post every known value, in the background."""
        post = self.thing.post_current()
        if post is not None:
            self._send((post,))

    async def async_set_values(self, values: Mapping[str, object]) -> None:
        """Take property values as the device's and post them (kept if the link is down)."""
        try:
            post = self.thing.post_properties(values)
        except InvalidValues as err:
            raise _invalid(err) from err
        self.async_set_updated_data(self.thing.values)
        await self._publish(post)

    async def async_post_event(self, event_id: str, output: Mapping[str, object]) -> None:
        """Post a model event with its output values."""
        try:
            post = self.thing.post_event(event_id, output)
        except InvalidValues as err:
            raise _invalid(err) from err
        await self._publish(post)

    async def _publish(self, post: Publish) -> None:
        try:
            await self.link.publish(post.topic, post.payload)
        except NotConnected as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="not_connected"
            ) from err
        except AtError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="publish_failed",
                translation_placeholders={"error": str(err)},
            ) from err


def _invalid(err: InvalidValues) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="invalid_values",
        translation_placeholders={"problem": str(err)},
    )

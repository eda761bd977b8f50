"""``AliyunCloud``: the Aliyun IoT Platform stand-in that tests, the demo and benchmarks run."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from .alink import AlinkService, Payload, Uplink
from .auth import AuthFailure, AuthLog
from .broker import ADMIN_USERNAME, CloudBroker
from .http_auth import HttpAuthServer
from .registry import Device, DeviceRegistry
from .topics import PROPERTY_SET, SERVICE_PREFIX

DEFAULT_TIMEOUT = 5.0


class AliyunCloud:
    """MQTT broker, HTTP auth endpoint and Alink service on 127.0.0.1, checking like Aliyun."""

    def __init__(self, *, history: int = 1000) -> None:
        self._registry = DeviceRegistry()
        self._auth_log = AuthLog(history)
        self._broker = CloudBroker(self._registry, self._auth_log)
        self._http = HttpAuthServer(self._registry, self._auth_log)
        self._alink = AlinkService(history)
        self._running = False

    def __repr__(self) -> str:
        return f"AliyunCloud(running={self._running}, broker={self._broker!r})"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the broker, the HTTP endpoint and the Alink service (stops all on failure)."""
        if self._running:
            return
        self._running = True
        try:
            await self._broker.start()
            await self._http.start()
            await self._alink.start(self._broker.port, ADMIN_USERNAME, self._broker.admin_password)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop everything; safe to call twice."""
        if not self._running:
            return
        self._running = False
        await self._alink.stop()
        await self._http.stop()
        await self._broker.stop()

    @property
    def mqtt_port(self) -> int:
        """The MQTT port on 127.0.0.1."""
        return self._broker.port

    @property
    def http_port(self) -> int:
        """The HTTP auth port on 127.0.0.1 (``POST /auth/devicename``)."""
        return self._http.port

    @property
    def auth_failures(self) -> list[AuthFailure]:
        """Refused MQTT and HTTP auth attempts, oldest first (bounded)."""
        return self._auth_log.failures

    def add_device(self, product_key: str, device_name: str, device_secret: str) -> Device:
        """Register a device."""
        return self._registry.add(product_key, device_name, device_secret)

    def secrets(self) -> set[str]:
        """What must never be logged: device secrets, issued iotTokens, the credentials
        devices were let in with, the service password."""
        return self._registry.secrets() | {self._broker.admin_password}

    def subscriptions(self, device: Device) -> list[str]:
        """The topic filters the device's connected sessions hold, sorted (twice if held
        twice)."""
        return self._broker.subscriptions(device)

    def uplinks(self, device: Device) -> list[Uplink]:
        """Posts and replies the device sent, oldest first (bounded)."""
        return self._alink.uplinks(device)

    def forget_uplinks(self) -> None:
        """Forget the posts and replies received so far (a long run keeping its own record)."""
        self._alink.forget()

    async def set_properties(self, device: Device, params: Payload) -> str:
        """Send ``thing.service.property.set``; returns the request id."""
        return await self._alink.request(device, PROPERTY_SET, "thing.service.property.set", params)

    async def call_service(self, device: Device, service_id: str, params: Payload) -> str:
        """Call an async service ``thing.service.{service_id}``; returns the request id."""
        return await self._alink.request(
            device, f"{SERVICE_PREFIX}{service_id}", f"thing.service.{service_id}", params
        )

    async def publish_raw(self, device: Device, suffix: str, payload: bytes) -> None:
        """Publish any bytes on ``/sys/{pk}/{dn}/{suffix}``: for what a well-behaved cloud
        never sends."""
        await self._alink.publish_raw(device, suffix, payload)

    def refuse_posts(self, device: Device, code: int, message: str, count: int = 1) -> None:
        """Answer the device's next ``count`` well-formed posts with ``code`` and ``message``,
        as Aliyun answers one it does not take (a thing model mismatch, throttling)."""
        self._alink.refuse_posts(device, code, message, count)

    async def wait_post(
        self,
        device: Device,
        predicate: Callable[[Payload], bool] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        """The next well-formed property post (after the last one returned) matching ``predicate``.

        Posts that arrived before the call count: there is no race with the device.
        """
        return await self._alink.wait_post(device, predicate, timeout)

    async def wait_reply(
        self, device: Device, msg_id: str, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """The device's reply to the request ``msg_id`` (set_reply or a service reply)."""
        return await self._alink.wait_reply(device, msg_id, timeout)

    def is_online(self, device: Device) -> bool:
        """Whether the device has an accepted MQTT session."""
        return self._broker.is_online(device)

    async def wait_online(self, device: Device, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Until the device has an accepted MQTT session."""
        await self._broker.wait_online(device, timeout)

    async def wait_offline(self, device: Device, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Until the device has no MQTT session."""
        await self._broker.wait_offline(device, timeout)

    async def kick(self, device: Device, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Cut the device's connection from the cloud side; returns whether it was online."""
        return await self._broker.kick(device, timeout)

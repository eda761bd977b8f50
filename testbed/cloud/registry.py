"""The cloud's device registry: device triples and the iotId/iotToken pairs of HTTP auth."""

from __future__ import annotations

from dataclasses import dataclass, field
import re
import secrets

type DeviceKey = tuple[str, str]

# Aliyun's character sets: product keys are alphanumeric, device names add "-_@.:".
_PRODUCT_KEY = re.compile(r"[A-Za-z0-9]{1,20}")
_DEVICE_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,32}")
_MAX_SECRET = 64


@dataclass(frozen=True)
class Device:
    """A device known to the cloud. ``repr`` hides the secret."""

    product_key: str
    device_name: str
    device_secret: str = field(repr=False)

    def __str__(self) -> str:
        return f"{self.product_key}/{self.device_name}"

    @property
    def key(self) -> DeviceKey:
        """What identifies the device: (product key, device name)."""
        return (self.product_key, self.device_name)


@dataclass(frozen=True)
class IotToken:
    """An iotId/iotToken pair handed out by HTTP auth, valid with one MQTT client id."""

    iot_id: str
    iot_token: str = field(repr=False)
    device: Device
    client_id: str


class DeviceRegistry:
    """Devices by (product key, device name), and the tokens issued to them."""

    def __init__(self) -> None:
        self._devices: dict[DeviceKey, Device] = {}
        self._tokens: dict[str, IotToken] = {}
        self._accepted: set[str] = set()

    def add(self, product_key: str, device_name: str, device_secret: str) -> Device:
        """Register a device (a new secret replaces the old one, as a console reset does)."""
        if not _PRODUCT_KEY.fullmatch(product_key):
            raise ValueError(f"invalid product key {product_key!r}")
        if not _DEVICE_NAME.fullmatch(device_name):
            raise ValueError(f"invalid device name {device_name!r}")
        if not 0 < len(device_secret) <= _MAX_SECRET:
            raise ValueError("device secret must be 1-64 characters")
        device = Device(product_key, device_name, device_secret)
        self._devices[device.key] = device
        return device

    def get(self, product_key: str, device_name: str) -> Device | None:
        """The registered device, if any."""
        return self._devices.get((product_key, device_name))

    def issue_token(self, device: Device, client_id: str) -> IotToken:
        """A fresh random iotId/iotToken pair for ``device`` connecting as ``client_id``."""
        token = IotToken(secrets.token_hex(10), secrets.token_hex(16), device, client_id)
        self._tokens[token.iot_id] = token
        return token

    def token(self, iot_id: str) -> IotToken | None:
        """The token issued under ``iot_id``, if any."""
        return self._tokens.get(iot_id)

    def accepted(self, credential: str) -> None:
        """Note a credential a device was let in with (an MQTT password, an HTTP auth sign):
        derived from the secret, it authenticates the device just as well."""
        if credential:
            self._accepted.add(credential)

    def secrets(self) -> set[str]:
        """Every secret in play: device secrets, issued iotTokens, accepted credentials."""
        devices = {device.device_secret for device in self._devices.values()}
        return devices | {token.iot_token for token in self._tokens.values()} | self._accepted

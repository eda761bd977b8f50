"""Aliyun device credentials: the MQTT sign and the HTTP-auth sign.

The MQTT client id, user name and password follow Aliyun's "one device, one secret" scheme:
the password is a hex HMAC keyed by the device secret over the parameters sorted by name.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import hmac
from typing import Literal

SignMethod = Literal["hmacmd5", "hmacsha1", "hmacsha256"]

_DIGESTS = {"hmacmd5": hashlib.md5, "hmacsha1": hashlib.sha1, "hmacsha256": hashlib.sha256}

# Aliyun: the client id part before "|" is at most 64 characters.
MAX_CLIENT_ID = 64


def sign(secret: str, params: dict[str, str], method: SignMethod = "hmacsha256") -> str:
    """Hex HMAC of ``name+value`` pairs sorted by name, keyed by ``secret``."""
    text = "".join(f"{name}{params[name]}" for name in sorted(params))
    return hmac.new(secret.encode(), text.encode(), _DIGESTS[method]).hexdigest()


@dataclass(frozen=True)
class MqttCredentials:
    """What an MQTT CONNECT carries. ``repr`` hides the password."""

    client_id: str
    username: str
    password: str

    def __repr__(self) -> str:
        return f"MqttCredentials(client_id={self.client_id!r}, username={self.username!r})"


def mqtt_credentials(
    product_key: str,
    device_name: str,
    device_secret: str,
    *,
    client_id: str | None = None,
    timestamp: str | None = None,
    method: SignMethod = "hmacsha256",
    tls: bool = False,
) -> MqttCredentials:
    """The MQTT client id, user name and password Aliyun expects from this device."""
    cid = client_id or f"{product_key}.{device_name}"
    if not cid or len(cid) > MAX_CLIENT_ID or any(c in cid for c in "|,="):
        raise ValueError("client id must be 1-64 characters without '|', ',' or '='")
    params = {"clientId": cid, "deviceName": device_name, "productKey": product_key}
    extra = f"securemode={2 if tls else 3},signmethod={method}"
    if timestamp is not None:
        params["timestamp"] = timestamp
        extra += f",timestamp={timestamp}"
    return MqttCredentials(
        client_id=f"{cid}|{extra}|",
        username=f"{device_name}&{product_key}",
        password=sign(device_secret, params, method),
    )


def http_auth_sign(product_key: str, device_name: str, device_secret: str, client_id: str) -> str:
    """The HmacMD5 ``sign`` of the HTTP auth request (Air72x flow, seed 002)."""
    params = {"clientId": client_id, "deviceName": device_name, "productKey": product_key}
    return sign(device_secret, params, "hmacmd5")


def http_auth_body(product_key: str, device_name: str, device_secret: str, client_id: str) -> str:
    """The form body POSTed to ``/auth/devicename``, in the order the seed shows."""
    sig = http_auth_sign(product_key, device_name, device_secret, client_id)
    return f"productKey={product_key}&sign={sig}&clientId={client_id}&deviceName={device_name}"

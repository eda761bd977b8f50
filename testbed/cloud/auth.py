"""How the cloud checks credentials: the signed MQTT CONNECT, iotId/iotToken, the HTTP auth sign.

Every check raises ``AuthRefused`` with a reason that never quotes a secret.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
import hmac
import logging
import re
from typing import Literal, TypeIs, get_args

from custom_components.aliyun_iot_at.core.signing import MAX_CLIENT_ID, SignMethod, sign

from .registry import Device, DeviceRegistry

_LOGGER = logging.getLogger(__name__)

# Aliyun refuses a CONNECT whose keepalive is outside 30-1200 s.
KEEPALIVE_MIN = 30
KEEPALIVE_MAX = 1200

# Aliyun-like codes of the HTTP auth reply.
CODE_PARAMETER_ERROR = 460
CODE_AUTH_FAILED = 401

_SIGNED_CLIENT_ID = re.compile(r"([^|]+)\|([^|]*)\|")
_HTTP_REQUIRED = ("productKey", "deviceName", "clientId", "sign")


class AuthRefused(Exception):
    """Credentials refused; ``code`` is what the HTTP auth reply carries."""

    def __init__(self, reason: str, code: int = CODE_AUTH_FAILED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class AuthFailure:
    """One refused attempt. ``username`` is ``deviceName&productKey`` for HTTP auth."""

    channel: Literal["mqtt", "http"]
    client_id: str
    username: str
    reason: str


class AuthLog:
    """The last refused attempts, also logged (without secrets)."""

    def __init__(self, limit: int) -> None:
        self._failures: deque[AuthFailure] = deque(maxlen=limit)

    def record(self, failure: AuthFailure) -> None:
        """Remember and log a refusal."""
        _LOGGER.info(
            "%s auth refused: %s (client id %r, user %r)",
            failure.channel.upper(),
            failure.reason,
            failure.client_id,
            failure.username,
        )
        self._failures.append(failure)

    @property
    def failures(self) -> list[AuthFailure]:
        """Oldest first."""
        return list(self._failures)


def same_secret(expected: str, given: str | None, *, hex_digest: bool = False) -> bool:
    """Constant-time comparison; a hex digest compares case-insensitively."""
    if given is None:
        return False
    if hex_digest:
        expected, given = expected.lower(), given.lower()
    return hmac.compare_digest(expected.encode(), given.encode())


def check_keepalive(keepalive: int) -> None:
    """Refuse a keepalive Aliyun would refuse."""
    if not KEEPALIVE_MIN <= keepalive <= KEEPALIVE_MAX:
        raise AuthRefused(f"keepalive {keepalive} s outside {KEEPALIVE_MIN}-{KEEPALIVE_MAX} s")


def check_signed_connect(
    registry: DeviceRegistry, client_id: str, username: str, password: str | None
) -> Device:
    """The device of a CONNECT signed with its secret (client id ``cid|securemode=..|``)."""
    cid, method, timestamp = _parse_client_id(client_id)
    device_name, _, product_key = username.partition("&")
    if not device_name or not product_key or "&" in product_key:
        raise AuthRefused("user name is not deviceName&productKey")
    device = registry.get(product_key, device_name)
    if device is None:
        raise AuthRefused("device not found")
    params = {"clientId": cid, "deviceName": device_name, "productKey": product_key}
    if timestamp is not None:
        params["timestamp"] = timestamp
    if not same_secret(sign(device.device_secret, params, method), password, hex_digest=True):
        raise AuthRefused("password is not the device's sign")
    return device


def check_token_connect(
    registry: DeviceRegistry, client_id: str, username: str, password: str | None
) -> Device:
    """The device of a CONNECT with an iotId/iotToken pair from HTTP auth."""
    token = registry.token(username)
    if token is None:
        raise AuthRefused("unknown iotId")
    if not same_secret(token.iot_token, password):
        raise AuthRefused("wrong iotToken")
    if client_id != token.client_id:
        raise AuthRefused("client id differs from the one given to HTTP auth")
    return token.device


def check_http_auth(registry: DeviceRegistry, form: Mapping[str, str]) -> Device:
    """The device of a ``POST /auth/devicename`` form."""
    missing = [name for name in _HTTP_REQUIRED if not form.get(name)]
    if missing:
        raise AuthRefused(f"missing parameter: {', '.join(missing)}", CODE_PARAMETER_ERROR)
    method = form.get("signmethod", "hmacmd5").lower()
    if not _is_sign_method(method):
        raise AuthRefused("unsupported signmethod", CODE_PARAMETER_ERROR)
    device = registry.get(form["productKey"], form["deviceName"])
    if device is None:
        raise AuthRefused("device not found")
    params = {
        name: form[name]
        for name in ("clientId", "deviceName", "productKey", "timestamp")
        if name in form
    }
    if not same_secret(sign(device.device_secret, params, method), form["sign"], hex_digest=True):
        raise AuthRefused("sign mismatch")
    return device


def _parse_client_id(client_id: str) -> tuple[str, SignMethod, str | None]:
    """Split ``cid|securemode=3,signmethod=..[,timestamp=..]|`` into cid, method, timestamp."""
    match = _SIGNED_CLIENT_ID.fullmatch(client_id)
    if match is None:
        raise AuthRefused("malformed client id: expected clientId|params|")
    cid, extra = match.groups()
    if len(cid) > MAX_CLIENT_ID:
        raise AuthRefused(f"malformed client id: clientId longer than {MAX_CLIENT_ID} characters")
    params: dict[str, str] = {}
    for item in extra.split(","):
        name, equals, value = item.partition("=")
        if not name or not equals or name in params:
            raise AuthRefused("malformed client id: bad parameter list")
        params[name] = value
    if params.get("securemode") not in ("2", "3"):
        raise AuthRefused("malformed client id: securemode must be 2 or 3")
    method = params.get("signmethod", "")
    if not _is_sign_method(method):
        raise AuthRefused("malformed client id: unsupported signmethod")
    return cid, method, params.get("timestamp")


def _is_sign_method(name: str) -> TypeIs[SignMethod]:
    return name in get_args(SignMethod)

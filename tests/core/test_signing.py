"""Aliyun signing against the published vectors (ALIYUN.md, seed 002)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from custom_components.aliyun_iot_at.core.signing import (
    MAX_CLIENT_ID,
    SignMethod,
    http_auth_body,
    http_auth_sign,
    mqtt_credentials,
    sign,
)

SEED_PK = "b0FMK1Ga5cp"
SEED_DN = "862991419835241"
SEED_DS = "y7MTCG6Gk33Ux26bbWSpANl4OaI0bg5Q"


def test_public_hmacsha1_vector() -> None:
    creds = mqtt_credentials(
        "pk", "device", "secret", client_id="12345", timestamp="789", method="hmacsha1"
    )
    assert creds.password.upper() == "FAFD82A3D602B37FB0FA8B7892F24A477F851A14"
    assert creds.client_id == "12345|securemode=3,signmethod=hmacsha1,timestamp=789|"
    assert creds.username == "device&pk"


def test_sign_sorts_parameters_by_name() -> None:
    params = {"timestamp": "789", "productKey": "pk", "clientId": "12345", "deviceName": "device"}
    assert sign("secret", params, "hmacsha1").upper() == "FAFD82A3D602B37FB0FA8B7892F24A477F851A14"


def test_tls_and_no_timestamp() -> None:
    creds = mqtt_credentials("pk", "device", "secret", tls=True)
    assert creds.client_id == "pk.device|securemode=2,signmethod=hmacsha256|"


@pytest.mark.parametrize(("method", "digest"), [("hmacmd5", "md5"), ("hmacsha256", "sha256")])
def test_other_methods_sign_the_same_text(method: SignMethod, digest: str) -> None:
    creds = mqtt_credentials(
        "pk", "device", "secret", client_id="12345", timestamp="789", method=method
    )
    text = b"clientId12345deviceNamedeviceproductKeypktimestamp789"
    assert creds.password == hmac.new(b"secret", text, digest).hexdigest()
    assert f"signmethod={method}," in creds.client_id


def test_password_never_in_repr() -> None:
    creds = mqtt_credentials("pk", "device", "secret", client_id="12345")
    assert creds.password not in repr(creds)
    assert "secret" not in repr(creds)


def test_seed_http_sign() -> None:
    assert http_auth_sign(SEED_PK, SEED_DN, SEED_DS, SEED_DN) == "1eb96463ad2345b6c261e2f7cc78a7a0"
    text = b"clientId862991419835241deviceName862991419835241productKeyb0FMK1Ga5cp"
    assert hmac.new(SEED_DS.encode(), text, hashlib.md5).hexdigest() == (
        "1eb96463ad2345b6c261e2f7cc78a7a0"
    )


def test_seed_http_body_is_the_112_bytes_of_the_manual() -> None:
    body = http_auth_body(SEED_PK, SEED_DN, SEED_DS, SEED_DN)
    assert body == (
        "productKey=b0FMK1Ga5cp&sign=1eb96463ad2345b6c261e2f7cc78a7a0"
        "&clientId=862991419835241&deviceName=862991419835241"
    )
    assert len(body.encode()) == 112


@pytest.mark.parametrize(
    "client_id", ["x" * (MAX_CLIENT_ID + 1), "a|b", "a,b", "a=b"], ids=["long", "|", ",", "="]
)
def test_bad_client_ids_are_refused(client_id: str) -> None:
    with pytest.raises(ValueError, match="client id"):
        mqtt_credentials("pk", "device", "secret", client_id=client_id)


def test_longest_client_id_is_accepted() -> None:
    creds = mqtt_credentials("pk", "device", "secret", client_id="x" * MAX_CLIENT_ID)
    assert creds.client_id.startswith("x" * MAX_CLIENT_ID + "|")


def test_default_client_id_is_pk_dot_dn() -> None:
    creds = mqtt_credentials("pk", "device", "secret")
    assert creds.client_id.split("|")[0] == "pk.device"

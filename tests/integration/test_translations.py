"""Every string the integration shows exists in English and in Chinese."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from custom_components.aliyun_iot_at.core.errors import (
    AtError,
    AtTimeout,
    AuthRefused,
    LinkError,
    NoAnswer,
    NoNetwork,
    PortError,
    SimNotReady,
    UnknownModule,
    UnsafeValue,
)
from custom_components.aliyun_iot_at.validation import error_key

_ROOT = Path(__file__).parents[2] / "custom_components" / "aliyun_iot_at"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_ROOT / name).read_text("utf-8"))
    return data


def _keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        keys |= _keys(value, f"{path}.") if isinstance(value, dict) else {path}
    return keys


STRINGS = _load("strings.json")


def test_english_is_the_source_strings() -> None:
    assert _load("translations/en.json") == STRINGS


def test_chinese_has_every_string() -> None:
    chinese = _load("translations/zh-Hans.json")
    assert _keys(chinese) == _keys(STRINGS)
    # Placeholders are kept as they are.
    flat_en = dict(_flat(STRINGS))
    for key, text in _flat(chinese):
        assert _placeholders(text) == _placeholders(flat_en[key]), key


def _flat(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    for key, value in tree.items():
        if isinstance(value, dict):
            items += _flat(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _placeholders(text: str) -> set[str]:
    return {part.split("}")[0] for part in text.split("{")[1:]}


@pytest.mark.parametrize(
    ("error", "key"),
    [
        (PortError("x"), "cannot_open_port"),
        (NoAnswer("x"), "no_answer"),
        (UnknownModule("x"), "unknown_module"),
        (SimNotReady("x"), "sim_not_ready"),
        (NoNetwork("x"), "no_network"),
        (AuthRefused("x"), "auth_refused"),
        (AtTimeout("x"), "timeout"),
        (UnsafeValue("x"), "unsupported_value"),
        (LinkError("x"), "cannot_connect"),
        (AtError("x"), "cannot_connect"),
    ],
)
def test_every_core_error_has_a_form_error(error: AtError, key: str) -> None:
    assert error_key(error) == key
    assert key in STRINGS["config"]["error"]

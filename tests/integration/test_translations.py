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
# Every language shipped; a new file in translations/ is checked without listing it here.
LANGUAGES = sorted(path.stem for path in (_ROOT / "translations").glob("*.json"))


def _load(name: str) -> dict[str, Any]:
    """A strings file as it is on disk when the test runs."""
    data: dict[str, Any] = json.loads((_ROOT / name).read_text("utf-8"))
    return data


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Every string by its dotted key."""
    items: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            items |= _flat(value, f"{prefix}{key}.")
        else:
            items[f"{prefix}{key}"] = value
    return items


def _placeholders(text: str) -> set[str]:
    return {part.split("}")[0] for part in text.split("{")[1:]}


def test_english_is_the_source_strings() -> None:
    assert _load("translations/en.json") == _load("strings.json")


def test_chinese_is_shipped() -> None:
    assert {"en", "zh-Hans"} <= set(LANGUAGES)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_every_string_with_its_placeholders(language: str) -> None:
    source = _flat(_load("strings.json"))
    translated = _flat(_load(f"translations/{language}.json"))
    assert translated.keys() == source.keys()
    for key, text in translated.items():
        assert text.strip(), key
        # Home Assistant fills these in by name: a renamed or lost one breaks the message.
        assert _placeholders(text) == _placeholders(source[key]), key


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
    assert key in _load("strings.json")["config"]["error"]

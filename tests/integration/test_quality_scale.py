"""quality_scale.yaml answers every rule of every tier, and the rules it calls done that no
other test shows hold in the code: data descriptions, icons, parallel updates, entity
categories, typing."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
import re
import tomllib
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util.yaml import load_yaml_dict
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.aliyun_iot_at import PLATFORMS
from custom_components.aliyun_iot_at.const import DOMAIN

from .conftest import DN, LANDED, PK

_ROOT = Path(__file__).parents[2]
_INTEGRATION = _ROOT / "custom_components" / DOMAIN

# The rules of the Integration Quality Scale by tier, as hassfest's quality_scale.py has them.
RULES = {
    "bronze": [
        "action-setup",
        "appropriate-polling",
        "brands",
        "common-modules",
        "config-flow",
        "config-flow-test-coverage",
        "dependency-transparency",
        "docs-actions",
        "docs-conditions",
        "docs-high-level-description",
        "docs-installation-instructions",
        "docs-removal-instructions",
        "docs-triggers",
        "entity-event-setup",
        "entity-unique-id",
        "has-entity-name",
        "runtime-data",
        "test-before-configure",
        "test-before-setup",
        "unique-config-entry",
    ],
    "silver": [
        "action-exceptions",
        "config-entry-unloading",
        "docs-configuration-parameters",
        "docs-installation-parameters",
        "entity-unavailable",
        "integration-owner",
        "log-when-unavailable",
        "parallel-updates",
        "reauthentication-flow",
        "test-coverage",
    ],
    "gold": [
        "devices",
        "diagnostics",
        "discovery",
        "discovery-update-info",
        "docs-data-update",
        "docs-examples",
        "docs-known-limitations",
        "docs-supported-devices",
        "docs-supported-functions",
        "docs-troubleshooting",
        "docs-use-cases",
        "dynamic-devices",
        "entity-category",
        "entity-device-class",
        "entity-disabled-by-default",
        "entity-translations",
        "exception-translations",
        "icon-translations",
        "reconfiguration-flow",
        "repair-issues",
        "stale-devices",
    ],
    "platinum": ["async-dependency", "inject-websession", "strict-typing"],
}


@pytest.fixture
def dialect() -> str:
    """One dialect: what is checked here does not depend on it."""
    return LANDED[0]


def _json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_INTEGRATION / name).read_text("utf-8"))
    return data


def _status(value: str | dict[str, str]) -> tuple[str, str | None]:
    return (value, None) if isinstance(value, str) else (value["status"], value.get("comment"))


def test_every_rule_of_every_tier_is_done_or_exempt_with_a_reason() -> None:
    rules = load_yaml_dict(str(_INTEGRATION / "quality_scale.yaml"))["rules"]

    assert sorted(rules) == sorted(rule for tier in RULES.values() for rule in tier)
    for rule, value in rules.items():
        status, comment = _status(value)
        assert status in ("done", "exempt"), rule
        if status == "exempt":
            assert comment and comment.strip(), f"{rule}: an exemption needs its reason"


def test_every_form_field_is_described() -> None:
    strings = _json("strings.json")
    steps = [*strings["config"]["step"].values(), *strings["options"]["step"].values()]
    for step in steps:
        assert set(step.get("data_description", {})) == set(step.get("data", {})), step["title"]


def test_every_translated_entity_and_action_has_an_icon() -> None:
    strings, icons = _json("strings.json"), _json("icons.json")
    for platform, keys in strings["entity"].items():
        assert set(keys) <= set(icons["entity"].get(platform, {})), platform
    assert set(icons["services"]) == set(strings["services"])


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_platform_says_how_many_updates_run_at_once(platform: str) -> None:
    module = importlib.import_module(f"custom_components.{DOMAIN}.{platform}")
    assert isinstance(module.PARALLEL_UPDATES, int)


def test_the_whole_integration_is_strictly_typed() -> None:
    mypy = tomllib.loads((_ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["mypy"]
    assert mypy["strict"] is True
    assert f"custom_components/{DOMAIN}" in mypy["files"]
    assert (_INTEGRATION / "py.typed").is_file()


async def test_diagnostic_entities_are_categorised_and_the_noisy_one_disabled(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    registry = er.async_get(hass)

    def entry_of(platform: str, key: str) -> er.RegistryEntry:
        entity_id = registry.async_get_entity_id(platform, DOMAIN, f"{PK}.{DN}_{key}")
        assert entity_id is not None
        entity = registry.async_get(entity_id)
        assert entity is not None
        return entity

    link = entry_of("sensor", "link-state")
    assert (link.entity_category, link.disabled_by) == (EntityCategory.DIAGNOSTIC, None)
    signal = entry_of("sensor", "signal-strength")
    assert signal.entity_category is EntityCategory.DIAGNOSTIC
    assert signal.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    power = entry_of("switch", "PowerSwitch")
    assert (power.entity_category, power.disabled_by) == (None, None)


@pytest.mark.parametrize("thing_model", ['{"properties": [{"identifier": "a b"}]}'])
async def test_a_stored_thing_model_that_no_longer_parses_fails_setup_for_good(
    hass: HomeAssistant, config_entry: MockConfigEntry
) -> None:
    config_entry.add_to_hass(hass)

    assert not await hass.config_entries.async_setup(config_entry.entry_id)

    # Retrying would not help: the options must change.
    assert config_entry.state is ConfigEntryState.SETUP_ERROR
    assert config_entry.error_reason_translation_key == "invalid_thing_model"
    placeholders = config_entry.error_reason_translation_placeholders or {}
    assert "properties[0]" in placeholders["problem"]


def test_every_raised_error_is_translated_and_every_message_raised() -> None:
    raised = {
        key
        for path in _INTEGRATION.glob("*.py")
        for key in re.findall(r'translation_key="(\w+)"', path.read_text("utf-8"))
    }
    assert raised == set(_json("strings.json")["exceptions"])

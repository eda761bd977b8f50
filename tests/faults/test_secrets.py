"""Secrets never leave: not in diagnostics, in the reason of a failed setup, in entity
attributes, nor in a log line (the suite-wide check in ``tests/conftest.py``, itself
checked here), on every dialect's connect path and after failures at the step that carries
the credential."""

from __future__ import annotations

import json
import logging

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.aliyun_iot_at.core.link import LinkState
from custom_components.aliyun_iot_at.diagnostics import async_get_config_entry_diagnostics
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator
from tests.conftest import SecretLogCheck, SecretsInUse
from tests.integration.helpers import until

from .ha import our_states
from .matrix import DIALECTS, KEPT, Case

# The command that carries each module's credential (the secret, or a token made from it).
CREDENTIAL_STEP = {
    "quectel": 'AT+QMTCFG="aliauth"',
    "ml302": "AT+ALYDEVICESECRET",
    "me3630": "AT+CLOUDAUTH",
    "air72x": "AT+MCONFIG",
    "w800": "AT+MQTTLONGPASSWORD",
}


@pytest.fixture(params=DIALECTS)
def case(request: pytest.FixtureRequest) -> Case:
    """Each dialect: the credential travels differently on each."""
    return Case("secrets", request.param, KEPT)


def _leaks(text: str, secrets: set[str]) -> list[int]:
    """Which of the secrets (by position, never quoted) appear in ``text``."""
    return [index for index, secret in enumerate(sorted(secrets)) if secret in text]


async def _diagnostics(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    return json.dumps(await async_get_config_entry_diagnostics(hass, entry), default=str)


def _attributes(hass: HomeAssistant) -> str:
    return json.dumps(
        {key: dict(state.attributes) for key, state in our_states(hass).items()}, default=str
    )


async def test_a_failed_setup_says_why_without_the_secret(
    case: Case,
    hass: HomeAssistant,
    ha_entry: MockConfigEntry,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
) -> None:
    assert await hass.config_entries.async_unload(ha_entry.entry_id)
    module.fail_next(CREDENTIAL_STEP[case.dialect], "ERROR")
    await hass.config_entries.async_setup(ha_entry.entry_id)
    assert ha_entry.state is ConfigEntryState.SETUP_RETRY
    assert ha_entry.reason
    assert not _leaks(ha_entry.reason, cloud.secrets())
    assert await hass.config_entries.async_reload(ha_entry.entry_id)
    assert ha_entry.state is ConfigEntryState.LOADED
    await cloud.wait_online(device)


async def test_diagnostics_and_attributes_hold_no_secret(
    case: Case,
    hass: HomeAssistant,
    ha_entry: MockConfigEntry,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
) -> None:
    coordinator = ha_entry.runtime_data.coordinator
    assert not _leaks(await _diagnostics(hass, ha_entry), cloud.secrets())
    assert not _leaks(_attributes(hass), cloud.secrets())

    # The next logins fail at the credential's step: the error is what support sees.
    module.fail_next(CREDENTIAL_STEP[case.dialect], "ERROR", count=3)
    assert await cloud.kick(device)
    await until(lambda: coordinator.link.last_error is not None and not coordinator.connected)
    failed = await _diagnostics(hass, ha_entry)
    await until(lambda: coordinator.connected)
    assert json.loads(failed)["link"]["state"] == LinkState.DISCONNECTED.value
    assert json.loads(failed)["link"]["last_error"]
    assert not _leaks(failed, cloud.secrets())
    assert not _leaks(_attributes(hass), cloud.secrets())


def test_the_log_check_catches_a_secret(
    secrets_in_use: SecretsInUse, secret_log_check: SecretLogCheck
) -> None:
    secret = "Pw4" * 8
    secrets_in_use.add(secret)
    logging.getLogger("custom_components.aliyun_iot_at.core").debug("sending %s", secret)
    leaks, secret_log_check.leaks = secret_log_check.leaks, []
    assert leaks == ["DEBUG custom_components.aliyun_iot_at.core: sending <secret>"]

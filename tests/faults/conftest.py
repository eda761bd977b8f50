"""Fixtures of the fault tests: a case of the matrix, its emulated module and a link to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components import aliyun_iot_at
from custom_components.aliyun_iot_at.const import CONF_KEEPALIVE, CONF_THING_MODEL, DOMAIN
from custom_components.aliyun_iot_at.core.dialects import dialect_class
from custom_components.aliyun_iot_at.core.outbox import UplinkSettings
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator
from tests.conftest import SecretsInUse
from tests.e2e.conftest import DN, DS, PK

from .bench import OFTEN, Session, assert_port_closed, check_interval, pty_fds
from .ha import entry_data
from .matrix import Case


@pytest.fixture
def dialect(case: Case) -> str:
    return case.dialect


@pytest.fixture
def device(cloud: AliyunCloud, secrets_in_use: SecretsInUse) -> Device:
    """The faults' device; its secret stays one in use when a test resets the cloud's."""
    secrets_in_use.add(DS)
    return cloud.add_device(PK, DN, DS)


@pytest.fixture
async def module(tmp_path: Path, cloud: AliyunCloud, dialect: str) -> AsyncIterator[ModuleEmulator]:
    emulator = ModuleEmulator(
        dialect,
        link=tmp_path / "ttyFAULT",
        mqtt_port=cloud.mqtt_port,
        http_port=cloud.http_port,
    )
    async with emulator:
        yield emulator


@pytest.fixture
def ptys_before_link(module: ModuleEmulator) -> int:
    """Pty descriptors open before any link opens the port: the emulator's own."""
    return pty_fds()


@pytest.fixture
async def sessions(ptys_before_link: int) -> AsyncIterator[list[Session]]:
    """Sessions a test makes; stopped after it, their port closed by then."""
    made: list[Session] = []
    yield made
    for session in made:
        await session.link.stop()
    assert_port_closed(ptys_before_link)


@pytest.fixture
def session(
    case: Case,
    module: ModuleEmulator,
    device: Device,
    sessions: list[Session],
    ptys_before_link: int,
) -> Session:
    """The case's link: its session check often when only that can find the fault, else
    never."""
    sessions.append(Session(module, case.dialect, health_interval=check_interval(case)))
    return sessions[-1]


# --- through Home Assistant ---------------------------------------------------------------

# The slowest retry of the Home Assistant tests' link: refused credentials wait this long.
SLOWEST = 0.5


@pytest.fixture
def ha_timing(monkeypatch: pytest.MonkeyPatch, case: Case) -> None:
    """Reconnect at once (refused credentials: after ``SLOWEST``), check the session as the
    case needs (and often on modules that never announce a loss: a test may cause one to
    reach another fault), retry and save what waits soon."""
    silent = not dialect_class(case.dialect).reports_link_loss
    interval = OFTEN if silent else check_interval(case)
    monkeypatch.setattr(aliyun_iot_at, "LINK_BACKOFF", (0.05, SLOWEST))
    monkeypatch.setattr(aliyun_iot_at, "LINK_HEALTH_INTERVAL", interval)
    monkeypatch.setattr(aliyun_iot_at, "UPLINK", UplinkSettings(retry=(0.1,)))
    monkeypatch.setattr(aliyun_iot_at, "OUTBOX_SAVE_DELAY", 0.1)


@pytest.fixture
def thing_model() -> str:
    """The entry's thing model ("": the standard switch)."""
    return ""


@pytest.fixture
async def ha_entry(
    hass: HomeAssistant,
    enable_custom_integrations: None,
    ha_timing: None,
    module: ModuleEmulator,
    dialect: str,
    device: Device,
    cloud: AliyunCloud,
    thing_model: str,
    ptys_before_link: int,
) -> AsyncIterator[MockConfigEntry]:
    """The faults' device set up in Home Assistant, online; unloaded before the module goes
    (a port vanishing under a write is a fault of its own, not this test's), its port closed
    by then."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=DN,
        unique_id=f"{PK}.{DN}",
        data=entry_data(module, dialect),
        options={CONF_THING_MODEL: thing_model, CONF_KEEPALIVE: 60},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await cloud.wait_online(device)
    yield entry
    await hass.config_entries.async_unload(entry.entry_id)
    assert_port_closed(ptys_before_link)

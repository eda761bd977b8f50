"""The fault matrix at the link: the emulated module, the link supervisor, the local cloud.

Each test causes one fault on one dialect (cases from ``matrix.py``), checks how the link
learnt of it, then that it came back by itself with everything in place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
import inspect
import logging
import random
import re

import pytest

from custom_components.aliyun_iot_at.core.channel import AtChannel
from custom_components.aliyun_iot_at.core.dialects import me3630, ml302, quectel, w800
from custom_components.aliyun_iot_at.core.errors import AuthRefused, NoNetwork, SimNotReady
from custom_components.aliyun_iot_at.core.link import LinkState
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator
from tests.conftest import SecretsInUse
from tests.e2e.conftest import DN, IDENTITY, PK, property_set

from .bench import (
    NO_CHECK,
    RECOVERY,
    Session,
    assert_messages_flow,
    assert_recovered,
    message_urc,
)
from .matrix import Case, cases

type Cause = Callable[[], Awaitable[object]]


async def _online(session: Session) -> None:
    session.link.start()
    await session.wait_state(LinkState.CONNECTED)


async def _lose_and_recover(
    case: Case,
    cloud: AliyunCloud,
    device: Device,
    session: Session,
    ptys_before_link: int,
    cause: Cause,
) -> None:
    """Online, ``cause`` the fault: the link must say what told it, and come back."""
    await _online(session)
    await cause()
    error = await session.wait_state(LinkState.DISCONNECTED)
    assert case.outcome.reason is not None
    assert re.search(case.outcome.reason, str(error)), error
    await session.wait_state(LinkState.CONNECTED, timeout=RECOVERY)
    await assert_recovered(cloud, device, session, ptys_before_link)


async def _session_kept(session: Session) -> None:
    """No loss was reported: the session was never dropped."""
    with pytest.raises(TimeoutError):
        await session.wait_state(LinkState.DISCONNECTED, timeout=0.3)
    assert session.link.state is LinkState.CONNECTED


@pytest.mark.parametrize("case", cases("cloud_kick"))
async def test_cloud_kick(
    case: Case, cloud: AliyunCloud, device: Device, session: Session, ptys_before_link: int
) -> None:
    async def kick() -> None:
        assert await cloud.kick(device)

    await _lose_and_recover(case, cloud, device, session, ptys_before_link, kick)


@pytest.mark.parametrize("case", cases("module_drop"))
async def test_module_drop(
    case: Case,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    session: Session,
    ptys_before_link: int,
) -> None:
    await _lose_and_recover(case, cloud, device, session, ptys_before_link, module.drop_link)


@pytest.mark.parametrize("case", cases("module_restart"))
async def test_module_restart(
    case: Case,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    session: Session,
    ptys_before_link: int,
) -> None:
    await _lose_and_recover(case, cloud, device, session, ptys_before_link, module.restart)


@pytest.mark.parametrize("case", cases("port_replug"))
async def test_port_replug(
    case: Case,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    session: Session,
    ptys_before_link: int,
) -> None:
    await _online(session)
    await module.unplug()
    error = await session.wait_state(LinkState.DISCONNECTED)
    assert case.outcome.reason is not None
    assert re.search(case.outcome.reason, str(error)), error
    # While the path is gone, attempts fail and are retried: none may hold a descriptor.
    await session.wait_state(LinkState.DISCONNECTED)
    assert not module.path.exists()
    await module.replug()
    await session.wait_state(LinkState.CONNECTED, timeout=RECOVERY)
    await assert_recovered(cloud, device, session, ptys_before_link)


# Where each dialect keeps the timeout of its session check, shortened so a test waits for
# it in a second (the Air72x check uses the channel's default).
_CHECK_TIMEOUTS = {
    "quectel": (quectel, "COMMAND_TIMEOUT"),
    "ml302": (ml302, "MQTT_TIMEOUT"),
    "me3630": (me3630, "PUBLISH_TIMEOUT"),
    "w800": (w800, "COMMAND_TIMEOUT"),
}
_SHORT_CHECK = 1.0
_CHANNEL_TIMEOUT: float = inspect.signature(AtChannel.command).parameters["timeout"].default


@pytest.mark.parametrize("case", cases("no_answer"))
async def test_no_answer(
    case: Case,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    session: Session,
    ptys_before_link: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check_timeout = _CHANNEL_TIMEOUT
    if case.dialect in _CHECK_TIMEOUTS:
        check_timeout = _SHORT_CHECK
        monkeypatch.setattr(*_CHECK_TIMEOUTS[case.dialect], check_timeout)

    async def hang() -> None:
        module.silent = True

    await _online(session)
    await hang()
    # The next session check waits its whole timeout for the answer that never comes.
    error = await session.wait_state(LinkState.DISCONNECTED, timeout=check_timeout + RECOVERY)
    assert case.outcome.reason is not None
    assert re.search(case.outcome.reason, str(error)), error
    module.silent = False
    # The port check after the loss may still be waiting for its lost answer (2 s).
    await session.wait_state(LinkState.CONNECTED, timeout=RECOVERY + 2.0)
    await assert_recovered(cloud, device, session, ptys_before_link)


async def _refused_then_fixed(
    session: Session,
    error_type: type[Exception],
    fix: Callable[[], None],
) -> None:
    """The first attempt fails with ``error_type``; once fixed, the link is back."""
    session.link.start()
    error = await session.wait_state(LinkState.DISCONNECTED)
    assert isinstance(error, error_type), error
    fix()
    await session.wait_state(LinkState.CONNECTED, timeout=RECOVERY)


@pytest.mark.parametrize("case", cases("sim_not_ready"))
async def test_sim_not_ready(
    case: Case,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    session: Session,
    ptys_before_link: int,
) -> None:
    module.sim_ready = False

    def insert() -> None:
        module.sim_ready = True

    await _refused_then_fixed(session, SimNotReady, insert)
    await assert_recovered(cloud, device, session, ptys_before_link)


@pytest.mark.parametrize("case", cases("no_network"))
async def test_no_network(
    case: Case,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    session: Session,
    ptys_before_link: int,
) -> None:
    module.registered = False

    def register() -> None:
        module.registered = True

    await _refused_then_fixed(session, NoNetwork, register)
    await assert_recovered(cloud, device, session, ptys_before_link)


@pytest.mark.parametrize("case", cases("auth_refused"))
async def test_auth_refused(
    case: Case,
    cloud: AliyunCloud,
    module: ModuleEmulator,
    sessions: list[Session],
    ptys_before_link: int,
    secrets_in_use: SecretsInUse,
) -> None:
    wrong = replace(IDENTITY, device_secret="Zx9" * 11)
    secrets_in_use.add(wrong.device_secret)
    device = cloud.add_device(PK, DN, IDENTITY.device_secret)
    session = Session(module, case.dialect, identity=wrong, health_interval=NO_CHECK)
    sessions.append(session)

    def console_reset() -> None:
        # The secret the device has becomes the cloud's (a reset in the console).
        cloud.add_device(PK, DN, wrong.device_secret)

    await _refused_then_fixed(session, AuthRefused, console_reset)
    assert cloud.auth_failures, "the cloud saw no refused attempt"
    await assert_recovered(cloud, device, session, ptys_before_link)


def _noise(module: ModuleEmulator) -> list[bytes]:
    """Binary noise (seeded), NULs, a URC cut before its length, bare line ends."""
    rng = random.Random(20240607)
    cut = message_urc(module, "9", {"Brightness": 1})[:12]
    return [
        bytes(rng.randrange(256) for _ in range(2048)),
        b"\x00" * 64,
        b"\r\n" + cut,
        b"\r\r\n\n\r\x00\r\n",
        b"\xff\xfe\r\n\xe4\xb8",  # a cut UTF-8 sequence
    ]


@pytest.mark.parametrize("case", cases("noise"))
async def test_noise(
    case: Case,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    session: Session,
    ptys_before_link: int,
) -> None:
    await _online(session)
    for chunk in _noise(module):
        module.inject(chunk)
    await _session_kept(session)
    await assert_recovered(cloud, device, session, ptys_before_link)


@pytest.mark.parametrize("case", cases("urc_inside"))
async def test_urc_inside(
    case: Case,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    session: Session,
    ptys_before_link: int,
) -> None:
    await _online(session)
    urc = message_urc(module, "77", {"Brightness": 77})
    module.urc_inside_next(urc.decode())
    # The publish's answer carries the URC before its OK: both must be read right.
    await assert_messages_flow(cloud, device, session)
    assert await session.next_message() == property_set("77", {"Brightness": 77})
    await _session_kept(session)
    await assert_recovered(cloud, device, session, ptys_before_link)


FLOOD = 500


@pytest.mark.parametrize("case", cases("urc_flood"))
async def test_urc_flood(
    case: Case,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    session: Session,
    ptys_before_link: int,
) -> None:
    await _online(session)
    frames = [
        b"\r\n" + message_urc(module, str(n), {"Brightness": n}) + b"\r\n" for n in range(FLOOD)
    ]
    module.inject(b"".join(frames) + b"\r\n+CSQ: 24,99\r\n" * FLOOD)
    for n in range(FLOOD):
        assert await session.next_message() == property_set(str(n), {"Brightness": n})
    await _session_kept(session)
    await assert_recovered(cloud, device, session, ptys_before_link)


@pytest.mark.parametrize("case", cases("long_line"))
async def test_long_line(
    case: Case,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    session: Session,
    ptys_before_link: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _online(session)
    module.inject(b"\r\n" + b"A" * 20_000)
    module.inject(b"\r\n" + message_urc(module, "88", {"Brightness": 88}) + b"\r\n")
    assert await session.next_message() == property_set("88", {"Brightness": 88})
    dropped = [r for r in caplog.records if "dropped a line longer than" in r.getMessage()]
    assert [r.levelno for r in dropped] == [logging.WARNING]
    await _session_kept(session)
    await assert_recovered(cloud, device, session, ptys_before_link)

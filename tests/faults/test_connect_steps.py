"""A failure at every step of connect: each command a successful first connect sends is
answered with a failure once, on a freshly booted module. The link must come back by itself,
and no error it reported may carry a secret."""

from __future__ import annotations

from collections.abc import Iterator
import os

import pytest

from custom_components.aliyun_iot_at.core.dialects.base import ModuleInfo
from custom_components.aliyun_iot_at.core.link import LinkState
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator
from tests.e2e.conftest import property_set

from .bench import (
    RECOVERY,
    Session,
    assert_nothing_left_behind,
    check_interval,
    expected_subscriptions,
)
from .matrix import Case, cases


def _new(case: Case, module: ModuleEmulator, sessions: list[Session]) -> Session:
    sessions.append(Session(module, case.dialect, health_interval=check_interval(case)))
    return sessions[-1]


async def _first_connect(session: Session, module: ModuleEmulator) -> tuple[list[str], ModuleInfo]:
    """The commands of a successful first connect to a freshly booted module, in order, and
    what the module said of itself."""
    await module.restart()
    module.received.clear()
    info = await session.link.connect_once()
    commands = list(dict.fromkeys(module.received))
    await session.link.stop()
    return commands, info


async def _connect_steps(
    case: Case, module: ModuleEmulator, sessions: list[Session]
) -> tuple[list[str], ModuleInfo]:
    """What starts each command of a first connect (two connects tell what varies: the
    Air72x's iotToken is new every time), and what the module said of itself."""
    first, truth = await _first_connect(_new(case, module, sessions), module)
    second, _ = await _first_connect(_new(case, module, sessions), module)
    assert len(first) == len(second), (first, second)
    return [_stable_part(a, b) for a, b in zip(first, second, strict=True)], truth


def _stable_part(first: str, second: str) -> str:
    """The command, or what it has in common with the next connect's, up to a field."""
    if first == second:
        return first
    common = os.path.commonprefix([first, second])  # noqa: RUF071 (text, not paths)
    return common[: max(common.rfind(mark) for mark in '=,"') + 1]


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _assert_no_secret(errors: list[BaseException], secrets: set[str]) -> None:
    for error in errors:
        for link in _chain(error):
            text = f"{link} {link!r}"
            assert not any(secret in text for secret in secrets), f"a secret in {type(link)}"


def _same_or_missing(info: ModuleInfo, truth: ModuleInfo) -> None:
    """Identification read after a failure is the module's or unknown, never wrong."""
    for name in ("manufacturer", "model", "firmware", "imei"):
        assert getattr(info, name) in (getattr(truth, name), None), name


async def _each_step_failing(
    case: Case,
    reply: str,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    sessions: list[Session],
    ptys_before_link: int,
) -> None:
    steps, truth = await _connect_steps(case, module, sessions)
    retried: list[str] = []
    for step in steps:
        try:
            session = await _fail_once(case, step, reply, module, sessions)
            if errors := session.errors():
                retried.append(step)
            _assert_no_secret(errors, cloud.secrets())
            assert session.link.info is not None
            _same_or_missing(session.link.info, truth)
            assert cloud.subscriptions(device) == expected_subscriptions()
            msg_id = await cloud.set_properties(device, {"Brightness": 5})
            assert await session.next_message() == property_set(msg_id, {"Brightness": 5})
            assert_nothing_left_behind(ptys_before_link)
            await session.link.stop()
        except (AssertionError, TimeoutError) as err:
            err.add_note(f"with {reply} at {step!r}")
            raise
    # Most steps cannot be skipped: a connect that tolerated them all would be suspicious.
    assert len(retried) > len(steps) // 2, retried


async def _fail_once(
    case: Case, step: str, reply: str, module: ModuleEmulator, sessions: list[Session]
) -> Session:
    """A new link to the freshly booted module, whose ``step`` fails once: once it is up."""
    await module.restart()
    module.received.clear()
    module.fail_next(step, reply)
    session = _new(case, module, sessions)
    session.link.start()
    await session.wait_state(LinkState.CONNECTED, timeout=RECOVERY)
    assert any(line.startswith(step) for line in module.received), "not sent"
    return session


@pytest.mark.parametrize("case", cases("step_error"))
async def test_error_at_each_step(
    case: Case,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    sessions: list[Session],
    ptys_before_link: int,
) -> None:
    await _each_step_failing(case, "ERROR", cloud, device, module, sessions, ptys_before_link)


@pytest.mark.parametrize("case", cases("step_cme_error"))
async def test_cme_error_at_each_step(
    case: Case,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    sessions: list[Session],
    ptys_before_link: int,
) -> None:
    await _each_step_failing(
        case, "+CME ERROR: 100", cloud, device, module, sessions, ptys_before_link
    )

"""The fault matrix as data: each fault, the dialects it applies to and what must happen.

The fault tests take their cases from here (``cases``), and the table of
``docs/reliability.md`` is generated from it (``scripts/reliability-table``);
``test_reliability_doc.py`` fails when the table, this data and the tests disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from custom_components.aliyun_iot_at.core.dialects import DIALECT_NAMES

DIALECTS = DIALECT_NAMES


@dataclass(frozen=True)
class Outcome:
    """What must happen on one dialect.

    ``text`` is the table cell. ``reason`` is a regular expression the reason the link gives
    for the loss must match (it names what told the link). ``probe``: the
    module announces nothing of this fault, so only the link's periodic session check (run
    often in that test) can find it; otherwise the check is off and the module must tell.
    """

    text: str
    reason: str | None = None
    probe: bool = False


@dataclass(frozen=True)
class Fault:
    """One row: a fault, how the test causes it, the outcome per dialect, the tests."""

    key: str
    title: str
    how: str
    outcomes: Mapping[str, Outcome]
    tests: tuple[str, ...]
    # Dialects (a subset of ``outcomes``) also run through Home Assistant.
    through_ha: tuple[str, ...] = ()
    not_applicable: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """One cell: what a parametrized test receives."""

    fault: str
    dialect: str
    outcome: Outcome


def _each(
    outcome: Outcome, *, but: Mapping[str, Outcome | None] | None = None
) -> dict[str, Outcome]:
    """``outcome`` on every dialect, except those in ``but`` (``None``: not applicable)."""
    found: dict[str, Outcome] = {}
    for dialect in DIALECTS:
        special = (but or {}).get(dialect, outcome)
        if special is not None:
            found[dialect] = special
    return found


PROBE = Outcome("session check → back", r"no longer reports a session", probe=True)
PORT = Outcome("port lost → reopened → back", r"the port was lost")
RETRIED = Outcome("failed step retried → back")
KEPT = Outcome("dropped, session kept")
DELIVERED = Outcome("delivered in order, session kept")


def _urc(name: str) -> Outcome:
    return Outcome(f"`{name}` → back", rf"reported {_escape(name)}")


def _power_on(line: str) -> Outcome:
    return Outcome(f"`{line}` → back", rf"restarted \({line}\)")


def _escape(text: str) -> str:
    return text.replace("+", r"\+")


_LOSS_URCS: dict[str, Outcome | None] = {
    "quectel": _urc("+QMTSTAT"),
    "ml302": PROBE,
    "me3630": PROBE,
    "air72x": _urc("CLOSED"),
    "w800": _urc("+MQTTDISCONNECTED"),
}
_NO_SIM = {"w800": None}

FAULTS: tuple[Fault, ...] = (
    Fault(
        "cloud_kick",
        "Link dropped by the cloud",
        "`cloud.kick`: the broker cuts the device's connection",
        _each(PROBE, but=_LOSS_URCS),
        ("test_link_faults.py::test_cloud_kick", "test_ha_faults.py::test_cloud_kick"),
        through_ha=DIALECTS,
    ),
    Fault(
        "module_drop",
        "Link dropped by the module",
        "`drop_link()`: the network under the module vanishes",
        _each(PROBE, but=_LOSS_URCS),
        ("test_link_faults.py::test_module_drop",),
    ),
    Fault(
        "module_restart",
        "Module restart",
        "`restart()`: state lost, power-on lines printed",
        _each(
            _power_on("RDY"),
            but={"me3630": PROBE, "w800": _power_on("ready")},
        ),
        ("test_link_faults.py::test_module_restart", "test_ha_faults.py::test_module_restart"),
        through_ha=DIALECTS,
    ),
    Fault(
        "port_replug",
        "Port gone and back at the same path",
        "`unplug()`, then `replug()`: a new pty behind the same path",
        _each(PORT),
        ("test_link_faults.py::test_port_replug", "test_ha_faults.py::test_port_replug"),
        through_ha=DIALECTS,
    ),
    Fault(
        "no_answer",
        "A command never answered",
        "`silent` for a while: commands swallowed, nothing answered",
        _each(Outcome("command times out → back", r"no longer reports a session", probe=True)),
        ("test_link_faults.py::test_no_answer",),
    ),
    Fault(
        "step_error",
        "`ERROR` at each step of connect",
        "`fail_next(command, 'ERROR')` for every command of a successful connect",
        _each(RETRIED),
        ("test_connect_steps.py::test_error_at_each_step",),
    ),
    Fault(
        "step_cme_error",
        "`+CME ERROR` at each step of connect",
        "`fail_next(command, '+CME ERROR: 100')` for every command of a successful connect",
        _each(RETRIED),
        ("test_connect_steps.py::test_cme_error_at_each_step",),
    ),
    Fault(
        "sim_not_ready",
        "SIM not ready",
        "`sim_ready = False` until the first refusal, then `True`",
        _each(Outcome("`SimNotReady`, retried → back"), but=_NO_SIM),
        ("test_link_faults.py::test_sim_not_ready",),
        not_applicable={"w800": "Wi-Fi: no SIM"},
    ),
    Fault(
        "no_network",
        "No network",
        "`registered = False` until the first refusal, then `True`",
        _each(Outcome("`NoNetwork`, retried → back")),
        ("test_link_faults.py::test_no_network",),
    ),
    Fault(
        "auth_refused",
        "Authentication refused, then fixed",
        "a secret the cloud does not know, until the cloud's device gets it",
        _each(Outcome("`AuthRefused`, retried at the slowest pace → back")),
        ("test_link_faults.py::test_auth_refused", "test_ha_faults.py::test_auth_refused"),
        through_ha=DIALECTS,
    ),
    Fault(
        "noise",
        "Noise bytes and half lines",
        "`inject()`: binary noise, NULs, a cut URC, bare CR and LF",
        _each(KEPT),
        ("test_link_faults.py::test_noise",),
    ),
    Fault(
        "urc_inside",
        "A URC between a command and its `OK`",
        "`urc_inside_next()`: a received message inside the next command's answer",
        _each(Outcome("URC delivered, command answered, session kept")),
        ("test_link_faults.py::test_urc_inside",),
    ),
    Fault(
        "urc_flood",
        "A flood of URCs",
        "`inject()`: 500 received messages at once, and 500 unknown URCs",
        _each(DELIVERED),
        ("test_link_faults.py::test_urc_flood",),
    ),
    Fault(
        "long_line",
        "A line longer than the bound",
        "`inject()`: 20 000 bytes without a line end, then a received message",
        _each(Outcome("dropped (one warning), next line intact, session kept")),
        ("test_link_faults.py::test_long_line",),
    ),
)

BY_KEY = {fault.key: fault for fault in FAULTS}


def cases(key: str, *, ha: bool = False) -> list[Any]:
    """The parameters of the test of fault ``key``: one per dialect it applies to (through
    Home Assistant: the dialects it is run there on)."""
    fault = BY_KEY[key]
    dialects = fault.through_ha if ha else tuple(fault.outcomes)
    return [
        pytest.param(Case(key, dialect, fault.outcomes[dialect]), id=dialect)
        for dialect in dialects
    ]

"""What every dialect shares: Aliyun's bounds, the NTP probe, polling steps, message URCs."""

from __future__ import annotations

from dataclasses import replace
import logging
from pathlib import Path

import pytest

from custom_components.aliyun_iot_at.core.channel import AtChannel
from custom_components.aliyun_iot_at.core.dialects import dialect_class
from custom_components.aliyun_iot_at.core.dialects.base import (
    SIM_READY,
    DeviceIdentity,
    InboundMessage,
    LinkSettings,
    aliyun_keepalive,
    aliyun_qos,
    ntp_request,
    run_step,
)
from custom_components.aliyun_iot_at.core.dialects.quectel import QuectelDialect
from custom_components.aliyun_iot_at.core.errors import SimNotReady, UnsafeValue

from .conftest import Events, emulated

PK = "a1BaseTest1"
DN = "base-dev"
DS = "Hq3YtJ0v9m2LkfP8sWc6RbN4xZ1aDgE7"
SETTINGS = LinkSettings(DeviceIdentity(PK, DN, DS))


@pytest.mark.parametrize(
    ("asked", "sent"), [(5, 30), (30, 30), (300, 300), (1200, 1200), (9999, 1200)]
)
def test_keepalive_within_aliyuns_range(asked: int, sent: int) -> None:
    assert aliyun_keepalive(asked) == sent


def test_qos_0_and_1_only() -> None:
    assert [aliyun_qos(0), aliyun_qos(1)] == [0, 1]
    for qos in (-1, 2):
        with pytest.raises(UnsafeValue, match="QoS 0 and 1"):
            aliyun_qos(qos)


def test_ntp_probe() -> None:
    topic, payload = ntp_request(SETTINGS, 1700000000123)
    assert topic == f"/ext/ntp/{PK}/{DN}/request"
    assert payload == b'{"deviceSendTime":"1700000000123"}'


# --- polling: SIM, registration, packet service ---------------------------------------------


async def test_a_step_polls_every_second_for_at_most_max_poll(
    tmp_path: Path, offline_port: int
) -> None:
    async with emulated("quectel", tmp_path / "tty", offline_port) as (module, channel):
        module.sim_ready = False
        with pytest.raises(SimNotReady, match=r"^AT\+CPIN\?: \+CME ERROR: 10$"):
            await run_step(channel, SIM_READY, max_poll=1.0)  # the step itself polls 20 s
        assert module.received.count("AT+CPIN?") == 2
        with pytest.raises(SimNotReady):
            await run_step(channel, replace(SIM_READY, poll=0.0), max_poll=60.0)
        assert module.received.count("AT+CPIN?") == 3


@pytest.mark.parametrize("name", ["quectel", "ml302", "me3630", "air72x"])
async def test_attach_polls_no_longer_than_the_attach_timeout(
    name: str, tmp_path: Path, offline_port: int, events: Events
) -> None:
    settings = replace(SETTINGS, attach_timeout=0.0)
    async with emulated(name, tmp_path / "tty", offline_port, http_port=offline_port) as (
        module,
        channel,
    ):
        module.sim_ready = False
        dialect = dialect_class(name)(channel, settings, events)
        with pytest.raises(SimNotReady):
            await dialect.attach()
        assert module.received == ["AT+CPIN?"]


# --- message URCs ---------------------------------------------------------------------------


async def test_an_unreadable_message_urc_is_dropped_with_a_warning(
    events: Events, caplog: pytest.LogCaptureFixture
) -> None:
    channel = AtChannel()
    QuectelDialect(channel, SETTINGS, events)
    channel.data_received(b'\r\n+QMTRECV: 0,1,"/t",x\r\n+QMTRECV: 0,2,"/t",2,"{}"\r\n')
    assert events.messages == [InboundMessage("/t", b"{}")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["dropped an unreadable +QMTRECV: URC"]

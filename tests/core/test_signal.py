"""The signal strength: read through each dialect (AT+CSQ, the W800's AT+CWJAP?) and the link."""

from __future__ import annotations

from pathlib import Path

import pytest

from custom_components.aliyun_iot_at.core.alink import Topics
from custom_components.aliyun_iot_at.core.dialects import DIALECT_NAMES, dialect_class
from custom_components.aliyun_iot_at.core.dialects.base import (
    DeviceIdentity,
    LinkSettings,
    csq_dbm,
)
from custom_components.aliyun_iot_at.core.dialects.w800 import wifi_dbm
from custom_components.aliyun_iot_at.core.errors import NotConnected
from custom_components.aliyun_iot_at.core.link import Link, PortSettings
from testbed.cloud import AliyunCloud
from testbed.emulator import ModuleEmulator

from .conftest import Events, emulated

PK, DN, DS = "a1FPRUWiCPA", "signal-1", "Hq3YtJ0v9m2LkfP8sWc6RbN4xZ1aDgE7"
SETTINGS = LinkSettings(DeviceIdentity(PK, DN, DS))


@pytest.mark.parametrize(
    ("lines", "dbm"),
    [
        (["+CSQ: 24,99"], -65),
        (["+CSQ: 0,0"], -113),
        (["+CSQ: 31,0"], -51),
        (["+CSQ:20,3"], -73),
        (["+CSQ: 99,99"], None),  # not known
        (["+CSQ: 32,0"], None),  # not a 27.007 value
        (["+CSQ: x,1"], None),
        ([], None),
    ],
)
def test_csq_in_dbm(lines: list[str], dbm: int | None) -> None:
    assert csq_dbm(lines) == dbm


@pytest.mark.parametrize(
    ("lines", "dbm"),
    [
        (['+CWJAP:"HomeWiFi","a4:56:02:7b:3c:11",6,-52'], -52),
        (['+CWJAP: "a,b","a4:56:02:7b:3c:11",11,-80,0'], -80),  # a comma inside the SSID
        (["No AP"], None),
        (['+CWJAP:"HomeWiFi"'], None),
        (['+CWJAP:"HomeWiFi","a4",6,strong'], None),
    ],
)
def test_wifi_rssi_in_dbm(lines: list[str], dbm: int | None) -> None:
    assert wifi_dbm(lines) == dbm


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
async def test_every_dialect_reads_its_module(
    tmp_path: Path, offline_port: int, dialect: str
) -> None:
    async with emulated(dialect, tmp_path / "tty", offline_port) as (module, channel):
        reader = dialect_class(dialect)(channel, SETTINGS, Events())
        await reader.initialize()
        assert await reader.signal() == (-52 if dialect == "w800" else -65)

        # No network (no access point): nothing to measure.
        module.registered = False
        assert await reader.signal() is None


async def test_the_link_reads_the_signal_while_the_session_is_up(
    tmp_path: Path, cloud: AliyunCloud
) -> None:
    cloud.add_device(PK, DN, DS)
    async with ModuleEmulator(
        "quectel", link=tmp_path / "tty", mqtt_port=cloud.mqtt_port
    ) as module:
        link = Link(
            PortSettings(str(module.path)),
            "quectel",
            SETTINGS,
            Topics(PK, DN).subscriptions(),
            on_message=lambda message: None,
        )
        with pytest.raises(NotConnected):
            await link.signal()
        await link.connect_once()
        try:
            assert await link.signal() == -65
            assert "AT+CSQ" in module.received
        finally:
            await link.stop()
        with pytest.raises(NotConnected):
            await link.signal()

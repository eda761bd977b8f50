"""Every dialect end to end: what keeps the session from coming up is the error a user can act
on, said without the secret, before the module is asked to reach the cloud."""

from __future__ import annotations

import pytest

from custom_components.aliyun_iot_at.core.dialects import DIALECT_NAMES
from custom_components.aliyun_iot_at.core.errors import AuthRefused, NoNetwork, SimNotReady
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator

from .conftest import DN, PK, WRONG_SECRET, Sessions

# Per dialect: what its refusal of the credentials says, what its failed registration names,
# and the commands it only sends once attached.
REFUSED = {
    "quectel": r"\+QMTCONN: 0,0,\d",
    "ml302": r"refused the device's credentials \(AT\+ALYMQTTOPEN: ERROR\)",
    "me3630": r"refused the device credentials \(\+ALIAUTH: FAIL\)",
    "air72x": "refused the device",
    "w800": "device secret",
}
UNREGISTERED = {
    "quectel": "CGREG",
    "ml302": "CEREG",
    "me3630": "NO SERVICE",
    "air72x": "CGATT",
    "w800": r"AT\+CWJAP",  # not joined to a Wi-Fi network
}
CLOUD_COMMANDS = {
    "quectel": "AT+QMT",
    "ml302": "AT+ALY",
    "me3630": "AT+CLOUD",
    "air72x": "AT+HTTP",
    "w800": "AT+MQTT",
}
WITH_SIM = [name for name in DIALECT_NAMES if name != "w800"]  # the W800 is Wi-Fi


@pytest.fixture(params=DIALECT_NAMES)
def dialect(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def test_a_wrong_secret_is_auth_refused(
    cloud: AliyunCloud, device: Device, sessions: Sessions, dialect: str
) -> None:
    with pytest.raises(AuthRefused, match=REFUSED[dialect]) as caught:
        await sessions.new(identity=WRONG_SECRET).link.connect_once()
    assert WRONG_SECRET.device_secret not in str(caught.value)
    assert not cloud.is_online(device)
    if dialect == "air72x":  # it asks the HTTP auth endpoint first
        expected = ("http", f"{DN}&{PK}", "sign mismatch")
    else:
        expected = ("mqtt", f"{DN}&{PK}", "password is not the device's sign")
    assert [(f.channel, f.username, f.reason) for f in cloud.auth_failures] == [expected]


async def test_no_network(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, sessions: Sessions, dialect: str
) -> None:
    module.registered = False
    with pytest.raises(NoNetwork, match=UNREGISTERED[dialect]):
        await sessions.new(attach_timeout=0).link.connect_once()
    assert not cloud.is_online(device)
    assert not any(line.startswith(CLOUD_COMMANDS[dialect]) for line in module.received)


@pytest.mark.parametrize("dialect", WITH_SIM, indirect=True)
async def test_sim_not_ready(
    cloud: AliyunCloud, device: Device, module: ModuleEmulator, sessions: Sessions, dialect: str
) -> None:
    module.sim_ready = False
    with pytest.raises(SimNotReady):
        await sessions.new(attach_timeout=0).link.connect_once()
    assert not cloud.is_online(device)
    assert not any(line.startswith(CLOUD_COMMANDS[dialect]) for line in module.received)

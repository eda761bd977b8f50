"""The Quectel personality (seed 004) over its pty, against a plain local amqtt broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
import re
import socket

from amqtt.broker import Broker
from amqtt.client import MQTTClient
import pytest

from custom_components.aliyun_iot_at.core.signing import mqtt_credentials
from testbed.emulator import ModuleEmulator
from testbed.emulator.host import HostPort

PK, DN, DS = "a1wFylTxYeD", "co_0001", "7ab0c4b3532b5783df5fdc58a2895d7a"
SET_TOPIC = f"/sys/{PK}/{DN}/thing/service/property/set"
POST_TOPIC = f"/sys/{PK}/{DN}/thing/event/property/post"
ALIYUN = "iot-as-mqtt.cn-shanghai.aliyuncs.com"


@pytest.fixture
def port(socket_enabled: None) -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free: int = probe.getsockname()[1]
        return free


@pytest.fixture
async def broker(port: int, request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    """A plain amqtt broker on 127.0.0.1; anonymous clients allowed unless parametrized False."""
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {
                    "allow_anonymous": getattr(request, "param", True)
                }
            },
        }
    )
    await broker.start()
    yield broker
    if broker.transitions.state == "started":
        await broker.shutdown()


@pytest.fixture
async def emulator(tmp_path: Path, port: int, broker: Broker) -> AsyncIterator[ModuleEmulator]:
    link = tmp_path / "ttyUSB2"
    async with ModuleEmulator("quectel", link=link, mqtt_port=port, echo=False) as emu:
        yield emu


@pytest.fixture
async def host(emulator: ModuleEmulator) -> AsyncIterator[HostPort]:
    with HostPort(emulator.path).open() as host:
        yield host


@pytest.fixture
async def cloud_side(port: int, broker: Broker) -> AsyncIterator[MQTTClient]:
    """A second client playing the cloud's side."""
    client = MQTTClient("cloud", config={"auto_reconnect": False})
    await client.connect(f"mqtt://127.0.0.1:{port}")
    yield client
    await client.disconnect()


async def _ok_then(host: HostPort, command: str) -> str:
    """Send ``command``; after its ``OK``, the next line: the result URC."""
    assert await host.command(command) == b"\r\nOK\r\n"
    assert await host.read_until(b"\r\n") == b"\r\n"
    return (await host.read_until(b"\r\n")).decode().removesuffix("\r\n")


async def _connect(host: HostPort, recv_mode: str = "0,0,1") -> None:
    """The manual's sequence from configuration to a connected client."""
    assert await host.command(f'AT+QMTCFG="recv/mode",{recv_mode}') == b"\r\nOK\r\n"
    assert await host.command(f'AT+QMTCFG="aliauth",0,"{PK}","{DN}","{DS}"') == b"\r\nOK\r\n"
    assert await _ok_then(host, f'AT+QMTOPEN=0,"{ALIYUN}",1883') == "+QMTOPEN: 0,0"
    assert await _ok_then(host, 'AT+QMTCONN=0,"clientExample_0"') == "+QMTCONN: 0,0,0"


async def test_boot_lines_and_identity(emulator: ModuleEmulator, host: HostPort) -> None:
    assert await host.command("ATE1") == b"\r\nOK\r\n"
    await emulator.restart()
    assert await host.read_until(b"SMS DONE\r\n") == (
        b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n"
    )
    assert await host.command("AT") == b"\r\nOK\r\n"  # the echo setting of power-on
    assert await host.command("ATI") == (
        b"\r\nQuectel\r\nEC600S\r\nRevision: EC600SCNAAR01A03M16\r\n\r\nOK\r\n"
    )


async def test_pdp_context(emulator: ModuleEmulator, host: HostPort) -> None:
    assert await host.command("AT+QICSGP=1") == b'\r\n+QICSGP: 1,"CMNET","","",1\r\n\r\nOK\r\n'
    assert await host.command('AT+QICSGP=1,1,"CMIOT","","",0') == b"\r\nOK\r\n"
    assert await host.command("AT+QICSGP=1") == b'\r\n+QICSGP: 1,"CMIOT","","",0\r\n\r\nOK\r\n'
    assert await host.command("AT+QIACT?") == b"\r\nOK\r\n"
    assert await host.command("AT+QIACT=1") == b"\r\nOK\r\n"
    assert await host.command("AT+QIACT=1") == b"\r\nERROR\r\n"
    assert await host.command("AT+QIACT?") == b'\r\n+QIACT: 1,1,1,"10.189.73.246"\r\n\r\nOK\r\n'
    emulator.registered = False
    assert await host.command("AT+QIACT=2") == b"\r\nERROR\r\n"
    assert await host.command("AT+QIDEACT=1") == b"\r\nOK\r\n"
    assert await host.command("AT+QIACT?") == b"\r\nOK\r\n"


async def test_configuration_queries(host: HostPort) -> None:
    assert await host.command('AT+QMTCFG="keepalive",0') == (
        b'\r\n+QMTCFG: "keepalive",120\r\n\r\nOK\r\n'
    )
    assert await host.command('AT+QMTCFG="keepalive",0,60') == b"\r\nOK\r\n"
    assert await host.command('AT+QMTCFG="KEEPALIVE",0') == (
        b'\r\n+QMTCFG: "keepalive",60\r\n\r\nOK\r\n'
    )
    assert await host.command('AT+QMTCFG="keepalive",0,3601') == b"\r\nERROR\r\n"
    assert await host.command('AT+QMTCFG="recv/mode",0,1') == b"\r\nERROR\r\n"
    assert await host.command('AT+QMTCFG="aliauth",0') == b"\r\nERROR\r\n"
    assert await host.command('AT+QMTCFG="nope",0,1') == b"\r\nERROR\r\n"


async def test_connect_signs_for_aliyun(
    emulator: ModuleEmulator, host: HostPort, broker: Broker
) -> None:
    await _connect(host)
    assert (
        await host.command("AT+QMTOPEN?")
        == f'\r\n+QMTOPEN: 0,"{ALIYUN}",1883\r\n\r\nOK\r\n'.encode()
    )
    assert await host.command("AT+QMTCONN?") == b"\r\n+QMTCONN: 0,3\r\n\r\nOK\r\n"
    assert emulator.mqtt.target == (ALIYUN, 1883, False)
    [(client_id, (session, _))] = [
        item for item in broker.sessions.items() if item[0].startswith("clientExample_0|")
    ]
    match = re.fullmatch(
        r"clientExample_0\|securemode=3,signmethod=hmacsha1,timestamp=(\d{13})\|", client_id
    )
    assert match is not None
    expected = mqtt_credentials(
        PK, DN, DS, client_id="clientExample_0", timestamp=match[1], method="hmacsha1"
    )
    assert (session.username, session.password) == (expected.username, expected.password)


async def test_tls_flag_selects_securemode_2(emulator: ModuleEmulator, host: HostPort) -> None:
    assert await host.command('AT+QMTCFG="ssl",0,1,2') == b"\r\nOK\r\n"
    await _connect(host)
    assert emulator.mqtt.target == (ALIYUN, 1883, True)


async def test_subscribe_and_receive_a_cloud_message(
    host: HostPort, cloud_side: MQTTClient
) -> None:
    await _connect(host)
    assert await _ok_then(host, f'AT+QMTSUB=0,1,"{SET_TOPIC}",0') == "+QMTSUB: 0,1,0,0"
    payload = b'{"params":{"a":"x,\\"y\\""}}\r\nOK\r\n'  # quotes, commas, even CR LF and "OK"
    await cloud_side.publish(SET_TOPIC, payload, qos=0)
    header = f'\r\n+QMTRECV: 0,0,"{SET_TOPIC}",{len(payload)},"'.encode()
    assert await host.read_until(header) == header
    assert await host.read_until(b'"\r\n') == payload + b'"\r\n'
    assert await _ok_then(host, f'AT+QMTUNS=0,2,"{SET_TOPIC}"') == "+QMTUNS: 0,2,0"


async def test_receive_without_length(host: HostPort, cloud_side: MQTTClient) -> None:
    await _connect(host, recv_mode="0,0,0")
    assert await _ok_then(host, f'AT+QMTSUB=0,1,"{SET_TOPIC}",0,"other",1') == "+QMTSUB: 0,1,0,0,1"
    await cloud_side.publish(SET_TOPIC, b"{}", qos=0)
    line = f'\r\n+QMTRECV: 0,0,"{SET_TOPIC}","{{}}"\r\n'.encode()
    assert await host.read_until(line) == line


async def test_publish_reaches_the_cloud_byte_exact(host: HostPort, cloud_side: MQTTClient) -> None:
    await cloud_side.subscribe([(POST_TOPIC, 1)])
    await _connect(host)
    payload = b'{"id":"1","params":{"PowerSwitch_1":0,"t":"a,\\"b\\"\r\n"}}'
    host.send(f'AT+QMTPUBEX=0,5,1,0,"{POST_TOPIC}",{len(payload)}\r')
    assert await host.read_until(b"> ") == b"\r\n> "
    host.send(payload)
    assert await host.read_until(b"+QMTPUBEX: 0,5,0\r\n") == b"\r\nOK\r\n\r\n+QMTPUBEX: 0,5,0\r\n"
    message = await cloud_side.deliver_message(timeout_duration=2)
    assert message is not None
    assert (message.topic, bytes(message.data)) == (POST_TOPIC, payload)


async def test_broker_disconnect_reports_qmtstat(host: HostPort, broker: Broker) -> None:
    await _connect(host)
    await broker.shutdown()
    assert await host.read_until(b"+QMTSTAT: 0,1\r\n") == b"\r\n+QMTSTAT: 0,1\r\n"
    assert await host.command("AT+QMTCONN?") == b"\r\nOK\r\n"
    assert await host.command(f'AT+QMTPUBEX=0,0,0,0,"{POST_TOPIC}",2') == b"\r\nERROR\r\n"


@pytest.mark.parametrize("broker", [False], indirect=True)
async def test_refused_connect(host: HostPort) -> None:
    """Without aliauth nor user name the client is anonymous, which this broker refuses."""
    assert await _ok_then(host, f'AT+QMTOPEN=0,"{ALIYUN}",1883') == "+QMTOPEN: 0,0"
    assert await host.command('AT+QMTCONN=0,"dev"') == b"\r\nOK\r\n"
    assert await host.read_until(b"+QMTSTAT: 0,1\r\n") == (
        b"\r\n+QMTCONN: 0,0,5\r\n\r\n+QMTSTAT: 0,1\r\n"
    )
    assert await host.command("AT+QMTOPEN?") == b"\r\nOK\r\n"


async def test_unreachable_cloud(tmp_path: Path, port: int) -> None:
    """Nothing listens on ``port`` (no broker here)."""
    emu = ModuleEmulator("quectel", link=tmp_path / "tty", mqtt_port=port, echo=False)
    async with emu:
        with HostPort(emu.path).open() as host:
            assert await _ok_then(host, 'AT+QMTOPEN=0,"h",1883') == "+QMTOPEN: 0,0"
            assert await _ok_then(host, 'AT+QMTCONN=0,"dev","u","p"') == "+QMTCONN: 0,2"
            assert await host.command("AT+QMTCONN?") == b"\r\n+QMTCONN: 0,1\r\n\r\nOK\r\n"


async def test_disconnect_and_close(host: HostPort) -> None:
    await _connect(host)
    assert await _ok_then(host, "AT+QMTDISC=0") == "+QMTDISC: 0,0"
    assert await host.command("AT+QMTCONN?") == b"\r\nOK\r\n"
    assert await _ok_then(host, 'AT+QMTOPEN=0,"h",1883') == "+QMTOPEN: 0,0"
    assert await _ok_then(host, "AT+QMTCLOSE=0") == "+QMTCLOSE: 0,0"
    assert await host.command("AT+QMTCLOSE=0") == b"\r\nERROR\r\n"


async def test_open_results_and_wrong_states(emulator: ModuleEmulator, host: HostPort) -> None:
    assert await host.command('AT+QMTCONN=0,"dev"') == b"\r\nERROR\r\n"
    assert await host.command(f'AT+QMTSUB=0,1,"{SET_TOPIC}",0') == b"\r\nERROR\r\n"
    assert await host.command('AT+QMTOPEN=0,"h",0') == b"\r\nERROR\r\n"
    assert await host.command('AT+QMTOPEN=6,"h",1883') == b"\r\nERROR\r\n"
    assert await _ok_then(host, 'AT+QMTOPEN=0,"bad host",1883') == "+QMTOPEN: 0,4"
    emulator.registered = False
    assert await _ok_then(host, 'AT+QMTOPEN=0,"h",1883') == "+QMTOPEN: 0,3"
    emulator.registered = True
    assert await _ok_then(host, 'AT+QMTOPEN=0,"h",1883') == "+QMTOPEN: 0,0"
    assert await _ok_then(host, 'AT+QMTOPEN=1,"h",1883') == "+QMTOPEN: 1,2"
    assert await host.command(f'AT+QMTSUB=0,1,"{SET_TOPIC}"') == b"\r\nERROR\r\n"
    assert await host.command(f'AT+QMTPUBEX=0,0,1,0,"{POST_TOPIC}",2') == b"\r\nERROR\r\n"


async def test_drop_link_reports_qmtstat_2(emulator: ModuleEmulator, host: HostPort) -> None:
    await _connect(host)
    await emulator.drop_link()
    assert await host.read_until(b"+QMTSTAT: 0,2\r\n") == b"\r\n+QMTSTAT: 0,2\r\n"
    assert await host.command("AT+QIACT?") == b"\r\nOK\r\n"
    assert not emulator.mqtt.connected


async def test_restart_ends_the_session(emulator: ModuleEmulator, host: HostPort) -> None:
    await _connect(host)
    await emulator.restart()
    assert await host.read_until(b"RDY\r\n") == b"\r\nRDY\r\n"
    assert not emulator.mqtt.connected
    host.send("ATE0\r")
    await host.read_until(b"OK\r\n")
    assert await host.command("AT+QMTCONN?") == b"\r\nOK\r\n"

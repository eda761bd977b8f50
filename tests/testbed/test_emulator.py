"""The module emulator's framework, driven through its real pty like a host would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import errno
from pathlib import Path

import pytest

from testbed.emulator import OK, Command, Handler, ModuleEmulator, Personality
from testbed.emulator.__main__ import build
from testbed.emulator.host import HostPort
from testbed.emulator.parser import Kind, parse_command, split_args


class Probe(Personality):
    """A personality that shows what the framework hands a handler."""

    manufacturer = "Probe"

    def commands(self) -> dict[str, Handler]:
        return super().commands() | {"+ARGS=": self.args, "+DATA=": self.data}

    def power_on_lines(self) -> list[str]:
        return ["RDY"]

    async def args(self, cmd: Command) -> str:
        """One response line per argument, in brackets."""
        for arg in cmd.args:
            self.line(f"[{arg}]")
        return OK

    async def data(self, cmd: Command) -> str:
        """``> `` prompt, then ``n`` raw bytes shown as hex; an optional timeout in ms."""
        count, timeout = cmd.int_arg(0, 1, 100), cmd.int_arg(1, 1, 5000, default=2000)
        self.prompt("> ")
        data = await self.read_data(count, timeout / 1000)
        if data is None:
            return "ERROR"
        self.line(f"+DATA: {data.hex()}")
        return OK


@pytest.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[ModuleEmulator]:
    async with ModuleEmulator(Probe, link=tmp_path / "ttyEMU", mqtt_port=1) as emulator:
        yield emulator


@pytest.fixture
async def host(emulator: ModuleEmulator) -> AsyncIterator[HostPort]:
    with HostPort(emulator.path).open() as host:
        yield host


async def test_echo_is_on_by_default_and_ate_toggles_it(host: HostPort) -> None:
    assert await host.command("AT") == b"AT\r\r\nOK\r\n"
    assert await host.command("ATE0") == b"ATE0\r\r\nOK\r\n"
    assert await host.command("AT") == b"\r\nOK\r\n"
    assert await host.command("ate1") == b"\r\nOK\r\n"
    assert await host.command("AT") == b"AT\r\r\nOK\r\n"


async def test_echo_off_from_the_start(tmp_path: Path) -> None:
    async with ModuleEmulator(Probe, link=tmp_path / "tty", mqtt_port=1, echo=False) as emu:
        with HostPort(emu.path).open() as host:
            assert await host.command("AT") == b"\r\nOK\r\n"


async def test_arguments_are_split_outside_quotes(host: HostPort) -> None:
    host.send("ATE0\r")
    await host.read_until(b"OK\r\n")
    answer = await host.command('at+args=1, "a,b" ,x y,"q""r","", "open,end')
    assert answer == b"\r\n[1]\r\n[a,b]\r\n[x y]\r\n[qr]\r\n[]\r\n[open,end]\r\n\r\nOK\r\n"


async def test_lines_may_end_with_crlf_and_arrive_together(
    emulator: ModuleEmulator, host: HostPort
) -> None:
    host.send("ATE0\r\nAT+CGMI\r\n\r\nAT\r")
    assert await host.read_until(b"OK\r\n\r\nProbe\r\n\r\nOK\r\n\r\nOK\r\n") == (
        b"ATE0\r\r\nOK\r\n\r\nProbe\r\n\r\nOK\r\n\r\nOK\r\n"
    )
    assert emulator.received == ["ATE0", "AT+CGMI", "AT"]


async def test_unknown_and_malformed_commands_answer_error(host: HostPort) -> None:
    host.send("ATE0\r")
    await host.read_until(b"OK\r\n")
    assert await host.command("AT+NOPE") == b"\r\nERROR\r\n"
    assert await host.command("AT+CGMI junk") == b"\r\nERROR\r\n"
    assert await host.command("AT+CFUN=9") == b"\r\nERROR\r\n"
    assert await host.command("AT+CFUN=3") == b"\r\n+CME ERROR: 50\r\n"
    assert await host.command("AT+CMEE=x") == b"\r\nERROR\r\n"
    # The test form of a known command is accepted; text not starting with AT is ignored.
    assert await host.command("AT+CPIN=?") == b"\r\nOK\r\n"
    host.send("hello\r")
    assert await host.command("AT") == b"\r\nOK\r\n"


async def test_common_commands(emulator: ModuleEmulator, host: HostPort) -> None:
    host.send("ATE0\r")
    await host.read_until(b"OK\r\n")
    assert await host.command("ATI") == b"\r\nProbe\r\nAT module\r\nRevision: 1.0\r\n\r\nOK\r\n"
    assert await host.command("AT+CGSN") == b"\r\n860000000000000\r\n\r\nOK\r\n"
    assert await host.command("AT+CPIN?") == b"\r\n+CPIN: READY\r\n\r\nOK\r\n"
    assert await host.command("AT+CEREG?") == b"\r\n+CEREG: 0,1\r\n\r\nOK\r\n"
    assert await host.command("AT+CSQ") == b"\r\n+CSQ: 24,99\r\n\r\nOK\r\n"
    assert await host.command("AT+CGATT?") == b"\r\n+CGATT: 1\r\n\r\nOK\r\n"
    assert await host.command("AT+CFUN=4") == b"\r\nOK\r\n"
    assert await host.command("AT+CREG?") == b"\r\n+CREG: 0,0\r\n\r\nOK\r\n"
    assert await host.command("AT+CFUN?") == b"\r\n+CFUN: 4\r\n\r\nOK\r\n"


async def test_firmware_overrides_the_revision(tmp_path: Path) -> None:
    emu = ModuleEmulator(Probe, link=tmp_path / "tty", mqtt_port=1, firmware="V0409")
    async with emu:
        with HostPort(emu.path).open() as host:
            assert await host.command("AT+CGMR") == b"AT+CGMR\r\r\nV0409\r\n\r\nOK\r\n"


async def test_prompt_then_exact_raw_data(host: HostPort) -> None:
    host.send("AT+DATA=6\r")
    assert await host.read_until(b"> ") == b"AT+DATA=6\r> "
    host.send(b'a\r\n",b')  # CR, LF, quote and comma are data here, not syntax
    assert await host.read_until(b"OK\r\n") == b'a\r\n",b\r\n+DATA: 610d0a222c62\r\n\r\nOK\r\n'


async def test_raw_data_times_out(host: HostPort) -> None:
    host.send("ATE0\rAT+DATA=4,50\r")
    await host.read_until(b"> ")
    host.send(b"ab")
    assert await host.read_until(b"\r\n", timeout=1) == b"\r\n"
    assert await host.read_until(b"\r\n") == b"ERROR\r\n"
    assert await host.command("AT") == b"\r\nOK\r\n"


async def test_fail_next_answers_matching_commands(
    emulator: ModuleEmulator, host: HostPort
) -> None:
    host.send("ATE0\r")
    await host.read_until(b"OK\r\n")
    emulator.fail_next("at+csq", "+CME ERROR: 30", count=2)
    assert await host.command("AT") == b"\r\nOK\r\n"
    assert await host.command("AT+CSQ") == b"\r\n+CME ERROR: 30\r\n"
    assert await host.command("AT+CSQ") == b"\r\n+CME ERROR: 30\r\n"
    assert await host.command("AT+CSQ") == b"\r\n+CSQ: 24,99\r\n\r\nOK\r\n"
    emulator.fail_next(None)
    assert await host.command("AT") == b"\r\nERROR\r\n"


async def test_silent_swallows_commands(emulator: ModuleEmulator, host: HostPort) -> None:
    emulator.silent = True
    host.send("AT\r")
    with pytest.raises(TimeoutError):
        await host.read_until(b"\n", timeout=0.1)
    emulator.silent = False
    assert await host.command("AT+CGMI") == b"AT+CGMI\r\r\nProbe\r\n\r\nOK\r\n"
    assert emulator.received == ["AT", "AT+CGMI"]


async def test_sim_and_registration_knobs(emulator: ModuleEmulator, host: HostPort) -> None:
    host.send("ATE0\r")
    await host.read_until(b"OK\r\n")
    emulator.registered = False
    assert await host.command("AT+CGREG?") == b"\r\n+CGREG: 0,2\r\n\r\nOK\r\n"
    assert await host.command("AT+CSQ") == b"\r\n+CSQ: 99,99\r\n\r\nOK\r\n"
    emulator.sim_ready = False
    assert await host.command("AT+CPIN?") == b"\r\n+CME ERROR: 10\r\n"
    assert await host.command("AT+CREG?") == b"\r\n+CREG: 0,0\r\n\r\nOK\r\n"
    assert await host.command("AT+CMEE=0") == b"\r\nOK\r\n"
    assert await host.command("AT+CPIN?") == b"\r\nERROR\r\n"


async def test_inject_and_urcs(emulator: ModuleEmulator, host: HostPort) -> None:
    emulator.inject(b"\x00garbage\r\n+HALF")
    assert await host.read_until(b"+HALF") == b"\x00garbage\r\n+HALF"
    emulator.urc("+URC: 1")
    assert await host.read_until(b"+URC: 1\r\n") == b"\r\n+URC: 1\r\n"


async def test_drop_link_is_silent_without_a_urc_of_its_own(
    emulator: ModuleEmulator, host: HostPort
) -> None:
    await emulator.drop_link()
    assert not emulator.mqtt.connected
    assert host.pending() == b""
    assert await host.command("AT") == b"AT\r\r\nOK\r\n"


async def test_urc_inside_a_response(emulator: ModuleEmulator, host: HostPort) -> None:
    emulator.urc_inside_next("+QMTSTAT: 0,1")
    assert await host.command("AT+CGMI") == (
        b"AT+CGMI\r\r\nProbe\r\n\r\n+QMTSTAT: 0,1\r\n\r\nOK\r\n"
    )
    assert await host.command("AT") == b"AT\r\r\nOK\r\n"


async def test_unplug_fails_the_host_and_replug_comes_back_at_the_same_path(
    emulator: ModuleEmulator, host: HostPort
) -> None:
    await emulator.unplug()
    with pytest.raises(OSError) as failure:
        await host.read_until(b"\n")
    assert failure.value.errno == errno.EIO
    assert not emulator.path.exists()
    await emulator.replug()
    assert emulator.path.is_symlink()
    with HostPort(emulator.path).open() as again:
        assert await again.command("AT") == b"AT\r\r\nOK\r\n"


async def test_restart_emits_rdy_and_resets_state(emulator: ModuleEmulator, host: HostPort) -> None:
    assert await host.command("ATE0") == b"ATE0\r\r\nOK\r\n"
    assert await host.command("AT+CMEE=0") == b"\r\nOK\r\n"
    await emulator.restart()
    assert await host.read_until(b"RDY\r\n") == b"\r\nRDY\r\n"
    assert await host.command("AT+CMEE?") == b"AT+CMEE?\r\r\n+CMEE: 1\r\n\r\nOK\r\n"


async def test_input_during_boot_is_ignored(emulator: ModuleEmulator, host: HostPort) -> None:
    booting = emulator.restart(boot_time=0.1)
    await asyncio.sleep(0)
    host.send("AT\r")
    await booting
    assert await host.read_until(b"RDY\r\n") == b"\r\nRDY\r\n"
    assert emulator.received == []


async def test_cfun_reset_answers_ok_then_reboots(host: HostPort) -> None:
    host.send("AT+CFUN=1,1\r")
    assert await host.read_until(b"RDY\r\n") == b"AT+CFUN=1,1\r\r\nOK\r\n\r\nRDY\r\n"


async def test_baudrate_paces_output(tmp_path: Path) -> None:
    emu = ModuleEmulator(Probe, link=tmp_path / "tty", mqtt_port=1, baudrate=4800)
    async with emu:
        with HostPort(emu.path).open() as host:
            loop = asyncio.get_running_loop()
            start = loop.time()
            emu.inject(b"x" * 48)  # 480 bits at 4800 baud: 0.1 s
            await host.read_until(b"x" * 48)
            assert loop.time() - start >= 0.09


async def test_baudrate_paces_input_too(tmp_path: Path) -> None:
    emu = ModuleEmulator(Probe, link=tmp_path / "tty", mqtt_port=1, baudrate=4800, echo=False)
    async with emu:
        with HostPort(emu.path).open() as host:
            loop = asyncio.get_running_loop()
            start = loop.time()
            host.send("AT+ARGS=" + "x" * 39 + "\r")  # 48 bytes in: 0.1 s at 4800 baud
            answer = await host.read_until(b"OK\r\n")  # 51 bytes out: 0.106 s
            assert answer == b"\r\n[" + b"x" * 39 + b"]\r\n\r\nOK\r\n"
            assert loop.time() - start >= 0.19


async def test_stop_is_idempotent_and_removes_the_link(tmp_path: Path) -> None:
    emu = ModuleEmulator(Probe, link=tmp_path / "tty", mqtt_port=1)
    await emu.start()
    assert emu.path.is_symlink()
    await emu.stop()
    await emu.stop()
    assert not emu.path.exists()
    with pytest.raises(RuntimeError):
        emu.restart()


def test_unknown_dialect_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dialect"):
        ModuleEmulator("nosuchmodule", link=tmp_path / "tty", mqtt_port=1)
    with pytest.raises(ValueError, match="unknown dialect"):
        ModuleEmulator("../x", link=tmp_path / "tty", mqtt_port=1)


def test_command_forms() -> None:
    assert parse_command("AT") == Command("AT", "", Kind.EXEC)
    assert parse_command("ate0") == Command("ate0", "E", Kind.EXEC, ("0",))
    assert parse_command("AT+Csq") == Command("AT+Csq", "+CSQ", Kind.EXEC)
    assert parse_command("AT+CPIN?") == Command("AT+CPIN?", "+CPIN", Kind.READ)
    assert parse_command("AT+CPIN=?") == Command("AT+CPIN=?", "+CPIN", Kind.TEST)
    assert parse_command("AT+X=") == Command("AT+X=", "+X", Kind.SET, ())
    assert parse_command("AT+X?1") is None
    assert split_args(' "a" , b ,"  c  " ') == ("a", "b", "  c  ")


async def test_command_line_builds_the_emulator(tmp_path: Path) -> None:
    link = tmp_path / "ttyCLI"
    argv = ["--dialect", "quectel", "--link", str(link), "--mqtt-port", "1"]
    emulator = build([*argv, "--no-echo", "--firmware", "V1", "--http-port", "8080"])
    assert (emulator.personality.dialect, emulator.http_port) == ("quectel", 8080)
    async with emulator:
        with HostPort(link).open() as host:
            assert await host.command("AT+CGMR") == b"\r\nV1\r\n\r\nOK\r\n"

"""``rfc2217://`` ports against an RFC 2217 server on 127.0.0.1 that negotiates like ser2net."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
import logging

import pytest

from custom_components.aliyun_iot_at.core.channel import AtChannel
from custom_components.aliyun_iot_at.core.errors import PortError
from custom_components.aliyun_iot_at.core.rfc2217 import (
    BINARY,
    COM_PORT_OPTION,
    DO,
    DONT,
    IAC,
    SB,
    SE,
    SET_BAUDRATE,
    SET_CONTROL,
    SET_DATASIZE,
    SET_PARITY,
    SET_STOPSIZE,
    SGA,
    WILL,
    WONT,
    Negotiation,
    Rfc2217Transport,
    Subnegotiation,
    TelnetOptions,
    TelnetReader,
    create_rfc2217_connection,
    parse_url,
)
from custom_components.aliyun_iot_at.core.transport import open_channel

ECHO = 1
STATUS = 5
TERMINAL_TYPE = 24
NAWS = 31
NOP = 241
NOTIFY_MODEMSTATE = 107
# What ser2net sends first on a telnet port.
SER2NET_GREETING = bytes([IAC, WILL, SGA, IAC, WILL, ECHO, IAC, DONT, ECHO, IAC, DO, BINARY])


def sb(*body: int) -> bytes:
    """A COM-PORT-OPTION subnegotiation as it goes on the wire."""
    payload = bytes([COM_PORT_OPTION, *body]).replace(b"\xff", b"\xff\xff")
    return bytes([IAC, SB]) + payload + bytes([IAC, SE])


class Ser2net(asyncio.Protocol):
    """An RFC 2217 access server whose serial side answers AT commands itself.

    It sends ``banner`` (serial data) and ``greeting`` (option requests, three bytes each)
    on connect, parses Telnet byte by byte on its own (not with the code under test), answers
    option requests, confirms COM-PORT settings (or answers ``answer_settings`` instead), records
    what it got and replies to command lines from ``answers`` (``None``: hang up).
    """

    def __init__(
        self,
        *,
        banner: bytes = b"",
        greeting: bytes = SER2NET_GREETING,
        refuse: frozenset[int] = frozenset(),
        answers: Mapping[bytes, bytes | None] | None = None,
        answer_settings: Mapping[int, bytes] | None = None,
        mute: bool = False,
    ) -> None:
        self.banner = banner
        self.greeting = greeting
        self.refuse = refuse
        self.answers = {b"AT": b"\r\nOK\r\n", **(answers or {})}
        self.answer_settings = answer_settings or {}
        self.mute = mute
        self.wire = bytearray()  # everything the client sent
        self.data = bytearray()  # its data, unescaped and without Telnet commands
        self.negotiations: list[tuple[int, int]] = []
        self.settings: dict[int, bytes] = {}
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._got = asyncio.Event()
        self._requested = {(greeting[i + 1], greeting[i + 2]) for i in range(0, len(greeting), 3)}
        self._state = "data"
        self._verb = 0
        self._sub = bytearray()
        self._line = bytearray()

    def send(self, raw: bytes) -> None:
        assert self.transport is not None
        self.transport.write(raw)

    def hang_up(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def received(self, data: bytes) -> None:
        """Until the client's data contains ``data``."""
        await self.until(lambda: data in self.data)

    async def until(self, condition: Callable[[], bool]) -> None:
        """Until ``condition`` holds after something was received."""
        async with asyncio.timeout(2):
            while not condition():
                self._got.clear()
                await self._got.wait()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.mute:
            transport.write(self.banner + self.greeting)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.wire += data
        for byte in data:
            self._byte(byte)
        self._got.set()

    def _byte(self, byte: int) -> None:
        if self._state == "data":
            if byte == IAC:
                self._state = "iac"
            else:
                self._data(byte)
        elif self._state == "iac":
            self._state = "data"
            if byte == IAC:
                self._data(byte)
            elif byte == SB:
                self._sub.clear()
                self._state = "sb"
            elif byte in (WILL, WONT, DO, DONT):
                self._verb = byte
                self._state = "option"
        elif self._state == "option":
            self._negotiate(self._verb, byte)
            self._state = "data"
        elif self._state == "sb":
            if byte == IAC:
                self._state = "sb_iac"
            else:
                self._sub.append(byte)
        elif byte == SE:
            self._subnegotiate(bytes(self._sub))
            self._state = "data"
        else:
            self._sub.append(byte)
            self._state = "sb"

    def _data(self, byte: int) -> None:
        self.data.append(byte)
        if byte != ord("\r"):
            self._line.append(byte)
            return
        line, self._line = bytes(self._line), bytearray()
        if line not in self.answers or self.mute:
            return
        answer = self.answers[line]
        if answer is None:
            self.hang_up()
        else:
            self.send(answer)

    def _negotiate(self, verb: int, option: int) -> None:
        self.negotiations.append((verb, option))
        if self.mute or verb not in (WILL, DO):
            return
        yes, no = (DO, DONT) if verb == WILL else (WILL, WONT)
        if (yes, option) in self._requested:
            return  # the answer to our own request
        accepted = option in (BINARY, SGA, COM_PORT_OPTION) and option not in self.refuse
        self.send(bytes([IAC, yes if accepted else no, option]))
        if accepted and option == COM_PORT_OPTION:
            self.send(sb(NOTIFY_MODEMSTATE, 0x30))  # ser2net reports DSR and CTS straight away

    def _subnegotiate(self, payload: bytes) -> None:
        if self.mute or payload[:1] != bytes([COM_PORT_OPTION]):
            return
        command, value = payload[1], payload[2:]
        self.settings[command] = value
        self.send(sb(command + 100, *self.answer_settings.get(command, value)) + bytes([IAC, NOP]))


class Recorder(asyncio.Protocol):
    """A byte-exact protocol: what the transport handed over, and whether it was lost."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self._got = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.data += data
        self._got.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)

    async def received(self, data: bytes) -> None:
        async with asyncio.timeout(2):
            while data not in self.data:
                self._got.clear()
                await self._got.wait()


class Lab:
    """Starts servers on 127.0.0.1 and stops them after the test."""

    def __init__(self) -> None:
        self._servers: list[tuple[asyncio.Server, Ser2net]] = []

    async def serve(self, fake: Ser2net) -> str:
        server = await asyncio.get_running_loop().create_server(lambda: fake, "127.0.0.1", 0)
        self._servers.append((server, fake))
        return f"rfc2217://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        for server, fake in self._servers:
            fake.hang_up()
            server.close()
            await server.wait_closed()


@pytest.fixture
async def lab(socket_enabled: None) -> AsyncIterator[Lab]:
    running = Lab()
    yield running
    await running.stop()


async def close(channel: AtChannel) -> None:
    channel.close()
    async with asyncio.timeout(2):
        await channel.wait_closed()


async def test_at_command_and_negotiation(lab: Lab) -> None:
    fake = Ser2net()
    url = await lab.serve(fake)
    channel = await open_channel(f"{url}?logging=debug&timeout=2", 9600)

    assert await channel.command("AT") == []
    assert fake.data == b"AT\r"
    assert fake.settings == {
        SET_BAUDRATE: (9600).to_bytes(4, "big"),
        SET_DATASIZE: b"\x08",
        SET_PARITY: b"\x01",  # none
        SET_STOPSIZE: b"\x01",  # one
        SET_CONTROL: b"\x01",  # no flow control
    }
    sent = set(fake.negotiations)
    assert {(WILL, BINARY), (DO, BINARY), (WILL, SGA), (DO, SGA), (WILL, COM_PORT_OPTION)} <= sent
    assert (DONT, ECHO) in sent  # offered by the server, refused: the module echoes itself
    assert (DO, ECHO) not in sent
    await close(channel)
    await fake.lost


async def test_unknown_options_are_refused(lab: Lab) -> None:
    fake = Ser2net(greeting=SER2NET_GREETING + bytes([IAC, DO, NAWS, IAC, WILL, STATUS]))
    channel = await open_channel(await lab.serve(fake), 115200)

    assert await channel.command("AT") == []
    assert (WONT, NAWS) in fake.negotiations
    assert (DONT, STATUS) in fake.negotiations
    assert fake.settings[SET_BAUDRATE] == (115200).to_bytes(4, "big")
    await close(channel)


async def test_ff_bytes_both_ways_and_early_data(lab: Lab) -> None:
    fake = Ser2net(banner=b"\r\nRDY\r\n")
    recorder = Recorder()
    transport, protocol = await create_rfc2217_connection(
        lambda: recorder, await lab.serve(fake), 9600
    )
    assert protocol is recorder
    assert isinstance(transport, Rfc2217Transport)

    # Data sent before the port was configured is handed over, not lost.
    await recorder.received(b"RDY\r\n")
    fake.send(b"\x01\xff")
    await asyncio.sleep(0.02)
    fake.send(b"\xff\x02\xff\xff\xff\xff\x03")
    await recorder.received(b"\x03")
    assert bytes(recorder.data) == b"\r\nRDY\r\n\x01\xff\x02\xff\xff\x03"

    transport.write(b"A\xffB\xff\xff")
    await fake.received(b"B\xff\xff")
    assert fake.wire.endswith(b"A\xff\xffB\xff\xff\xff\xff")
    assert fake.data == b"A\xffB\xff\xff"

    transport.close()
    async with asyncio.timeout(2):
        assert await recorder.lost is None
    await fake.lost


async def test_commands_split_across_segments_are_stripped(lab: Lab) -> None:
    fake = Ser2net()
    channel = await open_channel(await lab.serve(fake), 9600)
    answer = asyncio.create_task(channel.command("AT+CSQ"))
    await fake.received(b"AT+CSQ\r")

    segments = [
        b"\r\n+CSQ: 2",
        b"0,99\xff",  # IAC at the end of a segment
        bytes([SB, COM_PORT_OPTION, NOTIFY_MODEMSTATE]),
        b"\xff\xff\xff",  # an escaped 0xFF inside the subnegotiation, then the IAC of SE
        bytes([SE]) + b"\r\nO",
        bytes([IAC]),
        bytes([DO]),
        bytes([TERMINAL_TYPE]) + b"K\xff",
        bytes([NOP]) + b"\r\n",
    ]
    for segment in segments:
        fake.send(segment)
        await asyncio.sleep(0.01)

    assert await answer == ["+CSQ: 20,99"]
    await fake.until(lambda: (WONT, TERMINAL_TYPE) in fake.negotiations)
    await close(channel)


async def test_closed_server_fails_pending_command(lab: Lab) -> None:
    fake = Ser2net(answers={b"AT+CFUN=1,1": None})
    channel = await open_channel(await lab.serve(fake), 9600)

    with pytest.raises(PortError):
        await channel.command("AT+CFUN=1,1")
    await channel.wait_closed()
    assert not channel.is_open
    with pytest.raises(PortError):
        await channel.command("AT")


async def test_binary_refused_still_works_with_a_warning(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    greeting = bytes([IAC, WILL, SGA])
    fake = Ser2net(greeting=greeting, refuse=frozenset({BINARY}))
    with caplog.at_level(logging.WARNING):
        channel = await open_channel(await lab.serve(fake), 9600)

    assert await channel.command("AT") == []
    assert "refused binary mode to it" in caplog.text
    assert "refused binary mode from it" in caplog.text
    await close(channel)


async def test_server_refusing_com_port_option(lab: Lab) -> None:
    fake = Ser2net(refuse=frozenset({COM_PORT_OPTION}))
    with pytest.raises(PortError, match="refused COM-PORT-OPTION"):
        await open_channel(await lab.serve(fake), 9600)
    await fake.lost  # the client dropped the connection


async def test_server_setting_another_baud_rate(lab: Lab) -> None:
    fake = Ser2net(answer_settings={SET_BAUDRATE: (115200).to_bytes(4, "big")})
    with pytest.raises(PortError, match="baud rate to 115200 instead of 9600"):
        await open_channel(await lab.serve(fake), 9600)
    await fake.lost


async def test_silent_server_times_out(lab: Lab) -> None:
    fake = Ser2net(mute=True)  # a raw TCP port, not a Telnet one
    url = await lab.serve(fake)
    with pytest.raises(PortError, match=r"no RFC 2217 answer within 0\.2 s"):
        await open_channel(f"{url}?timeout=0.2", 9600)
    await fake.lost


async def test_server_hanging_up_while_negotiating(lab: Lab) -> None:
    fake = Ser2net(mute=True)
    opening = asyncio.create_task(open_channel(await lab.serve(fake), 9600))
    await fake.until(lambda: bool(fake.negotiations))
    fake.hang_up()
    with pytest.raises(PortError, match="closed the connection while negotiating"):
        await opening


async def test_nothing_listening(socket_enabled: None) -> None:
    server = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(PortError, match=f"cannot open rfc2217://127.0.0.1:{port}"):
        await open_channel(f"rfc2217://127.0.0.1:{port}", 9600)


def test_url_options() -> None:
    assert parse_url("rfc2217://127.0.0.1:2217") == ("127.0.0.1", 2217, 5.0)
    assert parse_url("RFC2217://[::1]:7000/?logging=debug&timeout=1.5&ign_set_control") == (
        "::1",
        7000,
        1.5,
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("rfc2217://127.0.0.1:2217?baudrate=9600", "unknown option 'baudrate'"),
        ("rfc2217://127.0.0.1:2217?timeout=soon", "timeout must be a positive number"),
        ("rfc2217://127.0.0.1:2217?timeout=0", "timeout must be a positive number"),
        ("rfc2217://127.0.0.1", "expected rfc2217://host:port"),
        ("rfc2217://127.0.0.1:99999", "expected rfc2217://host:port"),
        ("rfc2217://:2217", "expected rfc2217://host:port"),
    ],
)
async def test_bad_urls_fail_before_connecting(url: str, message: str) -> None:
    # Sockets are blocked here: a connection attempt would not end in a PortError.
    with pytest.raises(PortError, match=message):
        await open_channel(url, 9600)


async def test_bad_baud_rate() -> None:
    with pytest.raises(PortError, match="invalid baud rate 0"):
        await open_channel("rfc2217://127.0.0.1:2217", 0)


# --- the Telnet reader and option rules, without a network ------------------------------------

STREAM = (
    b"AT\xff\xff"
    + bytes([IAC, WILL, ECHO])
    + b"\r\n"
    + sb(NOTIFY_MODEMSTATE, 0xFF)
    + bytes([IAC, NOP])
    + b"OK"
    + bytes([IAC, SB, COM_PORT_OPTION, 1, IAC, DO, SGA])  # IAC DO inside SB ends it
    + b"\r\n"
)
STREAM_DATA = b"AT\xff\r\nOK\r\n"
STREAM_COMMANDS = [
    Negotiation(WILL, ECHO),
    Subnegotiation(COM_PORT_OPTION, bytes([NOTIFY_MODEMSTATE, 0xFF])),
    Negotiation(DO, SGA),
]


@pytest.mark.parametrize("cut", range(len(STREAM) + 1))
def test_reader_at_every_cut(cut: int) -> None:
    reader = TelnetReader()
    first, first_commands = reader.feed(STREAM[:cut])
    second, second_commands = reader.feed(STREAM[cut:])
    assert first + second == STREAM_DATA
    assert first_commands + second_commands == STREAM_COMMANDS


def test_reader_byte_by_byte() -> None:
    reader = TelnetReader()
    data = bytearray()
    commands = []
    for byte in STREAM:
        chunk, got = reader.feed(bytes([byte]))
        data += chunk
        commands += got
    assert data == STREAM_DATA
    assert commands == STREAM_COMMANDS


def test_option_answers() -> None:
    options = TelnetOptions(ours=frozenset({BINARY}), theirs=frozenset({SGA}))
    assert options.requests() == bytes([IAC, WILL, BINARY, IAC, DO, SGA])
    assert options.receive(DO, BINARY) == b""  # the answer to our request
    assert options.receive(DO, BINARY) == b""  # already on: no loop
    assert options.receive(WONT, SGA) == b""  # our request refused
    assert options.receive(WILL, SGA) == bytes([IAC, DO, SGA])  # offered later: accepted
    assert options.receive(WILL, ECHO) == bytes([IAC, DONT, ECHO])
    assert options.receive(DO, NAWS) == bytes([IAC, WONT, NAWS])
    assert options.receive(WONT, ECHO) == b""  # already off
    assert options.receive(DONT, BINARY) == bytes([IAC, WONT, BINARY])  # turned off: confirmed

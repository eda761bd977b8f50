"""``rfc2217://host:port``: a serial port behind a Telnet COM-PORT-OPTION server, on asyncio.

pyserial's RFC 2217 client reads its socket in a thread of its own and has no file descriptor
that pyserial-asyncio-fast could watch, so these ports are opened here instead: one TCP
connection run by the event loop, Telnet option negotiation (RFC 854/855, with RFC 1143's
rules so that no answer can loop), the port set to the baud rate, 8N1 and no flow control
(RFC 2217), and pure data to and from the protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
import logging
import math
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from .errors import PortError

_LOGGER = logging.getLogger(__name__)

SCHEME: Final = "rfc2217"
DEFAULT_TIMEOUT: Final = 5.0

# Telnet commands (RFC 854) and the options we use.
IAC: Final = 255
DONT: Final = 254
DO: Final = 253
WONT: Final = 252
WILL: Final = 251
SB: Final = 250
SE: Final = 240
BINARY: Final = 0
SGA: Final = 3
COM_PORT_OPTION: Final = 44

# COM-PORT-OPTION commands from the client; the server answers each with the code + 100.
SET_BAUDRATE: Final = 1
SET_DATASIZE: Final = 2
SET_PARITY: Final = 3
SET_STOPSIZE: Final = 4
SET_CONTROL: Final = 5
SERVER_OFFSET: Final = 100
PARITY_NONE: Final = 1
STOPSIZE_ONE: Final = 1
CONTROL_NO_FLOW: Final = 1

_SETTING_NAMES: Final = {
    SET_BAUDRATE: "baud rate",
    SET_DATASIZE: "data size",
    SET_PARITY: "parity",
    SET_STOPSIZE: "stop size",
}
# pyserial's URL options: accepted so its URLs keep working, but meaningless here.
_IGNORED_OPTIONS: Final = frozenset({"logging", "ign_set_control", "poll_modem"})
# Our subnegotiations are a few bytes long; this only bounds what a broken server can send.
_MAX_SUBNEGOTIATION: Final = 256


@dataclass(frozen=True, slots=True)
class Negotiation:
    """``IAC WILL|WONT|DO|DONT option``."""

    verb: int
    option: int


@dataclass(frozen=True, slots=True)
class Subnegotiation:
    """``IAC SB option payload IAC SE``, with ``IAC IAC`` in the payload already undone."""

    option: int
    payload: bytes


TelnetCommand = Negotiation | Subnegotiation


class _State(Enum):
    DATA = 0
    IAC = 1
    VERB = 2
    SB = 3
    SB_IAC = 4


class TelnetReader:
    """Splits a received Telnet stream into data and commands, however it was cut into reads."""

    def __init__(self) -> None:
        self._state = _State.DATA
        self._verb = 0
        self._sub = bytearray()

    def feed(self, chunk: bytes) -> tuple[bytes, list[TelnetCommand]]:
        """The data bytes of ``chunk`` and the commands completed in it."""
        data = bytearray()
        commands: list[TelnetCommand] = []
        i = 0
        while i < len(chunk):
            if self._state is _State.DATA:
                end = chunk.find(IAC, i)
                if end < 0:
                    data += chunk[i:]
                    break
                data += chunk[i:end]
                self._state = _State.IAC
                i = end + 1
                continue
            byte = chunk[i]
            i += 1
            if self._state is _State.IAC:
                self._after_iac(byte, data)
            elif self._state is _State.VERB:
                commands.append(Negotiation(self._verb, byte))
                self._state = _State.DATA
            elif self._state is _State.SB:
                if byte == IAC:
                    self._state = _State.SB_IAC
                else:
                    self._keep(byte)
            elif byte == IAC:  # SB_IAC: an escaped 0xFF in the payload
                self._keep(byte)
                self._state = _State.SB
            elif byte == SE:
                if self._sub:
                    commands.append(Subnegotiation(self._sub[0], bytes(self._sub[1:])))
                self._state = _State.DATA
            else:
                # RFC 855 leaves any other command inside SB undefined: the subnegotiation
                # is dropped and the byte read as the command it names.
                self._state = _State.IAC
                i -= 1
        return bytes(data), commands

    def _after_iac(self, byte: int, data: bytearray) -> None:
        if byte == IAC:
            data.append(IAC)
            self._state = _State.DATA
        elif byte in (WILL, WONT, DO, DONT):
            self._verb = byte
            self._state = _State.VERB
        elif byte == SB:
            self._sub.clear()
            self._state = _State.SB
        else:  # NOP, GA, DM, BRK, …: nothing for a serial port to do
            self._state = _State.DATA

    def _keep(self, byte: int) -> None:
        if len(self._sub) < _MAX_SUBNEGOTIATION:
            self._sub.append(byte)


class OptionState(Enum):
    """RFC 1143's states of one side of an option (we never ask to turn one off)."""

    NO = 0
    YES = 1
    WANT_YES = 2


class TelnetOptions:
    """Which options are on, each side; answers received requests (RFC 1143, no queue).

    ``ours`` are options we enable (WILL), ``theirs`` those we ask the server to enable (DO);
    both are requested at the start and accepted when the server asks. Every other option is
    refused: WILL gets DONT, DO gets WONT.
    """

    def __init__(self, ours: frozenset[int], theirs: frozenset[int]) -> None:
        self._ours = ours
        self._theirs = theirs
        self._us: dict[int, OptionState] = {}
        self._him: dict[int, OptionState] = {}

    def requests(self) -> bytes:
        """The opening requests, WILL or DO for each wanted option."""
        out = bytearray()
        for option in sorted(self._ours):
            self._us[option] = OptionState.WANT_YES
            out += bytes((IAC, WILL, option))
        for option in sorted(self._theirs):
            self._him[option] = OptionState.WANT_YES
            out += bytes((IAC, DO, option))
        return bytes(out)

    def receive(self, verb: int, option: int) -> bytes:
        """Take a received negotiation into account; the answer to send (often none)."""
        if verb in (DO, DONT):
            table, wanted, yes, no, enable = self._us, self._ours, WILL, WONT, verb == DO
        else:
            table, wanted, yes, no, enable = self._him, self._theirs, DO, DONT, verb == WILL
        state = table.get(option, OptionState.NO)
        if not enable:
            table[option] = OptionState.NO
            # Only a change from YES is acknowledged; a refusal of our request needs no answer.
            return bytes((IAC, no, option)) if state is OptionState.YES else b""
        if state is OptionState.YES:
            return b""
        if option not in wanted:
            return bytes((IAC, no, option))
        table[option] = OptionState.YES
        return b"" if state is OptionState.WANT_YES else bytes((IAC, yes, option))

    def ours(self, option: int) -> OptionState:
        """Where our side of ``option`` stands."""
        return self._us.get(option, OptionState.NO)

    def theirs(self, option: int) -> OptionState:
        """Where the server's side of ``option`` stands."""
        return self._him.get(option, OptionState.NO)


def parse_url(url: str) -> tuple[str, int, float]:
    """Host, TCP port and opening timeout of an ``rfc2217://host:port[?options]`` URL.

    Of pyserial's options, ``timeout`` (seconds) bounds connecting and negotiating; the
    others are accepted and ignored. Anything else is a ``PortError``.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != SCHEME:
        raise PortError(f"{url}: not an {SCHEME}:// URL")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or not port:
        raise PortError(f"{url}: expected {SCHEME}://host:port with a port in 1-65535")
    timeout = DEFAULT_TIMEOUT
    for name, values in parse_qs(parts.query, keep_blank_values=True).items():
        if name == "timeout":
            timeout = _positive_seconds(url, values[-1])
        elif name not in _IGNORED_OPTIONS:
            known = ", ".join(sorted({"timeout", *_IGNORED_OPTIONS}))
            raise PortError(f"{url}: unknown option {name!r} (known: {known})")
    return parts.hostname, port, timeout


def _positive_seconds(url: str, text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (seconds > 0 and math.isfinite(seconds)):
        raise PortError(f"{url}: timeout must be a positive number of seconds, not {text!r}")
    return seconds


def _subnegotiation(command: int, value: bytes) -> bytes:
    body = bytes((COM_PORT_OPTION, command)) + value
    return bytes((IAC, SB)) + body.replace(b"\xff", b"\xff\xff") + bytes((IAC, SE))


class _Rfc2217Client(asyncio.Protocol):
    """The TCP side: negotiates, configures the port, then relays pure data."""

    def __init__(self, protocol: asyncio.Protocol, baudrate: int) -> None:
        self.protocol = protocol
        self.opened: asyncio.Future[Rfc2217Transport] = asyncio.get_running_loop().create_future()
        self.tcp: asyncio.Transport | None = None
        self._baudrate = baudrate
        self._reader = TelnetReader()
        self._options = TelnetOptions(
            ours=frozenset({BINARY, SGA, COM_PORT_OPTION}), theirs=frozenset({BINARY, SGA})
        )
        # Server answer code -> the value we asked for, until each setting is confirmed.
        self._unconfirmed: dict[int, bytes] = {}
        self._configuring = False
        self._transport: Rfc2217Transport | None = None
        self._early = bytearray()

    def abort(self) -> None:
        """Drop the connection of a port that did not open."""
        if self.tcp is not None:
            self.tcp.abort()

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.tcp = transport
        transport.write(self._options.requests())

    def data_received(self, data: bytes) -> None:
        payload, commands = self._reader.feed(data)
        for command in commands:
            if isinstance(command, Negotiation):
                self._on_negotiation(command)
            elif command.option == COM_PORT_OPTION and command.payload:
                self._on_com_port(command.payload[0], command.payload[1:])
        if not payload:
            return
        if self._transport is None:
            self._early += payload  # handed over once the protocol is attached
        else:
            self.protocol.data_received(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self.protocol.connection_lost(exc)
        else:
            self._fail(f"the server closed the connection while negotiating ({exc or 'EOF'})")

    def pause_writing(self) -> None:
        if self._transport is not None:
            self.protocol.pause_writing()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self.protocol.resume_writing()

    # --- negotiation ------------------------------------------------------------------------

    def _on_negotiation(self, command: Negotiation) -> None:
        answer = self._options.receive(command.verb, command.option)
        _LOGGER.debug("telnet: got %d %d, answered %s", command.verb, command.option, answer.hex())
        if answer and self.tcp is not None:
            self.tcp.write(answer)
        if command.option != COM_PORT_OPTION or self.opened.done():
            return
        state = self._options.ours(COM_PORT_OPTION)
        if state is OptionState.NO:
            self._fail("the server refused COM-PORT-OPTION (is it an RFC 2217 server?)")
        elif state is OptionState.YES and not self._configuring:
            self._configure()

    def _configure(self) -> None:
        self._configuring = True
        settings = {
            SET_BAUDRATE: self._baudrate.to_bytes(4, "big"),
            SET_DATASIZE: bytes((8,)),
            SET_PARITY: bytes((PARITY_NONE,)),
            SET_STOPSIZE: bytes((STOPSIZE_ONE,)),
        }
        self._unconfirmed = {code + SERVER_OFFSET: value for code, value in settings.items()}
        wire = b"".join(_subnegotiation(code, value) for code, value in settings.items())
        # Not awaited: some servers answer SET-CONTROL with another value or not at all.
        wire += _subnegotiation(SET_CONTROL, bytes((CONTROL_NO_FLOW,)))
        assert self.tcp is not None
        self.tcp.write(wire)

    def _on_com_port(self, code: int, value: bytes) -> None:
        asked = self._unconfirmed.pop(code, None)
        if asked is None or self.opened.done():
            return  # line/modem state notifications, flow control, late answers: not used
        if value[: len(asked)] != asked:
            name = _SETTING_NAMES[code - SERVER_OFFSET]
            got, wanted = int.from_bytes(value), int.from_bytes(asked)
            self._fail(f"the server set the {name} to {got} instead of {wanted}")
        elif not self._unconfirmed:
            self._attach()

    def _attach(self) -> None:
        for side, state in (
            ("to", self._options.ours(BINARY)),
            ("from", self._options.theirs(BINARY)),
        ):
            if state is not OptionState.YES:
                _LOGGER.warning("the RFC 2217 server refused binary mode %s it", side)
        assert self.tcp is not None
        self._transport = Rfc2217Transport(self.tcp, self)
        self.protocol.connection_made(self._transport)
        if self._early:
            early, self._early = bytes(self._early), bytearray()
            self.protocol.data_received(early)
        self.opened.set_result(self._transport)

    def _fail(self, reason: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(PortError(reason))


class Rfc2217Transport(asyncio.Transport):
    """What the protocol sees: a byte transport that escapes 0xFF for Telnet on write."""

    def __init__(self, tcp: asyncio.Transport, client: _Rfc2217Client) -> None:
        super().__init__()
        self._tcp = tcp
        self._client = client

    def write(self, data: bytes | bytearray | memoryview[Any]) -> None:
        self._tcp.write(bytes(data).replace(b"\xff", b"\xff\xff"))

    def can_write_eof(self) -> bool:
        return False

    def close(self) -> None:
        self._tcp.close()

    def abort(self) -> None:
        self._tcp.abort()

    def is_closing(self) -> bool:
        return self._tcp.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._tcp.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        if not isinstance(protocol, asyncio.Protocol):
            raise TypeError("an RFC 2217 port needs an asyncio.Protocol")
        self._client.protocol = protocol

    def get_protocol(self) -> asyncio.Protocol:
        return self._client.protocol

    def is_reading(self) -> bool:
        return self._tcp.is_reading()

    def pause_reading(self) -> None:
        self._tcp.pause_reading()

    def resume_reading(self) -> None:
        self._tcp.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._tcp.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._tcp.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._tcp.get_write_buffer_limits()


async def create_rfc2217_connection[P: asyncio.Protocol](
    protocol_factory: Callable[[], P], url: str, baudrate: int
) -> tuple[Rfc2217Transport, P]:
    """Open ``url`` (``rfc2217://host:port``) at ``baudrate``, 8N1, no flow control.

    The protocol gets ``connection_made`` once the server confirmed the port settings;
    ``PortError`` when the URL is wrong, the server cannot be reached, refuses RFC 2217 or
    the settings, or does not answer within the URL's ``timeout``.
    """
    host, port, timeout = parse_url(url)
    if not 0 < baudrate < 2**32:
        raise PortError(f"cannot open {url}: invalid baud rate {baudrate}")
    loop = asyncio.get_running_loop()
    protocol = protocol_factory()
    client = _Rfc2217Client(protocol, baudrate)
    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: client, host, port)
            transport = await client.opened
    except BaseException as err:
        client.abort()
        if isinstance(err, TimeoutError):  # before OSError: it is one
            raise PortError(f"cannot open {url}: no RFC 2217 answer within {timeout:g} s") from None
        if isinstance(err, OSError | PortError):
            raise PortError(f"cannot open {url}: {err}") from err
        raise
    return transport, protocol

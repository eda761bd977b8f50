"""A module personality: identity strings and a table of command handlers, plus the commands
every module shares (3GPP TS 27.007 basics). A vendor personality is one file:

    class Quectel(Personality):
        dialect = "quectel"
        manufacturer = "Quectel"
        ...
        def commands(self) -> dict[str, Handler]:
            return super().commands() | {"+QMTOPEN=": self.qmtopen, ...}

A table key is the command name followed by its form: ``""`` exec, ``"?"`` read, ``"=?"``
test, ``"="`` set (``"E"`` and ``"I"`` for the basic commands ``ATE0``, ``ATI``). A handler
writes its response lines with ``line`` and returns the final result code. A test form with no
handler of its own answers ``OK`` when the command exists in another form.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
import importlib
import re
from typing import TYPE_CHECKING, Any, ClassVar

from .mqtt import InboundMessage, MqttBridge
from .parser import ERROR, OK, Command

if TYPE_CHECKING:
    from .emulator import ModuleEmulator

Handler = Callable[[Command], Awaitable[str]]

_REGISTRY: dict[str, type[Personality]] = {}
_DIALECT_NAME = re.compile(r"[a-z][a-z0-9_]*")

# 27.007 +CREG stat values.
_NOT_SEARCHING, _REGISTERED, _SEARCHING = 0, 1, 2


class Personality:
    """The behaviour of one module family. A fresh instance is made at every (re)boot, so all
    state a personality keeps in ``__init__`` is reset by ``ModuleEmulator.restart``."""

    dialect: ClassVar[str] = ""
    manufacturer: ClassVar[str] = "Generic"
    model: ClassVar[str] = "AT module"
    revision: ClassVar[str] = "1.0"
    imei: ClassVar[str] = "860000000000000"
    # Final line for arguments that are missing or out of range.
    param_error: ClassVar[str] = ERROR
    # Longer command lines are refused with ``ERROR``.
    max_line: ClassVar[int] = 4096

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("dialect"):  # declared here, not inherited by a variant
            _REGISTRY[cls.dialect] = cls

    def __init__(self, module: ModuleEmulator) -> None:
        self.module = module
        self.mqtt: MqttBridge = module.mqtt
        self.firmware = module.firmware or self.revision
        self.cmee = 1  # +CME ERROR reporting: 0 plain ERROR, 1 numeric (2, verbose, reads as 1)
        self.fun = 1  # +CFUN: 1 full, 0 minimum, 4 radio off

    # --- what a personality declares -------------------------------------------------------

    def commands(self) -> dict[str, Handler]:
        """The handler table; subclasses extend it with ``super().commands() | {...}``."""
        return {
            "": self.ok,
            "E": self.ate,
            "I": self.ati,
            "+CGMI": self.cgmi,
            "+CGMM": self.cgmm,
            "+CGMR": self.cgmr,
            "+GSN": self.cgsn,
            "+CGSN": self.cgsn,
            "+CMEE=": self.cmee_set,
            "+CMEE?": self.cmee_read,
            "+CPIN?": self.cpin,
            "+CREG?": self.creg,
            "+CGREG?": self.creg,
            "+CEREG?": self.creg,
            "+CSQ": self.csq,
            "+CGATT?": self.cgatt,
            "+CFUN?": self.cfun_read,
            "+CFUN=": self.cfun_set,
        }

    def power_on_lines(self) -> list[str]:
        """What the module prints when it boots (after ``restart``)."""
        return []

    def on_mqtt_message(self, message: InboundMessage) -> None:
        """The cloud published to the module: emit the personality's receive URC."""

    def on_mqtt_lost(self) -> None:
        """The broker ended the session: emit the personality's link-loss URC."""

    async def drop_link(self) -> None:
        """The network vanished: by default the session just ends, silently."""
        await self.mqtt.disconnect()

    # --- helpers for handlers --------------------------------------------------------------

    def line(self, text: str | bytes) -> None:
        """Write one line of the command's response."""
        self.module.respond(text)

    def urc(self, text: str | bytes) -> None:
        """Write an unsolicited result code now."""
        self.module.urc(text)

    def urc_after(self, text: str | bytes) -> None:
        """Write an unsolicited result code right after this command's final result."""
        self.module.urc_after(text)

    def prompt(self, text: str) -> None:
        """Write ``text`` as is (a data prompt such as ``> ``)."""
        self.module.inject(text.encode())

    async def read_data(self, count: int, timeout: float = 20.0) -> bytes | None:
        """Take exactly ``count`` raw bytes from the host; ``None`` after ``timeout``."""
        return await self.module.read_data(count, timeout)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run work that outlives the command (URCs after ``OK``); cancelled at reboot."""
        self.module.spawn(coro)

    def cme(self, code: int) -> str:
        """The final line of an equipment error, as ``AT+CMEE`` asks."""
        return f"+CME ERROR: {code}" if self.cmee else ERROR

    @property
    def sim_ready(self) -> bool:
        """Whether the SIM answers (the ``sim_ready`` knob)."""
        return self.module.sim_ready

    @property
    def registered(self) -> bool:
        """Whether the module is on a network: SIM ready, radio on, ``registered`` knob."""
        return self.module.registered and self.sim_ready and self.fun == 1

    # --- the common commands ---------------------------------------------------------------

    async def ok(self, cmd: Command) -> str:
        """``AT``."""
        return OK

    async def ate(self, cmd: Command) -> str:
        """``ATE0`` / ``ATE1`` (``ATE`` means ``ATE0``)."""
        self.module.echo = cmd.int_arg(0, 0, 1, default=0) == 1
        return OK

    async def ati(self, cmd: Command) -> str:
        """``ATI``: manufacturer, model, revision."""
        self.line(self.manufacturer)
        self.line(self.model)
        self.line(f"Revision: {self.firmware}")
        return OK

    async def cgmi(self, cmd: Command) -> str:
        """``AT+CGMI``."""
        self.line(self.manufacturer)
        return OK

    async def cgmm(self, cmd: Command) -> str:
        """``AT+CGMM``."""
        self.line(self.model)
        return OK

    async def cgmr(self, cmd: Command) -> str:
        """``AT+CGMR``."""
        self.line(self.firmware)
        return OK

    async def cgsn(self, cmd: Command) -> str:
        """``AT+CGSN`` / ``AT+GSN``: the IMEI."""
        self.line(self.imei)
        return OK

    async def cmee_set(self, cmd: Command) -> str:
        """``AT+CMEE=<n>``."""
        self.cmee = cmd.int_arg(0, 0, 2)
        return OK

    async def cmee_read(self, cmd: Command) -> str:
        """``AT+CMEE?``."""
        self.line(f"+CMEE: {self.cmee}")
        return OK

    async def cpin(self, cmd: Command) -> str:
        """``AT+CPIN?``: ``READY``, or error 10 (SIM not inserted) while the SIM isn't ready."""
        if not self.sim_ready:
            return self.cme(10)
        self.line("+CPIN: READY")
        return OK

    async def creg(self, cmd: Command) -> str:
        """``AT+CREG?`` / ``AT+CGREG?`` / ``AT+CEREG?``: ``0,1`` registered, ``0,2`` searching."""
        if self.registered:
            stat = _REGISTERED
        elif self.sim_ready and self.fun == 1:
            stat = _SEARCHING
        else:
            stat = _NOT_SEARCHING
        self.line(f"{cmd.name}: 0,{stat}")
        return OK

    async def csq(self, cmd: Command) -> str:
        """``AT+CSQ``: a fair signal when registered, else unknown (99)."""
        self.line("+CSQ: 24,99" if self.registered else "+CSQ: 99,99")
        return OK

    async def cgatt(self, cmd: Command) -> str:
        """``AT+CGATT?``: attached to packet service when registered."""
        self.line(f"+CGATT: {int(self.registered)}")
        return OK

    async def cfun_read(self, cmd: Command) -> str:
        """``AT+CFUN?``."""
        self.line(f"+CFUN: {self.fun}")
        return OK

    async def cfun_set(self, cmd: Command) -> str:
        """``AT+CFUN=<fun>[,<rst>]``: 0/1/4; ``rst`` 1 reboots the module after ``OK``."""
        fun = cmd.int_arg(0, 0, 4)
        if fun not in (0, 1, 4):
            return self.cme(50)  # incorrect parameters
        if cmd.int_arg(1, 0, 1, default=0):
            self.module.restart()
            return OK
        self.fun = fun
        return OK


def resolve_personality(dialect: str) -> type[Personality]:
    """The personality class of ``dialect``, imported from the module of the same name."""
    if not _DIALECT_NAME.fullmatch(dialect):
        raise ValueError(f"unknown dialect {dialect!r}")
    if dialect not in _REGISTRY:
        module = f"{__package__}.{dialect}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            raise ValueError(f"unknown dialect {dialect!r}") from err
    if dialect not in _REGISTRY:
        raise ValueError(f"module {dialect!r} defines no personality of that dialect")
    return _REGISTRY[dialect]

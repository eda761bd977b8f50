"""The module emulator: a pty that answers AT commands the way a vendor's module does.

One task serves the command interpreter: it takes a line, echoes it (``ATE1``, the default),
lets the personality's handler run, and writes the final result code. Handlers may switch the
input to raw data (``read_data``) and leave work running after the final result (``spawn``);
URCs may be written at any moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
import logging
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from .faults import FaultKnobs
from .inbuf import InputBuffer
from .mqtt import InboundMessage, MqttBridge
from .parser import ERROR, OK, Kind, ParamError, is_at, parse_command
from .personality import Handler, Personality, resolve_personality
from .port import PtyPort

_LOGGER = logging.getLogger(__name__)


def _frame(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return b"\r\n" + data + b"\r\n"


class ModuleEmulator(FaultKnobs):
    """An AT module on a pseudo-terminal whose slave the host opens at ``path``.

    ``personality`` is a dialect name (``"quectel"``...) or a ``Personality`` class. The
    module's MQTT goes to the local cloud at ``mqtt_host:mqtt_port`` whatever host it is
    told; ``http_port`` is the local cloud's HTTP endpoint for personalities with an HTTP
    client. ``baudrate`` paces both directions (10 bits a byte): the host gets the module's
    bytes, and the module the host's, when they would have crossed the line; ``firmware``
    overrides the personality's revision string.
    """

    def __init__(
        self,
        personality: str | type[Personality],
        *,
        link: Path,
        mqtt_host: str = "127.0.0.1",
        mqtt_port: int,
        http_port: int | None = None,
        echo: bool = True,
        baudrate: int | None = None,
        firmware: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(personality, str):
            personality = resolve_personality(personality)
        self._personality_class = personality
        self.http_port = http_port
        self.firmware = firmware
        self.echo = echo
        self._default_echo = echo
        self.received: list[str] = []
        self.mqtt = MqttBridge(
            mqtt_host, mqtt_port, on_message=self._mqtt_message, on_lost=self._mqtt_lost
        )
        self._input = InputBuffer()
        self._port = PtyPort(Path(link), self._received_bytes, baudrate)
        self._after: list[bytes] = []
        self._tasks: set[asyncio.Task[None]] = set()  # the personality's work
        self._control: set[asyncio.Task[None]] = set()  # reboots and link drops
        self._control_lock = asyncio.Lock()
        self._serving: asyncio.Task[None] | None = None
        self._booting = False
        self._running = False
        self._response_open = False
        self.personality, self._table = self._new_personality()

    @property
    def path(self) -> Path:
        """The stable symlink to the pty slave: what the host opens."""
        return self._port.link

    async def start(self) -> None:
        """Create the pty and start answering. The module is already booted: no ``RDY``."""
        if self._running:
            return
        self._running = True
        self._port.open()
        self._serving = asyncio.create_task(self._serve())

    async def stop(self) -> None:
        """Stop everything, close the MQTT session and the pty, remove the link. Idempotent."""
        if not self._running:
            return
        self._running = False
        await _cancel(self._control)
        await self._halt()
        await self.mqtt.disconnect()
        self._port.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- fault knobs that act ----------------------------------------------------------------

    def restart(self, boot_time: float = 0.0) -> asyncio.Task[None]:
        """Reboot: work and MQTT session dropped, state reset, input ignored for ``boot_time``
        seconds, then the power-on lines (``RDY``...). Await the task to wait for them."""
        return self._control_task(self._reboot(boot_time))

    def drop_link(self) -> asyncio.Task[None]:
        """The network vanishes: the personality's own link-loss behaviour."""
        return self._control_task(self.personality.drop_link())

    def inject(self, data: bytes) -> None:
        """Write raw bytes to the host: noise, half lines, floods of URCs."""
        self._port.write(data)

    async def unplug(self) -> None:
        """Close the pty (the host's port fails) and remove the link; state is kept."""
        self._port.close()

    async def replug(self) -> None:
        """A new pty behind the same link path."""
        self._input.clear()
        self._port.open()

    # --- what personalities use --------------------------------------------------------------

    def urc(self, text: str | bytes) -> None:
        """Write a line to the host now, framed ``\\r\\n<text>\\r\\n``."""
        self._port.write(_frame(text))
        self._response_open = False

    def respond(self, text: str | bytes) -> None:
        """Write a line of the current command's response. Lines of one response are separated
        by a single ``\\r\\n``, as modules print them: ``\\r\\nA\\r\\nB\\r\\n``."""
        data = text.encode() if isinstance(text, str) else text
        self._port.write(data + b"\r\n" if self._response_open else _frame(data))
        self._response_open = True

    def urc_after(self, text: str | bytes) -> None:
        """Write a line right after the current command's final result."""
        self._after.append(_frame(text))

    async def read_data(self, count: int, timeout: float) -> bytes | None:
        """Raw data mode: exactly ``count`` bytes (echoed under ``ATE1``), ``None`` on timeout."""
        data = await self._input.read_exactly(count, timeout)
        if data is not None and self.echo:
            self._port.write(data)
        return data

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run the personality's background work; cancelled at reboot and stop."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    # --- internals ---------------------------------------------------------------------------

    def _new_personality(self) -> tuple[Personality, dict[str, Handler]]:
        personality = self._personality_class(self)
        return personality, personality.commands()

    def _received_bytes(self, data: bytes) -> None:
        if not self._booting:
            self._input.feed(data)

    async def _serve(self) -> None:
        while True:
            raw = await self._input.readline()
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue
            self.received.append(text)
            if self.silent:
                continue
            if self.echo:
                self._port.write(raw + b"\r")
            self._response_open = False
            if not is_at(text):
                continue  # modules ignore what isn't addressed to them
            final = self._take_failure(text)
            if final is None:
                final = await self._execute(text, len(raw))
            for line in self._take_inside():
                self.urc(line)
            self.urc(final)
            for data in self._after:
                self._port.write(data)
            self._after.clear()

    async def _execute(self, text: str, length: int) -> str:
        personality = self.personality
        command = parse_command(text)
        if command is None or length > personality.max_line:
            return ERROR
        handler = self._table.get(command.key)
        if handler is None:
            known = any(command.name + kind.value in self._table for kind in Kind)
            return OK if command.kind is Kind.TEST and known else ERROR
        try:
            return await handler(command)
        except ParamError:
            return personality.param_error
        except Exception:
            _LOGGER.exception("Handler of %s failed", command.name)
            return ERROR

    async def _reboot(self, boot_time: float) -> None:
        async with self._control_lock:
            self._booting = True
            await self._halt()
            await self.mqtt.disconnect()
            self.echo = self._default_echo
            self.personality, self._table = self._new_personality()
            await asyncio.sleep(boot_time)
            self._input.clear()
            self._after.clear()
            self._booting = False
            for line in self.personality.power_on_lines():
                self.urc(line)
            self._serving = asyncio.create_task(self._serve())

    async def _halt(self) -> None:
        """Stop the command interpreter and the personality's work."""
        serving, self._serving = self._serving, None
        await _cancel([*self._tasks, *([serving] if serving else [])])

    def _control_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        if not self._running:
            coro.close()
            raise RuntimeError("the emulator is not running")
        task = asyncio.create_task(coro)
        self._control.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._control.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            _LOGGER.error("Emulator task failed", exc_info=error)

    def _mqtt_message(self, message: InboundMessage) -> None:
        self.personality.on_mqtt_message(message)

    def _mqtt_lost(self) -> None:
        self.personality.on_mqtt_lost()


async def _cancel(tasks: Iterable[asyncio.Task[None]]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)

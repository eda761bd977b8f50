"""The link under test, and what every fault test checks once the fault is over: the link is
back by itself, with its subscriptions (each once), the data flowing both ways exactly once,
and nothing left behind (one supervisor task, the port open once)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
import itertools
import os
from pathlib import Path

from custom_components.aliyun_iot_at.core import alink
from custom_components.aliyun_iot_at.core.dialects import dialect_class
from custom_components.aliyun_iot_at.core.dialects.base import (
    DeviceIdentity,
    Endpoint,
    InboundMessage,
    LinkSettings,
)
from custom_components.aliyun_iot_at.core.errors import AtError
from custom_components.aliyun_iot_at.core.link import Link, LinkState, PortSettings
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import InboundMessage as CloudMessage, ModuleEmulator
from tests.e2e.conftest import IDENTITY, TOPICS, cloud_json, property_set

from .matrix import Case

# Seconds a recovery may take once the fault is over: the test backoff is 0.05 s and the
# session check (when a test runs it) every 0.2 s, so one takes well under a second, even with
# other test runs sharing the machine's CPUs; this leaves a loaded machine room, yet stays
# below the production backoff's later steps (30 s and more) a link retrying at the wrong
# pace would wait.
RECOVERY = 10.0
# How long a duplicate delivery is waited for.
DUPLICATE_WINDOW = 0.3

# The session check of a link whose module announces the fault: never in a test's time...
NO_CHECK = 3600.0
# ... and of one whose module announces nothing: often.
OFTEN = 0.2

_OUR_CODE = str(Path(alink.__file__).parent.parent)
_ids = itertools.count(500)


class Session:
    """A supervised link to the module and all it reported: every state it entered, with
    the error it came with, and the messages it delivered."""

    def __init__(
        self,
        module: ModuleEmulator,
        dialect: str,
        *,
        health_interval: float,
        identity: DeviceIdentity = IDENTITY,
        backoff: Sequence[float] = (0.05,),
    ) -> None:
        self.inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
        self.history: list[tuple[LinkState, AtError | None]] = []
        self._waited = 0  # history entries a wait_state has passed
        self._changed = asyncio.Event()
        self.link = Link(
            PortSettings(str(module.path)),
            dialect,
            # TLS where the module offers it, as users are told to; attach polls give up
            # at the first refusal: the supervisor retries.
            LinkSettings(
                identity, Endpoint(tls=dialect_class(dialect).supports_tls), attach_timeout=0
            ),
            TOPICS.subscriptions(),
            on_message=self.inbox.put_nowait,
            on_state=self._on_state,
            backoff=backoff,
            health_interval=health_interval,
        )

    def _on_state(self, state: LinkState, error: AtError | None) -> None:
        self.history.append((state, error))
        self._changed.set()

    async def wait_state(self, state: LinkState, timeout: float = 10.0) -> AtError | None:
        """The error of the link's next entry into ``state`` (after those already waited
        for)."""
        async with asyncio.timeout(timeout):
            while True:
                for index in range(self._waited, len(self.history)):
                    entered, error = self.history[index]
                    if entered is state:
                        self._waited = index + 1
                        return error
                self._changed.clear()
                await self._changed.wait()

    def errors(self) -> list[AtError]:
        """Every error the link reported."""
        return [error for _, error in self.history if error is not None]

    async def next_message(self, timeout: float = 5.0) -> InboundMessage:
        async with asyncio.timeout(timeout):
            return await self.inbox.get()


def check_interval(case: Case) -> float:
    """How often the link of ``case`` checks the session."""
    return OFTEN if case.outcome.probe else NO_CHECK


def pty_fds() -> int:
    """Open file descriptors of this process on pseudo-terminals (either end)."""
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
        if target == "/dev/ptmx" or target.startswith("/dev/pts/"):
            found += 1
    return found


def our_tasks() -> list[asyncio.Task[object]]:
    """Running tasks whose coroutine is code of the integration."""
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and _code_file(task).startswith(_OUR_CODE)
    ]


def _code_file(task: asyncio.Task[object]) -> str:
    code = getattr(task.get_coro(), "cr_code", None)
    return code.co_filename if code is not None else ""


def expected_subscriptions() -> list[str]:
    """What the device's session must hold: each of its topics, once."""
    return sorted(TOPICS.subscriptions())


async def assert_messages_flow(cloud: AliyunCloud, device: Device, session: Session) -> None:
    """A cloud set arrives once and intact; a post from the link reaches the cloud."""
    drain(session)
    value = next(_ids)
    msg_id = await cloud.set_properties(device, {"Brightness": value})
    assert await session.next_message() == property_set(msg_id, {"Brightness": value})
    await asyncio.sleep(DUPLICATE_WINDOW)
    assert session.inbox.empty(), "a message was delivered twice"

    post_id = str(next(_ids))
    payload = alink.property_post(post_id, {"Brightness": value})
    await session.link.publish(TOPICS.property_post, payload)
    post = await cloud.wait_post(device, lambda p: p.get("id") == post_id)
    assert post["params"] == {"Brightness": value}


def assert_nothing_left_behind(ptys_before_link: int) -> None:
    """Each task of the integration running once (the link's supervisor among them), and the
    port open once."""
    kinds = Counter(task.get_coro().__qualname__ for task in our_tasks())  # type: ignore[union-attr]
    assert kinds["Link._supervise"] == 1, kinds
    assert set(kinds.values()) == {1}, kinds
    assert pty_fds() == ptys_before_link + 1, "the port is not open exactly once"


def assert_port_closed(ptys_before_link: int) -> None:
    """Once a link is stopped, its port is closed: a port still closing when the test's event
    loop ends is closed only when the garbage collector gets to it, in a later test (whose
    count of open ports it then upsets)."""
    assert pty_fds() == ptys_before_link, "a stopped link left the port open"


async def assert_recovered(
    cloud: AliyunCloud, device: Device, session: Session, ptys_before_link: int
) -> None:
    """Everything a recovered link must show."""
    await cloud.wait_online(device)
    assert cloud.subscriptions(device) == expected_subscriptions()
    await assert_messages_flow(cloud, device, session)
    assert_nothing_left_behind(ptys_before_link)


def drain(session: Session) -> None:
    """Forget what was delivered so far (the cloud's replies to earlier posts)."""
    while not session.inbox.empty():
        session.inbox.get_nowait()


def message_urc(module: ModuleEmulator, msg_id: str, params: dict[str, object]) -> bytes:
    """The URC the module prints for the cloud's property set ``msg_id``, as its
    personality writes it (asked of the personality, not copied here)."""
    method = "thing.service.property.set"
    payload = cloud_json({"id": msg_id, "version": "1.0", "params": params, "method": method})
    written: list[str | bytes] = []
    module.urc = written.append  # type: ignore[method-assign]
    try:
        module.personality.on_mqtt_message(
            CloudMessage(TOPICS.property_set, payload, qos=1, packet_id=7, retain=False)
        )
    finally:
        del module.urc  # the class's method again
    [urc] = written
    return urc.encode() if isinstance(urc, str) else urc

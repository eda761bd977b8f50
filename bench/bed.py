"""The test bed of one measurement point: the cloud, the module at a baud rate, Home Assistant
with the entry set up, and the cloud's record of the posts it received and when."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass
import json
from pathlib import Path
import secrets
import time
from typing import Any

from testbed.cloud import AliyunCloud, Device

from .hass import ROOT, HassProcess
from .module import TimedEmulator
from .stats import wire_time
from .timeline import Timeline

DOMAIN = "aliyun_iot_at"
THING_MODEL = (ROOT / "tests" / "fixtures" / "smart_light.json").read_text("utf-8")
PRODUCT_KEY: str = json.loads(THING_MODEL)["profile"]["productKey"]
DEVICE_NAME = "bench"
SETTLE_TIMEOUT = 10.0
SETUP_TIMEOUT = 120.0
# After the last line the host is waiting for: room for the trailing result codes.
_TAIL_BYTES = 40
_TAIL_TIME = 0.005

type Payload = dict[str, Any]


@dataclass(frozen=True)
class Setup:
    """How long the config entry took: to the first AT command reaching the module, set up,
    and until all its entities were available."""

    first_command: float | None
    set_up: float
    available: float | None
    wire: float  # the wire time of the bytes both ways meanwhile, had the line never idled


@dataclass
class Bed:
    """One measurement point, with the entry set up."""

    cloud: AliyunCloud
    device: Device
    module: TimedEmulator
    hass: HassProcess
    baudrate: int
    posts: Timeline[Payload]
    entry_id: str = ""
    entities: dict[str, str] | None = None  # unique id → entity id
    setup: Setup | None = None

    def entity(self, key: str) -> str:
        """The entity id of the thing-model feature ``key``."""
        assert self.entities is not None
        return self.entities[f"{PRODUCT_KEY}.{DEVICE_NAME}_{key}"]

    def wire(self, size: int) -> float:
        """Wire time of ``size`` bytes at this point's baud rate."""
        return wire_time(size, self.baudrate)

    async def add_entry(self) -> None:
        """Set the integration up on the module, as the config flow would have it."""
        before, inputs = self.module.wire_bytes(), self.module.inputs.mark()
        reply = await self.hass.request(
            "add_entry",
            timeout=SETUP_TIMEOUT + 10,
            domain=DOMAIN,
            title=DEVICE_NAME,
            unique_id=f"{PRODUCT_KEY}.{DEVICE_NAME}",
            data={
                "device": str(self.module.path),
                "baudrate": self.baudrate,
                "dialect": self.module.personality.dialect,
                "product_key": PRODUCT_KEY,
                "device_name": DEVICE_NAME,
                "device_secret": self.device.device_secret,
                "region": "cn-shanghai",
            },
            options={"thing_model": THING_MODEL, "keepalive": 300},
            available_timeout=SETUP_TIMEOUT,
        )
        if reply["state"] != "loaded":
            raise RuntimeError(f"the entry did not load: {reply['state']}")
        self.entry_id = reply["entry_id"]
        self.entities = reply["entities"]
        start, available = reply["t0"], reply["t_available"]
        first = self.module.inputs.since(inputs)
        self.setup = Setup(
            first[0].t - start if first else None,
            reply["t_setup"] - start,
            None if available is None else available - start,
            self.wire(self.module.wire_bytes() - before),
        )
        await self.hass.request("watch", entities=list(self.entities.values()))

    async def settle(self, since_urc: int) -> None:
        """Until the line is quiet after a post: the cloud's post_reply has crossed it."""
        reply = await self.module.urcs.wait(
            lambda line: b"/thing/event/property/post_reply" in line,
            since=since_urc,
            timeout=SETTLE_TIMEOUT,
            what="post_reply written to the host",
        )
        quiet = reply.t + self.wire(len(reply.item) + _TAIL_BYTES) + _TAIL_TIME
        await asyncio.sleep(max(quiet - time.monotonic(), 0.0))


@contextlib.asynccontextmanager
async def open_bed(baudrate: int, dialect: str, out: Path, hass: HassProcess) -> AsyncIterator[Bed]:
    """The cloud, the module at ``baudrate`` (its pty in ``out``, which must exist) and
    ``hass`` started; the entry not added yet."""
    async with AliyunCloud(history=20000) as cloud:
        device = cloud.add_device(PRODUCT_KEY, DEVICE_NAME, secrets.token_hex(16))
        module = TimedEmulator(
            dialect,
            link=out / f"tty-{dialect}",
            mqtt_port=cloud.mqtt_port,
            http_port=cloud.http_port,
            baudrate=baudrate,
        )
        posts: Timeline[Payload] = Timeline()
        async with module:
            recorder = asyncio.create_task(_record_posts(cloud, device, posts))
            try:
                await hass.start()
                yield Bed(cloud, device, module, hass, baudrate, posts)
            finally:
                await hass.stop()
                recorder.cancel()
                await asyncio.gather(recorder, return_exceptions=True)


async def _record_posts(cloud: AliyunCloud, device: Device, posts: Timeline[Payload]) -> None:
    """Each property post, stamped when the cloud's Alink service got it."""
    while True:
        with contextlib.suppress(TimeoutError):
            posts.add(await cloud.wait_post(device, timeout=3600))

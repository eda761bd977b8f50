"""Sustained load with faults: the cloud sets one property and Home Assistant changes another,
together at Aliyun's rate limit, while faults strike at random. At the end every change
reached the other side with its final value, nothing answered 200 went unapplied, and the
integration's memory did not grow.

``SOAK_SECONDS`` (per dialect, default 12) makes it longer, ``SOAK_SEED`` repeats a run; the
seed of every run is printed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
import gc
import os
from pathlib import Path
import random
import tracemalloc
from typing import Any

from homeassistant.components.number import ATTR_VALUE, SERVICE_SET_VALUE
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNAVAILABLE, Platform
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.aliyun_iot_at.core import alink
from testbed.cloud import AliyunCloud, Device
from testbed.emulator import ModuleEmulator
from tests.integration.conftest import SMART_LIGHT
from tests.integration.helpers import until

from .ha import StateLog, entity_id
from .matrix import DIALECTS, KEPT, Case

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "12"))
SEED = int(os.environ.get("SOAK_SEED") or random.randrange(2**32))
# Changes a second from each side: 30 in all, Aliyun's limit of upstream messages.
CLOUD_SETS = 15
HA_CHANGES = 15
# Growth of what the integration's code allocated and still holds, from the warm-up's end.
MEMORY_BOUND = 256 * 1024
_OUR_CODE = str(Path(alink.__file__).parent.parent / "*")


@pytest.fixture(params=DIALECTS)
def case(request: pytest.FixtureRequest) -> Case:
    return Case("soak", request.param, KEPT)


@pytest.fixture
def thing_model() -> str:
    return SMART_LIGHT


class Soak:
    """The two sides' changes and the faults, run until ``stop``."""

    def __init__(
        self,
        hass: HomeAssistant,
        cloud: AliyunCloud,
        device: Device,
        module: ModuleEmulator,
        rng: random.Random,
    ) -> None:
        self.hass = hass
        self.cloud = cloud
        self.device = device
        self.module = module
        self.rng = rng
        self.stop = asyncio.Event()
        self.cloud_sets: list[tuple[str, int]] = []  # (message id, Brightness)
        self.ha_values: list[int] = []  # ColorTemperature
        self.faults: list[str] = []

    async def run(self, seconds: float, *, warm_up: Callable[[], None]) -> None:
        tasks = [
            asyncio.create_task(work()) for work in (self._cloud_side, self._ha_side, self._faults)
        ]
        await asyncio.sleep(seconds / 4)
        warm_up()
        await asyncio.sleep(seconds * 3 / 4)
        self.stop.set()
        await asyncio.gather(*tasks)

    async def _paced(
        self, per_second: int, step: Callable[[int], Coroutine[Any, Any, None]]
    ) -> None:
        count = 0
        while not self.stop.is_set():
            await step(count)
            count += 1
            await asyncio.sleep(1 / per_second)

    async def _cloud_side(self) -> None:
        async def set_brightness(count: int) -> None:
            value = count % 101
            msg_id = await self.cloud.set_properties(self.device, {"Brightness": value})
            self.cloud_sets.append((msg_id, value))

        await self._paced(CLOUD_SETS, set_brightness)

    async def _ha_side(self) -> None:
        color = entity_id(self.hass, Platform.NUMBER, "ColorTemperature")

        async def set_color(count: int) -> None:
            value = 2700 + count % 3801
            await self.hass.services.async_call(
                Platform.NUMBER,
                SERVICE_SET_VALUE,
                {ATTR_ENTITY_ID: color, ATTR_VALUE: value},
                blocking=True,
            )
            self.ha_values.append(value)

        await self._paced(HA_CHANGES, set_color)

    async def _faults(self) -> None:
        module, rng = self.module, self.rng
        while not self.stop.is_set():
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            kind = rng.choice(("kick", "drop", "restart", "replug", "noise"))
            self.faults.append(kind)
            match kind:
                case "kick":
                    await self.cloud.kick(self.device)
                case "drop":
                    await module.drop_link()
                case "restart":
                    await module.restart()
                case "replug":
                    await module.unplug()
                    await asyncio.sleep(rng.uniform(0.1, 0.8))
                    await module.replug()
                case "noise":
                    module.inject(rng.randbytes(512))

    def answered(self) -> list[int]:
        """The Brightness of every set the device answered 200, in order."""
        codes = {
            uplink.payload.get("id"): uplink.payload.get("code")
            for uplink in self.cloud.uplinks(self.device)
            if uplink.kind == "reply" and uplink.payload is not None
        }
        return [value for msg_id, value in self.cloud_sets if codes.get(msg_id) == 200]

    def posted(self) -> list[int]:
        """Every ColorTemperature the cloud accepted in a post, in order."""
        return [
            uplink.payload["params"]["ColorTemperature"]
            for uplink in self.cloud.uplinks(self.device)
            if uplink.kind == "property_post"
            and uplink.code == 200
            and uplink.payload is not None
            and "ColorTemperature" in uplink.payload.get("params", {})
        ]


def _in_order(seen: list[int], history: list[int]) -> bool:
    """Whether ``seen`` appears in ``history`` in order (a value may be seen again: a
    reconnect posts the current value once more)."""
    position = 0
    for value in seen:
        while position < len(history) and history[position] != value:
            position += 1
        if position == len(history):
            return False
    return True


def _our_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> int:
    """Bytes allocated near the integration's code (in it or a few calls below) and still
    held at ``after`` beyond what was at ``before``."""
    ours = [tracemalloc.Filter(True, _OUR_CODE, all_frames=True)]
    diff = after.filter_traces(ours).compare_to(before.filter_traces(ours), "filename")
    return sum(stat.size_diff for stat in diff)


@pytest.mark.timeout(SOAK_SECONDS + 120)
async def test_soak(
    case: Case,
    hass: HomeAssistant,
    ha_entry: MockConfigEntry,
    cloud: AliyunCloud,
    device: Device,
    module: ModuleEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    print(f"soak: {SOAK_SECONDS:g} s on {case.dialect}; SOAK_SEED={SEED} repeats it")
    coordinator = ha_entry.runtime_data.coordinator
    brightness = StateLog(hass, entity_id(hass, Platform.NUMBER, "Brightness"))
    soak = Soak(hass, cloud, device, module, random.Random(f"{SEED}-{case.dialect}"))
    snapshots: list[tracemalloc.Snapshot] = []

    def warm_up() -> None:
        caplog.clear()  # its records hold strings our code made
        gc.collect()
        snapshots.append(tracemalloc.take_snapshot())

    tracemalloc.start(4)
    try:
        await soak.run(SOAK_SECONDS, warm_up=warm_up)
        print(f"faults: {soak.faults}")

        # Once the faults are over, both sides converge by themselves.
        await until(lambda: coordinator.connected, timeout=15)
        final = soak.cloud_sets[-1][1]
        if not soak.answered() or soak.answered()[-1] != final:
            # The last set may have been lost with the link: a cloud app sends it again.
            msg_id = await cloud.set_properties(device, {"Brightness": final})
            assert (await cloud.wait_reply(device, msg_id))["code"] == 200
            soak.cloud_sets.append((msg_id, final))
        await until(lambda: coordinator.thing.values.get("Brightness") == final, timeout=15)
        await until(lambda: soak.posted()[-1:] == soak.ha_values[-1:], timeout=15)

        caplog.clear()
        gc.collect()
        snapshots.append(tracemalloc.take_snapshot())
    finally:
        tracemalloc.stop()
        brightness.close()

    try:
        # Cloud to Home Assistant: every set answered 200 was applied, in order.
        shown = [int(float(s)) for s in brightness.states if s != STATE_UNAVAILABLE]
        assert shown[-1] == final
        assert _in_order(soak.answered(), shown)
        # Home Assistant to the cloud: only values Home Assistant had, in order, the last one
        # last.
        assert _in_order(soak.posted(), soak.ha_values)
        assert soak.posted()[-1] == soak.ha_values[-1]
        growth = _our_growth(*snapshots)
        print(f"memory held near our code grew by {growth} bytes")
        assert growth < MEMORY_BOUND
    except AssertionError as err:
        err.add_note(f"SOAK_SEED={SEED}, {case.dialect}, faults {soak.faults}")
        raise

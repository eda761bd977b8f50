"""Parser throughput: lines a second the AT channel frames and classifies, fed directly.

The channel gets the Quectel dialect's URCs, as in use, and bytes in 64-byte reads (about
what a UART driver hands over at a time). Two streams: the URC that carries a property set
(framed by its length, parsed, handed on as a message) and bare ``OK`` lines while no command
runs (the cheapest line there is, and the most frequent). Each is set against the lines a
second a 115200-baud line can carry.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import time

from custom_components.aliyun_iot_at.core.channel import AtChannel
from custom_components.aliyun_iot_at.core.dialects.base import (
    DeviceIdentity,
    InboundMessage,
    LinkSettings,
)
from custom_components.aliyun_iot_at.core.dialects.quectel import QuectelDialect

from .stats import wire_time

READ_SIZE = 64
LINE_RATE_BAUD = 115200
RUN_FOR = 0.5  # seconds of parsing per stream


@dataclass(frozen=True)
class Throughput:
    """Lines a second parsed, beside the lines a second the line rate allows."""

    stream: str
    line_bytes: int
    parsed_per_second: float
    line_rate: float  # lines a second at 115200 baud


class _Events:
    """The link's side: counts the messages the dialect hands on."""

    def __init__(self) -> None:
        self.messages = 0

    def message(self, message: InboundMessage) -> None:
        self.messages += 1

    def link_lost(self, reason: str) -> None:
        """Not expected here."""


def set_urc(product_key: str, device_name: str) -> bytes:
    """The framed ``+QMTRECV`` of a property set, as the module writes it."""
    payload = json.dumps(
        {
            "id": "123",
            "version": "1.0",
            "params": {"PowerSwitch": 1},
            "method": "thing.service.property.set",
        },
        separators=(",", ":"),
    ).encode()
    topic = f"/sys/{product_key}/{device_name}/thing/service/property/set"
    head = f'+QMTRECV: 0,1,"{topic}",{len(payload)},"'.encode()
    return b"\r\n" + head + payload + b'"\r\n'


async def parser_throughput(product_key: str, device_name: str) -> list[Throughput]:
    """Both streams, each parsed for about ``RUN_FOR`` seconds."""
    streams = {
        "+QMTRECV property set": set_urc(product_key, device_name),
        "OK (no command running)": b"\r\nOK\r\n",
    }
    return [await _measure(name, line, product_key, device_name) for name, line in streams.items()]


async def _measure(name: str, line: bytes, product_key: str, device_name: str) -> Throughput:
    channel = AtChannel()
    events = _Events()
    settings = LinkSettings(identity=DeviceIdentity(product_key, device_name, "x" * 32))
    QuectelDialect(channel, settings, events)
    count = 1000
    while True:
        blob = line * count
        reads = [blob[i : i + READ_SIZE] for i in range(0, len(blob), READ_SIZE)]
        events.messages = 0
        start = time.perf_counter()
        for data in reads:
            channel.data_received(data)
        elapsed = time.perf_counter() - start
        if elapsed >= RUN_FOR:
            break
        count = int(count * RUN_FOR * 1.2 / max(elapsed, 1e-3))
    if line.startswith(b"\r\n+QMTRECV") and events.messages != count:
        raise RuntimeError(f"the dialect took {events.messages} of {count} messages")
    return Throughput(name, len(line), count / elapsed, 1 / wire_time(len(line), LINE_RATE_BAUD))

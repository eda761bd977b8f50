"""A serial line's pace: bytes are handed on when they would have finished crossing the wire."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

BITS_PER_BYTE = 10  # start bit, 8 data bits, stop bit


class Pacer:
    """Delays bytes by their wire time at ``baudrate`` (10 bits a byte), in order.

    Bytes go on in pieces of about 2 ms of wire time, as a UART's FIFO hands them over;
    a piece never spans two ``feed`` calls, so the last byte of every write is handed on
    exactly when it would have arrived, not with the first bytes of the next write.
    """

    def __init__(self, baudrate: int, deliver: Callable[[bytes], None]) -> None:
        if baudrate <= 0:
            raise ValueError("baudrate must be positive")
        self._byte_time = BITS_PER_BYTE / baudrate
        self._piece = max(1, baudrate // 5000)
        self._deliver = deliver
        self._queue: deque[bytes] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0  # when the last scheduled piece is through

    def feed(self, data: bytes) -> None:
        """Queue ``data`` behind what is still on the wire."""
        if not data:
            return
        self._queue.append(data)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._due = max(self._due, loop.time())  # an idle line starts now
            self._schedule(loop)

    def clear(self) -> None:
        """Drop everything not handed on yet."""
        self._queue.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        size = min(len(self._queue[0]), self._piece)
        # Due times chain from the burst's start: a late timer does not delay later bytes.
        self._due += size * self._byte_time
        self._timer = loop.call_at(self._due, self._send, size)

    def _send(self, size: int) -> None:
        self._timer = None
        head = self._queue.popleft()
        if len(head) > size:
            self._queue.appendleft(head[size:])
        if self._queue:
            self._schedule(asyncio.get_running_loop())
        self._deliver(head[:size])

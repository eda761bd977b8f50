"""Things as they happened, stamped with ``time.monotonic()``, to wait on without polling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
import time


@dataclass(frozen=True)
class Stamped[T]:
    """An item, the monotonic time it happened at, and its place in its timeline."""

    t: float
    item: T
    index: int


class Timeline[T]:
    """An append-only record; ``wait`` finds the first match after a mark."""

    def __init__(self) -> None:
        self.entries: list[Stamped[T]] = []
        self._grown = asyncio.Event()

    def add(self, item: T, t: float | None = None) -> None:
        """Record ``item``, now unless ``t`` says when it happened."""
        when = time.monotonic() if t is None else t
        self.entries.append(Stamped(when, item, len(self.entries)))
        grown, self._grown = self._grown, asyncio.Event()
        grown.set()

    def mark(self) -> int:
        """A position: what is added from now on comes after it."""
        return len(self.entries)

    def since(self, mark: int) -> list[Stamped[T]]:
        """What was added after ``mark``."""
        return self.entries[mark:]

    async def wait(
        self, match: Callable[[T], bool], *, since: int, timeout: float, what: str
    ) -> Stamped[T]:
        """The first entry after ``since`` that matches; ``TimeoutError`` naming ``what``."""
        index = since
        try:
            async with asyncio.timeout(timeout):
                while True:
                    while index < len(self.entries):
                        entry = self.entries[index]
                        index += 1
                        if match(entry.item):
                            return entry
                    await self._grown.wait()
        except TimeoutError:
            raise TimeoutError(f"no {what} within {timeout:g} s") from None

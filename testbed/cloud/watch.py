"""Waiting for a state change without polling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Watch:
    """Wakes waiters whenever the state they look at may have changed."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()

    async def changed(self) -> None:
        """Tell waiters to look again."""
        async with self._changed:
            self._changed.notify_all()

    async def wait_for[T](self, find: Callable[[], T | None], timeout: float, what: str) -> T:
        """The first non-None ``find()``, re-evaluated at every change; TimeoutError if none."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                while (found := find()) is None:
                    await self._changed.wait()
                return found
        except TimeoutError:
            raise TimeoutError(f"no {what} within {timeout} s") from None

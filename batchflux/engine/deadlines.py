"""An earliest-deadline-first queue: results and downloads are served by urgency, not arrival."""

from __future__ import annotations

import asyncio
import itertools
from typing import Generic, TypeVar

T = TypeVar("T")


class DeadlineQueue(Generic[T]):
    def __init__(self) -> None:
        self._q: asyncio.PriorityQueue[tuple[float, int, T]] = asyncio.PriorityQueue()
        self._seq = itertools.count()

    def put(self, deadline: float, item: T) -> None:
        self._q.put_nowait((deadline, next(self._seq), item))

    async def get(self) -> T:
        return (await self._q.get())[2]

    def qsize(self) -> int:
        return self._q.qsize()

"""The in-flight cap: requests submitted and not yet resolved (``--max-in-flight``)."""

from __future__ import annotations

import asyncio
import collections


class InFlight:
    """Requests submitted and not yet resolved. :meth:`acquire` waits below the cap (FIFO);
    :meth:`force` admits a request already on the server (resume); :meth:`release` is sync."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.count = 0
        self.peak = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        while self.count >= self.cap:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            finally:
                if fut in self._waiters:
                    self._waiters.remove(fut)
        self.force()

    def force(self) -> None:
        self.count += 1
        self.peak = max(self.peak, self.count)

    def release(self) -> None:
        self.count -= 1
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                break

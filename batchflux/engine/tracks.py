"""Per-request bookkeeping and the timer-driven poll schedule."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from batchflux.manifest.job import Job


@dataclass(slots=True, eq=False)
class Track:
    """One job's live request: what the poll, result and download stages need."""

    job: Job
    request_id: str = ""
    status_url: str = ""
    response_url: str = ""
    submitted_mono: float = 0.0  # loop clock
    deadline: float = 0.0  # loop clock: submitted + retention
    last_unfinished_age: float = 0.0  # age at the last poll that saw it unfinished
    latency: float | None = None  # the poll schedule's estimate, once seen done
    last_status: str = "QUEUED"
    calls: int = 0  # status and result calls answered (the follow-ups of its submit)
    output_url: str = ""
    holds_slot: bool = False  # counts toward --max-in-flight
    via_history: bool = False  # output_url came from the request history's record (the v2 one expired)
    due: float = 0.0  # its next poll (loop clock); an earlier due time in the schedule is stale


@dataclass(order=True, slots=True)
class _Due:
    at: float
    seq: int
    track: Track = field(compare=False)


class PollScheduler:
    """A heap of due times. :meth:`run` hands each track to ``sink`` when it falls due, sleeping
    exactly until the earliest due time (or until an earlier one is added). A track's latest due
    time is the one that counts: :meth:`tighten` brings one forward, and the entry it replaces is
    skipped when it comes up."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, track: Track, at: float) -> None:
        track.due = at
        earliest = self._heap[0].at if self._heap else None
        heapq.heappush(self._heap, _Due(at, next(self._seq), track))
        if earliest is None or at < earliest:
            self._wake.set()

    async def run(self, sink: Callable[[Track], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = self._heap[0].at - self._clock()
            if delay > 0:
                # A timer sets the same event an earlier add() sets (no wait_for: it wraps the
                # wait in a task of its own, every time).
                self._wake.clear()
                timer = loop.call_later(delay, self._wake.set)
                try:
                    await self._wake.wait()
                finally:
                    timer.cancel()
                continue
            due = heapq.heappop(self._heap)
            if due.at == due.track.due:  # else brought forward, and polled then
                await sink(due.track)

    def tighten(self, due_by: Callable[[Track], float]) -> None:
        """Bring each scheduled track's poll forward to ``due_by(track)`` if that is sooner."""
        for due in list(self._heap):
            if due.at == due.track.due and (at := due_by(due.track)) < due.at:
                self.add(due.track, at)

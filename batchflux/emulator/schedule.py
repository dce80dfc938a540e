"""When each job runs: per-key worker slots and the count of unfinished jobs (pure).

A job's whole timeline is fixed the moment it is submitted: jobs take the earliest free worker slot
in submission order (FIFO), stay QUEUED until then and PROCESSING for their sampled latency. Reads
then compare the clock with these times, so nothing needs a timer or a background task.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Slot:
    """One job's place in time (loop-clock seconds)."""

    submitted: float
    started: float
    finished: float


class WorkerPool:
    """``workers`` slots; each holds the time it next becomes free."""

    __slots__ = ("_free_at",)

    def __init__(self, workers: int) -> None:
        self._free_at: list[float] = [float("-inf")] * workers

    @property
    def workers(self) -> int:
        return len(self._free_at)

    def assign(self, now: float, latency: float) -> Slot:
        free = heapq.heappop(self._free_at)
        started = max(now, free)
        finished = started + latency
        heapq.heappush(self._free_at, finished)
        return Slot(submitted=now, started=started, finished=finished)

    def resize(self, workers: int) -> None:
        """Grow with idle slots, or shrink by retiring the slots that free up first.

        Jobs already scheduled keep their times; only later submissions see the new size.
        """
        if workers > len(self._free_at):
            self._free_at.extend([float("-inf")] * (workers - len(self._free_at)))
            heapq.heapify(self._free_at)
        elif workers < len(self._free_at):
            self._free_at = heapq.nlargest(workers, self._free_at)
            heapq.heapify(self._free_at)


class ActiveCounter:
    """How many jobs are QUEUED or PROCESSING, and the most there ever were at once."""

    __slots__ = ("_ends", "peak")

    def __init__(self) -> None:
        self._ends: list[float] = []
        self.peak = 0

    def add(self, now: float, finished: float) -> int:
        """Count a job submitted at ``now`` that finishes at ``finished``; return the active count."""
        self._drop_finished(now)
        heapq.heappush(self._ends, finished)
        self.peak = max(self.peak, len(self._ends))
        return len(self._ends)

    def active(self, now: float) -> int:
        self._drop_finished(now)
        return len(self._ends)

    def _drop_finished(self, now: float) -> None:
        while self._ends and self._ends[0] <= now:
            heapq.heappop(self._ends)

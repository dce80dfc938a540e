"""Pacing primitives: the submit-rate limiter and the 429 pause gates.

All timing uses an injected monotonic clock (the loop's ``time``) and waits with timers —
``asyncio.sleep`` until a computed instant — never a spin.

- :class:`SlidingWindowLimiter` — never more than ``limit`` acquisitions in any ``period``-second
  window (a sliding-window log, as aiolimiter does for leaky buckets). Against a fixed-window
  server limiter it spends each window's quota as soon as it opens and nothing beyond it.
- :class:`PauseGate` — a gate the calls of one kind pass before they go; a 429 on one of them
  closes it until the server's reset time (the engine keeps one per kind of call).

With no ``--rate``, the limiter's rate is learned from the 429s (:mod:`batchflux.engine.quota`).
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` events per ``period`` seconds (``--rate 60/6s``; ``--rpm R`` is ``R/60s``)."""

    limit: int
    period: float

    def __str__(self) -> str:
        return f"{self.limit}/{self.period:g}s"


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(text: str) -> Rate:
    """``"60/6s"``, ``"1000/1h"``, ``"50/m"``, ``"50/60"`` → :class:`Rate`; ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([smh]?)\s*", text)
    if not m or not m.group(1) or (not m.group(2) and not m.group(3)):
        raise ValueError(f"{text!r} is not a rate like 50/60s, 60/6s or 1000/1h")
    limit = int(m.group(1))
    period = float(m.group(2) or 1) * _UNITS[m.group(3) or "s"]
    if limit < 1 or period <= 0:
        raise ValueError(f"{text!r}: a rate needs a positive limit and period")
    return Rate(limit, period)


class SlidingWindowLimiter:
    """At most ``rate.limit`` acquisitions in any window of ``rate.period`` seconds.

    Each acquisition stamps a slot; :meth:`acquire` returns the slot so the caller can
    :meth:`settle` it to the moment the server answered: the server saw the request no later than
    that, so the next window is counted from there and client/server skew cannot push a request
    into a window the server has already filled.

    Waiters are served in arrival order, ``urgent`` ones first (polls, when the server counts them
    toward the same quota as submits: a finished job should not wait behind new work). A timer at
    the instant the oldest slot leaves the window wakes the next waiter; nothing polls.
    """

    def __init__(self, rate: Rate, clock: Clock) -> None:
        self.rate = rate
        self._clock = clock
        self._log: deque[list[float]] = deque()
        self._urgent: deque[asyncio.Future[list[float]]] = deque()
        self._normal: deque[asyncio.Future[list[float]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    async def acquire(self, *, urgent: bool = False) -> list[float]:
        if not self._urgent and not self._normal and self._room():
            return self._take()
        waiter: asyncio.Future[list[float]] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._normal).append(waiter)
        self._serve()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted as it was cancelled: give it back
                self._log.remove(waiter.result())
            else:
                (self._urgent if urgent else self._normal).remove(waiter)
            self._serve()
            raise

    def _room(self) -> bool:
        now = self._clock()
        while self._log and self._log[0][0] + self.rate.period <= now:
            self._log.popleft()
        return len(self._log) < self.rate.limit

    def _take(self) -> list[float]:
        slot = [self._clock()]
        self._log.append(slot)
        return slot

    def _serve(self) -> None:
        """Hand free slots to the waiters, urgent first; time the next wake-up if any are left."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for line in (self._urgent, self._normal):
            while line and self._room():
                waiter = line.popleft()
                if not waiter.done():
                    waiter.set_result(self._take())
        if (self._urgent or self._normal) and self._log:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(self._log[0][0] + self.rate.period, self._serve)

    def set_rate(self, rate: Rate) -> None:
        """A new rate, from the next acquisition on (a learned quota, revised)."""
        self.rate = rate
        if self._urgent or self._normal:
            self._serve()

    def settle(self, slot: list[float]) -> None:
        slot[0] = max(slot[0], self._clock())

    def give_back(self, slot: list[float]) -> None:
        """The server refused the call (a 429) and so counted nothing: its slot is free again."""
        for i, held in enumerate(self._log):
            if held is slot:
                del self._log[i]
                break
        if self._urgent or self._normal:
            self._serve()

    def used(self) -> int:
        """Acquisitions in the current window (for the progress bar's quota figure)."""
        now = self._clock()
        return sum(1 for s in self._log if s[0] + self.rate.period > now)


class PauseGate:
    """Closed until ``resume_at`` (monotonic); every API call passes :meth:`wait` first."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.resume_at = 0.0
        self.pauses = 0

    def pause_for(self, delay: float) -> bool:
        """Close the gate for ``delay`` seconds from now (never shortening a pause); True when
        this starts a new pause rather than extending one."""
        now = self._clock()
        until = now + max(0.0, delay)
        if until <= self.resume_at:
            return False
        new = self.resume_at <= now
        if new:
            self.pauses += 1
        self.resume_at = until
        return new

    @property
    def paused(self) -> bool:
        return self._clock() < self.resume_at

    async def wait(self) -> None:
        # Sleeps exactly until the reset; loops only when another 429 pushed the reset later.
        while (delay := self.resume_at - self._clock()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)

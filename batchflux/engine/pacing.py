"""Pacing primitives: the submit-rate limiter, the shared 429 pause gate, adaptive rate (AIMD).

All timing uses an injected monotonic clock (the loop's ``time``) and waits with timers —
``asyncio.sleep`` until a computed instant — never a spin.

- :class:`SlidingWindowLimiter` — never more than ``limit`` acquisitions in any ``period``-second
  window (a sliding-window log, as aiolimiter does for leaky buckets). Against a fixed-window
  server limiter it spends each window's quota as soon as it opens and nothing beyond it.
- :class:`PauseGate` — one gate every caller passes before an API call; a 429 anywhere closes it
  until the server's reset time.
- :class:`AdaptiveRate` — with no ``--rpm``, a minimum spacing between submits that opens up on
  success and halves the rate on each 429 (additive increase, multiplicative decrease).
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

    Each acquisition stamps a slot; :meth:`acquire` returns the slot's index so the caller can
    :meth:`settle` it to the moment the server answered: the server saw the request no later than
    that, so the next window is counted from there and client/server skew cannot push a request
    into a window the server has already filled.
    """

    def __init__(self, rate: Rate, clock: Clock) -> None:
        self.rate = rate
        self._clock = clock
        self._log: deque[list[float]] = deque()
        self._lock = asyncio.Lock()  # FIFO: waiters are served in arrival order

    async def acquire(self) -> list[float]:
        async with self._lock:
            while True:
                now = self._clock()
                while self._log and self._log[0][0] + self.rate.period <= now:
                    self._log.popleft()
                if len(self._log) < self.rate.limit:
                    slot = [now]
                    self._log.append(slot)
                    return slot
                await asyncio.sleep(self._log[0][0] + self.rate.period - now)

    def settle(self, slot: list[float]) -> None:
        slot[0] = max(slot[0], self._clock())

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

    def pause_for(self, delay: float) -> None:
        until = self._clock() + max(0.0, delay)
        if until > self.resume_at:
            if self.resume_at <= self._clock():
                self.pauses += 1
            self.resume_at = until

    @property
    def paused(self) -> bool:
        return self._clock() < self.resume_at

    async def wait(self) -> None:
        # Sleeps exactly until the reset; loops only when another 429 pushed the reset later.
        while (delay := self.resume_at - self._clock()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)


class AdaptiveRate:
    """AIMD spacing for submits when the quota is unknown.

    Starts unlimited. A 429 sets the rate to half of what was being achieved over the last
    ``window`` seconds (at least ``floor`` per second); each success raises it by ``increase``
    of itself, so it recovers within a few dozen submits. ``None`` rate means no spacing.
    A burst of 429s answering requests sent together is one congestion signal: the rate is cut
    once, then not again until a submit has succeeded. The shared pause gate does the waiting
    for the server's reset; this only smooths the burst that follows it.
    """

    def __init__(
        self, clock: Clock, *, floor: float = 1.0, increase: float = 0.1, window: float = 10.0
    ) -> None:
        self._clock = clock
        self.floor = floor
        self.increase = increase
        self.window = window
        self.rate: float | None = None
        self.decreases = 0
        self._recent: deque[float] = deque()
        self._last = float("-inf")
        self._cut = False  # cut since the last success
        self._lock = asyncio.Lock()

    def _observed(self, now: float) -> float:
        while self._recent and self._recent[0] < now - self.window:
            self._recent.popleft()
        if len(self._recent) < 2:
            return 0.0
        return len(self._recent) / max(now - self._recent[0], 1e-3)

    def on_success(self) -> None:
        self._recent.append(self._clock())
        self._cut = False
        if self.rate is not None:
            self.rate *= 1 + self.increase
            if self.rate > 1000:
                self.rate = None

    def on_rate_limited(self) -> None:
        if self._cut:
            return
        self._cut = True
        self.decreases += 1
        observed = self._observed(self._clock())
        current = self.rate if self.rate is not None else max(observed, self.floor)
        self.rate = max(self.floor, min(current, observed or current) / 2)

    async def wait(self) -> None:
        """Wait until one spacing interval, at the rate in force now, has passed since the
        last submit; waiters go one at a time and pick up rate changes while they wait."""
        if self.rate is None and not self._lock.locked():  # no spacing in force: nothing to wait for
            self._last = self._clock()
            return
        async with self._lock:
            while self.rate is not None:
                due = self._last + 1.0 / self.rate
                now = self._clock()
                if now >= due:
                    break
                await asyncio.sleep(due - now)
            self._last = self._clock()

"""The per-key request quota (pure): fixed windows aligned to the emulator's start, or a sliding
window; and 429s that are no quota's (the server busy).

- :class:`FixedWindowQuota` — window ``i`` covers ``[origin + i*window, origin + (i+1)*window)``;
  a request is allowed while its key has used fewer than ``limit`` requests in the current window,
  and a refusal's reset is the window's end (everything frees at once).
- :class:`SlidingWindowQuota` — a request is allowed while its key has fewer than ``limit``
  accepted requests in the last ``window`` seconds; a refusal's reset is when the oldest of them
  leaves the window (one slot frees per earlier request).
- :class:`BusyRefusals` — one submit in ``every`` is answered 429 whatever the rate, with a reset
  ``reset_s`` from now: load shedding, not a quota.

A refused request uses nothing.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    allowed: bool
    reset_at: float  # loop-clock time the refused request's slot frees (the window ends, when fixed)


class FixedWindowQuota:
    __slots__ = ("_used", "limit", "origin", "window")

    def __init__(self, limit: int | None, window: float, origin: float) -> None:
        self.limit = limit
        self.window = window
        self.origin = origin
        self._used: dict[str, tuple[int, int]] = {}  # key -> (window index, requests used in it)

    def window_index(self, now: float) -> int:
        return max(0, math.floor((now - self.origin) / self.window))

    def acquire(self, key: str, now: float) -> QuotaDecision:
        index = self.window_index(now)
        reset_at = self.origin + (index + 1) * self.window
        if self.limit is None:
            return QuotaDecision(True, reset_at)
        seen_index, used = self._used.get(key, (index, 0))
        if seen_index != index:
            used = 0
        if used >= self.limit:
            return QuotaDecision(False, reset_at)
        self._used[key] = (index, used + 1)
        return QuotaDecision(True, reset_at)

    def reconfigure(self, limit: int | None, window: float) -> None:
        """New limit applies at once; a new window length restarts the count."""
        if window != self.window:
            self._used.clear()
        self.limit = limit
        self.window = window


class SlidingWindowQuota:
    __slots__ = ("_log", "limit", "window")

    def __init__(self, limit: int | None, window: float) -> None:
        self.limit = limit
        self.window = window
        self._log: dict[str, deque[float]] = {}  # key -> when its requests in the window were accepted

    def acquire(self, key: str, now: float) -> QuotaDecision:
        log = self._log.setdefault(key, deque())
        while log and log[0] + self.window <= now:
            log.popleft()
        if self.limit is not None and len(log) >= self.limit:
            return QuotaDecision(False, log[0] + self.window)
        log.append(now)
        return QuotaDecision(True, log[0] + self.window)

    def reconfigure(self, limit: int | None, window: float) -> None:
        """New limit and window apply at once to the requests already in the window."""
        self.limit = limit
        self.window = window


Quota = FixedWindowQuota | SlidingWindowQuota


def make_quota(limiter: str, limit: int | None, window: float, origin: float) -> Quota:
    if limiter == "sliding":
        return SlidingWindowQuota(limit, window)
    return FixedWindowQuota(limit, window, origin)


class BusyRefusals:
    """Every ``every``-th submit (None: none) is refused with a reset ``reset_s`` later."""

    __slots__ = ("_seen", "every", "reset_s")

    def __init__(self, every: int | None, reset_s: float) -> None:
        self.every = every
        self.reset_s = reset_s
        self._seen = 0

    def refuse(self, now: float) -> QuotaDecision | None:
        if self.every is None:
            return None
        self._seen += 1
        if self._seen % self.every:
            return None
        return QuotaDecision(False, now + self.reset_s)

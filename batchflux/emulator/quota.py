"""The per-key request quota: fixed windows aligned to the emulator's start (pure).

Window ``i`` covers ``[origin + i*window, origin + (i+1)*window)``. A request is allowed while its
key has used fewer than ``limit`` requests in the current window; a refused request uses nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    allowed: bool
    reset_at: float  # loop-clock time the current window ends


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

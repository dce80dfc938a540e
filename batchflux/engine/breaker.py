"""A circuit breaker per host: tells an outage from one job's bad luck.

The rule: the breaker opens when every call to the host has failed for ``window_s`` seconds
(at least ``min_failures`` of them, and no success since the first). Why this rule: a healthy run
talks to the API every few milliseconds, so one job's bad luck (a 502 here, a reset connection
there) always sits between successes of other calls and never opens it; a dead host (a network
outage, a DNS failure, a gateway down) answers nothing at all, and after ``window_s`` of that the
run is only spending retries. The count guards a quiet run (a low ``--rpm``, a handful of polls)
from opening on two failures that happen to be far apart.

What "failed" means is the caller's: the engine counts transport failures and 5xx answers; any
other answer (a 4xx, a 429, a FAILED job) proves the host is there and counts as a success.
Pure: the caller gives the clock.
"""

from __future__ import annotations

from collections.abc import Callable

OUTAGE_AFTER_S = 20.0
MIN_FAILURES = 5


class Breaker:
    __slots__ = (
        "_clock",
        "_failing_since",
        "failures",
        "last_error",
        "min_failures",
        "opened_at",
        "window_s",
    )

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        window_s: float = OUTAGE_AFTER_S,
        min_failures: int = MIN_FAILURES,
    ) -> None:
        self._clock = clock
        self.window_s = window_s
        self.min_failures = min_failures
        self._failing_since: float | None = None
        self.failures = 0  # since the last success
        self.last_error = ""
        self.opened_at: float | None = None

    @property
    def open(self) -> bool:
        return self.opened_at is not None

    def success(self) -> None:
        self._failing_since = None
        self.failures = 0

    def failure(self, error: object = "") -> bool:
        """Count one failed call; True when this one opened the breaker (it stays open)."""
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        self.failures += 1
        self.last_error = str(error)
        if self.open or self.failures < self.min_failures or now - self._failing_since < self.window_s:
            return False
        self.opened_at = now
        return True

    def describe(self, host: str) -> str:
        """One line for the user: which host, for how long, and the last error seen."""
        return f"{host} unreachable: {self.failures} calls failed over {self.window_s:g}s ({self.last_error})"

"""When to poll: a pure model of this run's job latencies.

The status endpoint only says QUEUED / PROCESSING / COMPLETED, so every status call is a guess
at whether the job is done yet. The model keeps the latencies of recent completions (each the
midpoint between the last poll that saw the job unfinished and the first that saw it done) and:

- schedules the first poll at the ``first_quantile`` of those latencies;
- after a miss at age ``t``, polls next where ``step_mass`` of the probability mass still left
  beyond ``t`` has completed — late jobs get tighter polls only when completions bunch up there.

Before ``min_samples`` completions it probes on a doubling ladder (0.5 s, 1 s, 2 s, … capped),
so a fast emulator and a 24-second model both converge after the first few jobs.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PollTuning:
    first_quantile: float = 0.6
    step_mass: float = 0.6
    min_step: float = 0.05
    max_step: float = 10.0
    probe_start: float = 0.5
    probe_cap: float = 5.0
    min_samples: int = 3
    memory: int = 256  # recent completions remembered


class LatencyModel:
    def __init__(self, tuning: PollTuning | None = None) -> None:
        self.t = tuning or PollTuning()
        self._recent: deque[float] = deque(maxlen=self.t.memory)
        self._sorted: list[float] = []

    def observe(self, latency: float) -> None:
        if latency < 0:
            return
        if len(self._recent) == self._recent.maxlen:
            old = self._recent[0]
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._recent.append(latency)
        bisect.insort(self._sorted, latency)

    @property
    def samples(self) -> int:
        return len(self._sorted)

    def quantile(self, q: float) -> float:
        s = self._sorted
        if not s:
            raise ValueError("no samples")
        pos = min(max(q, 0.0), 1.0) * (len(s) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    def cdf(self, x: float) -> float:
        s = self._sorted
        return bisect.bisect_right(s, x) / len(s) if s else 0.0

    def first_delay(self) -> float:
        """Seconds after submission for the first status call."""
        if self.samples < self.t.min_samples:
            return self.t.probe_start
        return max(self.t.min_step, self.quantile(self.t.first_quantile))

    def next_delay(self, age: float, previous_step: float) -> float:
        """Seconds from now for the next status call of a job that was unfinished at ``age``."""
        t = self.t
        if self.samples < t.min_samples:
            return min(t.probe_cap, max(t.probe_start, previous_step * 2))
        done = self.cdf(age)
        if done >= 1.0:
            # Slower than every job seen: step out by a fraction of the typical latency.
            step = max(t.min_step, self.quantile(0.5) * 0.25, previous_step * 1.5)
        else:
            target = self.quantile(done + t.step_mass * (1.0 - done))
            step = target - age
        return min(t.max_step, max(t.min_step, step))

"""When to poll: a pure model of this run's job latencies.

The status endpoint only says QUEUED / PROCESSING / COMPLETED, so every status call is a guess
at whether the job is done yet. The model keeps the latencies of recent completions (each the
midpoint between the last poll that saw the job unfinished and the first that saw it done) and:

- schedules a job's first poll at the ``first_quantile`` of those latencies;
- after a miss at age ``t``, polls next where ``step_mass`` of the probability mass still left
  beyond ``t`` has completed, but never sooner than ``min_step_fraction`` of its age; a job older
  than every latency seen steps out by ``probe_fraction`` of its age;
- when the server counts polls toward the quota, both wait for ``counted_mass`` instead: each poll
  then costs a slot a submit could use, and a later look is cheaper than a second one.

The samples are poll times, not true latencies: a job seen done at its first poll contributes that
poll's age. So they bunch where the polls were, the learned distribution is narrower than the real
one, and its quantiles crowd together just past the first poll — a simulated 300-job batch
submitted over a few hundred milliseconds then drew re-polls 0.1 s apart and cost 2.4 status calls
a job. The age-proportional floor on the step keeps that from compounding: 1.6 in the same
simulation (tests/engine/test_latency.py).

A sample is only as good as the polls that took it: a job first seen done at age ``t`` finished
at some time before ``t``, and when polls wait for the quota (a server that counts them), ``t``
runs late. Fed back, late samples schedule later polls, which run later still: a learned run
with polls counted drifted to a detection lag of 20–34 s for 2.4 s jobs. So when the server reports
its own figures (``metrics``: ``queue_time`` + ``inference_time``), :func:`latency_sample` takes
those, which no polling moves; see its docstring.

The run ends when its slowest job is seen done, and a step of a fifth of that job's age is up to a
fifth of its latency late (0.3–0.6 s at the end of a scaled 600-job run). So once a run is down to
its last ``closing_jobs`` and polls are free, each of them older than the ``closing_quantile`` of the
latencies seen is polled every ``closing_fraction`` of its age at most: a few more calls for the
stragglers of four jobs, not for the batch (nor for every job of a four-job batch: the demo's 4
jobs took 37 status calls with every one of them polled so, 10 before).

Until ``min_samples`` completions are known it knows nothing, and polling every job to find out
would cost each of them several calls. So only ``scouts`` jobs are polled meanwhile, on a fine
ladder (every ``probe_fraction`` of their age, at least ``probe_start``); the others wait
(:meth:`admits_scout`) and get their first poll once the scouts have taught the model. A batch of
300 jobs then costs ~1.5 status calls each instead of ~4 (see ``tests/bench/bench_polling.py``).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PollTuning:
    first_quantile: float = 0.65
    step_mass: float = 0.6
    # When the server counts polls toward the quota, a poll costs a slot a submit could have had:
    # the first poll waits for this much of the mass, and so does each next one.
    counted_mass: float = 0.9
    counted_probe_fraction: float = 0.5  # … and a scout steps out by this share of its age
    min_step: float = 0.05
    max_step: float = 60.0
    min_step_fraction: float = 0.2  # a re-poll never comes sooner than this share of the job's age
    probe_start: float = 0.5  # a scout's first poll, and its smallest step
    probe_fraction: float = 0.2  # a scout's (or an unusually slow job's) step, as a share of its age
    min_samples: int = 3
    scouts: int = 5  # jobs polled before the model knows anything; the rest wait for them
    # The run's last few jobs (nothing else left to do) decide when it ends: each is polled every
    # this share of its age at most, unless polls count toward the quota.
    closing_jobs: int = 4
    closing_fraction: float = 0.05
    closing_quantile: float = 0.9  # … once it is older than this share of the jobs seen took
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

    @property
    def ready(self) -> bool:
        """Enough completions seen to schedule polls from the data."""
        return self.samples >= self.t.min_samples

    def admits_scout(self, scouting: int) -> bool:
        """Whether a new job is polled now (as a scout) rather than held until :attr:`ready`."""
        return self.ready or scouting < self.t.scouts

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

    def first_delay(self, *, counted: bool = False) -> float:
        """Seconds after submission for the first status call; later when polls are ``counted``."""
        if not self.ready:
            return self.t.probe_start
        return max(self.t.min_step, self.quantile(self.t.counted_mass if counted else self.t.first_quantile))

    def closing_delay(self, age: float) -> float | None:
        """The longest wait for the next poll of one of the run's last jobs, unfinished at ``age``
        (None: none; it is not late yet, and its own schedule aims where it will be done)."""
        if not self.ready or age < self.quantile(self.t.closing_quantile):
            return None
        return max(self.t.min_step, self.t.closing_fraction * age)

    def next_delay(self, age: float, *, counted: bool = False, closing: bool = False) -> float:
        """Seconds from now for the next status call of a job that was unfinished at ``age``
        (``closing``: one of the run's last few jobs)."""
        if closing and not counted and (late := self.closing_delay(age)) is not None:
            return min(self.next_delay(age), late)
        t = self.t
        done = self.cdf(age) if self.ready else 1.0
        if done >= 1.0:  # nothing known about jobs this old: step out with the job's age
            fraction = t.counted_probe_fraction if counted else t.probe_fraction
            step = max(t.probe_start if not self.ready else t.min_step, fraction * age)
        else:
            mass = t.counted_mass if counted else t.step_mass
            step = self.quantile(done + mass * (1.0 - done)) - age
        return min(t.max_step, max(t.min_step, t.min_step_fraction * age, step))


def latency_sample(unfinished_at: float, done_by: float, metrics: Mapping[str, Any] | None) -> float:
    """A finished job's latency, for the model: it was unfinished at age ``unfinished_at`` (0: never
    seen unfinished) and done by age ``done_by``.

    The server's figures win when it gives them: ``queue_time + inference_time`` is the latency
    itself; ``inference_time`` alone is a floor of it (the queue is missing), which errs towards
    an early poll — one more status call — never towards a late one. Either is kept within what the
    polls saw. Without figures, the middle of the two polls' ages."""
    inference = _seconds(metrics, "inference_time")
    if inference is not None:
        queued = _seconds(metrics, "queue_time") or 0.0
        return min(done_by, max(unfinished_at, queued + inference))
    return (unfinished_at + done_by) / 2 if unfinished_at else done_by


def _seconds(metrics: Mapping[str, Any] | None, key: str) -> float | None:
    value = metrics.get(key) if metrics else None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 86_400:
        return float(value)
    return None

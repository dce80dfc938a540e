"""The quota, learned from the server's 429s when no ``--rate``/``--rpm`` was given (pure).

Segmind limits submits per key in fixed windows and answers the first submit past the limit with a
429 whose ``x-rate-limit-reset-at-utc`` says when the window reopens. Two such answers in a row say
everything: the second reset minus the first is the window's length, and the submits accepted
between the first reset and the second 429 are the window's size (the client submits at full speed
from the moment a window opens, so it fills it). The learner turns that into the same
:class:`~batchflux.engine.pacing.Rate` that ``--rate`` gives, for the same sliding-window limiter.

Between the first 429 and the second, the window's size is not known yet, only that it held the
submits accepted before the first 429 (the run started inside that window, so at least that many).
:meth:`admits` lets that many go at once when the next window opens, and the submits past it one
at a time: the second 429 then refuses one submit, not every submit that was in flight together.

A 429 can come back while calls sent before it are still on the wire: the server took them into
the full window, and their answers land after the 429's. So the window just measured stays open
to them until it ends, and each such answer raises the learned size by one (a burst of 60 calls at a
window's opening once measured 54).

It is revised when the server disagrees: every later 429 that announces a new window is a new
measurement of a full window, and replaces the rate (a 429 below the learned limit lowers it; polls
that count toward the quota show up this way, as fewer submits a window). A long run of windows
without a 429 probes one submit higher, at most once every ``probe_after`` windows: a too-low
estimate (a window that the client did not fill) recovers, and a right one costs one 429 a probe.

When the server counts status and result calls toward the same quota (a 429 on one says so), a
window holds a job's submit and its follow-up calls alike: :class:`FollowUps` measures how many
follow-ups a job makes, for the limiter to keep their room
(:meth:`~batchflux.engine.pacing.SlidingWindowLimiter.keep_room`).

Times are the loop's monotonic clock; a 429's reset is given as a delay from "now".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from batchflux.engine.pacing import Rate

MIN_PERIOD_S = 0.5  # resets closer than this announce the same window (clocks round to the second)
PROBE_AFTER = 20  # windows without a 429 before one more submit a window is tried
MEMORY = 20_000  # accepted calls remembered


class QuotaLearner:
    __slots__ = (
        "_accepted",
        "_clock",
        "_first_count",
        "_last_429",
        "_measured",
        "_reset",
        "probe_after",
        "probes",
        "rate",
    )

    def __init__(self, clock: Callable[[], float], *, probe_after: int = PROBE_AFTER) -> None:
        self._clock = clock
        self.probe_after = probe_after
        self.rate: Rate | None = None
        self.probes = 0
        # When accepted calls were answered: enough to count a whole window of any quota, bounded
        # for a run that never meets a 429 (and so never trims by a learned period).
        self._accepted: deque[float] = deque(maxlen=MEMORY)
        self._reset: float | None = None  # when the last announced window reopens
        self._last_429 = 0.0
        self._first_count = 0  # submits accepted before the first 429
        self._measured: tuple[float, int] = (0.0, 0)  # the measured window's end, and calls accepted in it

    @property
    def settles_at(self) -> float:
        """When the last measured window is over, and its count final (loop clock)."""
        return self._measured[0]

    def admits(self, in_flight: int) -> bool:
        """Whether a submit may go alongside ``in_flight`` others, or should wait to go alone: only
        while the window's size is being measured, past what the first window held."""
        if self.rate is not None or self._reset is None:
            return True
        since = sum(1 for t in self._accepted if t >= self._reset)
        return since + in_flight < self._first_count

    def accepted(self) -> Rate | None:
        """A submit was accepted now. Returns a probed-up rate when it is time to try one."""
        now = self._clock()
        self._accepted.append(now)
        rate = self.rate
        end, count = self._measured
        if rate is not None and now < end:  # an answer that was on the wire as the window's 429 came
            self._measured = (end, count + 1)
            if count + 1 > rate.limit:
                self.rate = Rate(count + 1, rate.period)
                return self.rate
        horizon = now - 4 * (self.rate.period if self.rate else 3600.0)
        while self._accepted and self._accepted[0] < horizon:
            self._accepted.popleft()
        if rate is None or now - self._last_429 < self.probe_after * rate.period:
            return None
        self._last_429 = now  # the probe's own clock: the next one waits as long again
        self.probes += 1
        self.rate = Rate(rate.limit + 1, rate.period)
        return self.rate

    def rate_limited(self, delay: float | None) -> Rate | None:
        """A submit got a 429 that says the window reopens in ``delay`` seconds (None: it did not
        say). Returns the new rate when this 429 measured a window that changes it."""
        now = self._clock()
        self._last_429 = now
        if delay is None:
            return None
        reset = now + max(0.0, delay)
        previous, self._reset = self._reset, reset
        if previous is None:
            self._first_count = len(self._accepted)
            return None
        if reset - previous < MIN_PERIOD_S:
            if reset < previous:
                self._reset = previous  # an earlier-announced window: keep the later reset
            return None
        # The window this 429 closes began at the previous reset, or (windows passed without a 429
        # since) one known period before this reset.
        period = reset - previous
        if self.rate is not None and period > 1.5 * self.rate.period:
            period = self.rate.period
        count = sum(1 for t in self._accepted if t >= reset - period)
        if count < 1:
            return None
        measured = Rate(count, _round_period(period))
        self._measured = (reset, count)
        if measured == self.rate:
            return None
        self.rate = measured
        return measured


def _round_period(period: float) -> float:
    """Two resets measure a window to the millisecond at best, and quotas have windows of whole
    seconds: 5.999 is 6. A window that is not within 1 % of whole seconds keeps its milliseconds."""
    whole = round(period)
    return float(whole) if whole >= 1 and abs(period - whole) <= 0.01 * period else round(period, 3)


def suggest_flag(rate: Rate) -> str:
    """The option a user would pass to start at this rate: ``--rpm N`` when the window is a minute,
    else ``--rate N/Ps``."""
    if abs(rate.period - 60.0) < 0.5:
        return f"--rpm {rate.limit}"
    return f"--rate {rate.limit}/{rate.period:g}s"


class FollowUps:
    """The calls a finished job made after its submit (its status polls and its result fetch),
    averaged over the last ``memory`` jobs; ``prior`` (one poll, one fetch) counts as ``weight``
    jobs until real ones are in."""

    __slots__ = ("_recent", "_sum", "prior", "weight")

    def __init__(self, prior: float = 2.0, weight: int = 4, memory: int = 256) -> None:
        self.prior = prior
        self.weight = weight
        self._recent: deque[int] = deque(maxlen=memory)
        self._sum = 0

    def observe(self, calls: int) -> None:
        if len(self._recent) == self._recent.maxlen:
            self._sum -= self._recent[0]
        self._recent.append(calls)
        self._sum += calls

    @property
    def mean(self) -> float:
        return (self._sum + self.prior * self.weight) / (len(self._recent) + self.weight)

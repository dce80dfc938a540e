"""The quota, learned from the server's 429s when no ``--rate``/``--rpm`` was given (pure).

The server answers the first submit past its quota with a 429 whose ``x-rate-limit-reset-at-utc``
says when a slot frees. Segmind documents neither the window's kind nor its length, so the learner
reads both off the 429s and turns them into the same :class:`~batchflux.engine.pacing.Rate` that
``--rate`` gives, with a :attr:`~QuotaLearner.kind` for the limiter to count by:

- **fixed** windows free every slot at once, at the window's end: two 429s with different resets
  measure the window (the second reset minus the first), and the submits accepted between the first
  reset and the second 429 its size (the client submits at full speed from the reopening);
- **sliding** windows free one slot a period after each accepted call: a 429's reset is one period
  after the call that took the oldest slot, as the first 429's is after the run's first call. The
  server counted that call after it was sent and before it answered: on a busy machine the answer is
  read tens or hundreds of milliseconds late, so a call is found, and the window measured, by the
  span from its send to its answer (a whole number of seconds in it is the window), not by the
  answer alone.

Between the first 429 and the second, the window's size is not known yet. :meth:`admits` lets the
first window's calls whose slots are free under either kind go at once, and the rest one at a time:
the second 429 then refuses one submit, not every submit that was in flight together. When both
kinds explain the first two 429s, the one whose length is nearer whole seconds wins (a run that
began just after a fixed window opened reads as sliding a cushion short; a sliding one read as
fixed is a cushion long, and is read again at its first full 429).

A 429 can come back while calls sent before it are still on the wire: the server took them into
the full window, and their answers land after the 429's. So the window just measured stays open
to them until it ends, and each such answer raises the learned size by one (a burst of 60 calls at a
window's opening once measured 54).

The rate is a hypothesis the server can refute. A later 429 *fits* it when the client had its window
full (``used`` at the limit or one under it: a probe), its reset is where the quota puts one (on
a fixed window's boundary, or one period after an accepted call), and the window it closes holds
half the limit at least. It then measures the window again, exactly. Any other 429 — under the
limit, with a reset no window explains, or closing a window all but empty, as from a server that
refuses a share of submits under load whatever the rate — is load: the rate is kept, and rises by one
a window (additive increase) until a 429 fits again; the pacer's pauses do the pacing meanwhile. With
no such 429s, a long run of windows without one probes one submit higher, at most once every
``probe_after`` windows: a too-low estimate recovers, and a right one costs one 429 a probe.

When the server counts status and result calls toward the same quota (a 429 on one says so), a
window holds a job's submit and its follow-up calls alike: :class:`FollowUps` measures how many
follow-ups a job makes, for the limiter to keep their room
(:meth:`~batchflux.engine.pacing.SlidingWindowLimiter.keep_room`).

Times are the loop's monotonic clock; a 429's reset is given as a delay from "now".
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable

from batchflux.engine.pacing import Rate

MIN_PERIOD_S = 0.5  # resets closer than this announce the same window (clocks round to the second)
PROBE_AFTER = 20  # windows without a 429 before one more submit a window is tried
MEMORY = 20_000  # accepted calls remembered
FIXED, SLIDING = "fixed", "sliding"
FIT_S = 0.03  # a reset this close to where a window quota puts it fits that quota
ANSWER_LAG_S = 0.05  # a call's send to its answer, when not told (the server counted it in between)
CUSHION_S = 0.2  # how long after a reset the client comes back, at most (the 429 pause's cushion and jitter)
# While the window is measured, its calls come back this long after the first 429's reset at the
# earliest: a sliding window's next 429 then lands more than FIT_S past one period after the first's,
# where fixed windows that the run began at the opening of put it exactly (see _measure). With no
# gap, a sliding window paced place by place read as fixed, and its next window met 46 429s.
APART_S = 0.05
PERIOD_ESTIMATES = 5  # a sliding window's length: the longest of the last few measurements


class QuotaLearner:
    __slots__ = (
        "_accepted",
        "_clock",
        "_doubt_until",
        "_first_count",
        "_first_reset",
        "_last_fit",
        "_measured",
        "_periods",
        "_raised",
        "_reset",
        "_sent",
        "boundary",
        "busy",
        "fitted",
        "kind",
        "probe_after",
        "probes",
        "rate",
    )

    def __init__(self, clock: Callable[[], float], *, probe_after: int = PROBE_AFTER) -> None:
        self._clock = clock
        self.probe_after = probe_after
        self.rate: Rate | None = None
        self.kind: str | None = None  # FIXED or SLIDING, once a rate is learned
        self.boundary: float | None = None  # fixed: the reset of the last 429 that fit (a window opens)
        self.fitted = False  # whether the last 429 fit the quota (False: the server was busy)
        self.probes = 0
        self.busy = 0  # 429s that fit no quota
        # When accepted calls were answered: enough to count a whole window of any quota, bounded
        # for a run that never meets a 429 (and so never trims by a learned period).
        self._accepted: deque[float] = deque(maxlen=MEMORY)
        self._sent: deque[float] = deque(maxlen=MEMORY)  # and when each was sent: counted in between
        self._reset: float | None = None  # when the last announced window reopens (while measuring)
        self._last_fit = 0.0  # the last 429 that fit the quota, or the last probe
        self._doubt_until = 0.0  # a 429 that fit no quota came: probe upwards every window until then
        self._raised = 0.0  # the last additive increase
        self._first_count = 0  # submits accepted before the first 429
        self._first_reset = 0.0  # and when the first 429 said its window reopens
        self._measured: tuple[float, int] = (0.0, 0)  # the measured window's end, and calls accepted in it
        self._periods: deque[float] = deque(maxlen=PERIOD_ESTIMATES)

    @property
    def settles_at(self) -> float:
        """When the last measured window is over, and its count final (loop clock)."""
        return self._measured[0]

    @property
    def doubting(self) -> bool:
        """Whether 429s that fit no quota came lately (the rate then rises by one a window)."""
        return self._clock() < self._doubt_until

    def admits(self, in_flight: int) -> bool:
        """Whether a submit may go alongside ``in_flight`` others, or should wait to go alone: while
        the window is being measured (after the first 429, before the rate), the first window's
        calls whose slots are free under either kind of window (one first-429-reset's distance
        after they were taken, at the earliest) go at once, and the rest one at a time. So the 429
        that ends the measurement refuses one submit, not every submit in flight together, and
        a sliding window's slots, freed one by one, are taken one by one."""
        reset = self._reset
        if self.rate is not None or reset is None or in_flight == 0:
            return True
        first = self._accepted[0] if self._accepted else reset
        freed_before = self._clock() - (reset - first)
        freed = sum(1 for t in self._accepted if t <= freed_before and t < reset)
        since = sum(1 for t in self._accepted if t >= reset)
        return since + in_flight < freed

    @property
    def measuring(self) -> bool:
        """Whether the window is being measured: after the first 429, before the rate."""
        return self.rate is None and self._reset is not None

    def frees_at(self, place: int) -> float | None:
        """While the window is measured: when the ``place``-th slot (from 0) of the window after the
        first 429 is free under either kind of window (a fixed one frees them all at the reset), and
        :data:`APART_S` after that reset at the earliest. A sliding window frees the first window's
        slots one by one, a window after the server counted each call, which it did before the call
        was answered: the first 429's reset is a window after the run's first call (:meth:`_span`
        reads that window off it), so the ``place``-th answer plus that window is when its slot is
        free at the latest. Past the first window's calls, the last of theirs: those submits go one
        at a time (:meth:`admits`), and sent at the reset they met slots not yet free (34–41 429s
        for 33 in a 10-a-second test, 1 run in 3). None: not measuring."""
        reset = self._first_reset
        if not self.measuring:
            return None
        first = [t for t in itertools.islice(self._accepted, place + 1) if t < reset]
        if not first:
            return reset + APART_S
        window = self._span(reset, (self._sent[0], self._accepted[0]))
        return max(reset + APART_S, first[-1] + window)

    def recent(self, period: float) -> list[float]:
        """When the calls accepted in the last ``period`` seconds were answered."""
        since = self._clock() - period
        return [t for t in self._accepted if t > since]

    def accepted(self, sent: float | None = None) -> Rate | None:
        """A submit sent at ``sent`` (None: not told) was accepted now: the server counted it in
        between. Returns a raised rate when it is time to try one more a window."""
        now = self._clock()
        self._accepted.append(now)
        self._sent.append(now - ANSWER_LAG_S if sent is None else min(sent, now))
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
            self._sent.popleft()
        if rate is None:
            return None
        if now < self._doubt_until:  # additive increase: one more each window until a 429 fits
            if now - self._raised < rate.period:
                return None
        elif now - self._last_fit < self.probe_after * rate.period:
            return None
        else:
            self._last_fit = now  # the probe's own clock: the next one waits as long again
            self.probes += 1
        self._raised = now
        self.rate = Rate(rate.limit + 1, rate.period)
        return self.rate

    def rate_limited(self, delay: float | None, *, used: int | None = None) -> Rate | None:
        """A submit got a 429 that says the window reopens in ``delay`` seconds (None: it did not
        say); ``used``: the calls the client had in the window it paces by (None: it paces by none).
        Returns the new rate when this 429 measured a window that changes it. Sets :attr:`fitted`."""
        now = self._clock()
        self.fitted = False
        if delay is None:
            self._last_fit = now
            return None
        reset = now + max(0.0, delay)
        if self.rate is None:
            return self._measure(now, reset)
        return self._judge(now, reset, used)

    # ---- the first rate ------------------------------------------------------------------------

    def _measure(self, now: float, reset: float) -> Rate | None:
        """Before any rate: the first 429 ends the window the run started in; the next one with
        another reset measures a window, sliding if its reset, like the first one's, is one same
        period after a submit that left the window full; else fixed, from one reset to the next."""
        self._last_fit = now
        previous, self._reset = self._reset, reset
        if previous is None:
            self._first_count = len(self._accepted)
            self._first_reset = reset
            return None
        if abs(reset - previous) < FIT_S or reset < previous:
            self._reset = max(reset, previous)  # the same window, or an earlier-announced one
            return None
        first = (self._sent[0], self._accepted[0]) if self._accepted else None
        period = self._span(self._first_reset, first) if first is not None else 0.0
        # Resets exactly a period apart fit fixed windows that the run began at the opening of:
        # then both kinds explain the 429s, and the fixed windows' boundaries are known.
        if period >= MIN_PERIOD_S and abs(reset - self._first_reset - period) > FIT_S:
            anchor = self._anchor(reset - period)
            if (
                anchor is not None
                and self._count(reset - period - FIT_S, now) >= max(1, self._first_count) - 1
            ):
                sliding = max(period, self._span(reset, anchor))
                # A run that began just after a fixed window opened looks sliding too, a cushion
                # short; a sliding window read as fixed is a cushion long. Quotas have windows of
                # whole seconds: the reading nearer to them is the window, and fixed on a tie (two
                # fixed windows' resets some windows apart are whole seconds either way).
                fixed = reset - previous
                if fixed < MIN_PERIOD_S or _off_whole(sliding) < _off_whole(fixed):
                    self.kind = SLIDING
                    self._periods.extend((period, self._span(reset, anchor)))
                    length = self._sliding_period()
                    # The size is the first window's, which the first 429 showed full: its calls
                    # began with the run's (or a period before its reset) and ended at the pause,
                    # so no call's span straddles either edge. Counted from this 429's window
                    # instead, the calls answered after its edge but counted before it added to
                    # the size (64 for 60, measured, when the first window's answers spread 0.34 s).
                    size = self._count(self._first_reset - length - FIT_S / 3, self._first_reset)
                    return self._fit(now, reset, length, reset - length - FIT_S / 3, count=size)
        if reset - previous < MIN_PERIOD_S:
            return None
        self.kind = FIXED
        return self._fit(now, reset, reset - previous, reset - (reset - previous))

    # ---- later 429s: the quota's, or the server's load -----------------------------------------

    def _judge(self, now: float, reset: float, used: int | None) -> Rate | None:
        """A 429 fits the quota when the client had its window full (``used`` at the learned limit
        or one under it: a probe) and its reset is where the quota puts one: on the fixed windows'
        boundaries, or one period after an accepted call that opened a sliding window. Any other
        429 is the server's load: it is paced by its pause, and the rate rises by one a window."""
        assert self.rate is not None
        period, limit = self.rate.period, self.rate.limit
        full = used is None or used >= limit - 1
        if self.kind == FIXED and self.boundary is not None:
            windows = (reset - self.boundary) / period
            on_grid = abs(windows - round(windows)) * period <= FIT_S
            if on_grid and round(windows) == 0:  # another 429 of a window already measured
                self.fitted = True
                return None
            if on_grid and round(windows) == 1:  # consecutive windows: their boundaries measure the length
                period = reset - self.boundary
            if full and len(self._accepted) >= limit:
                # A full window that reopens one whole number of seconds after the call that filled
                # it first slides: read as fixed, its length was a cushion long.
                sliding = self._span(reset, (self._sent[-limit], self._accepted[-limit]))
                near = abs(sliding - period) <= CUSHION_S  # the reading it would be, a cushion off
                whole = near and sliding >= MIN_PERIOD_S and _off_whole(sliding) <= 0.01
                if whole and (not on_grid or _off_whole(sliding) < _off_whole(period)):
                    self.kind, self.boundary = SLIDING, None
                    self._periods.clear()
                    self._periods.append(sliding)
                    return self._fit(now, reset, sliding, reset - sliding - FIT_S / 3)
            # The window the reset closes holds half the limit at least, as a sliding one must: a
            # busy server's reset can land on the grid too (the limiter sends at each opening),
            # and counted from the one call in its window the quota read 1 a window, for good.
            held = self._count(reset - period - FIT_S, now) >= limit / 2
            if on_grid and full and held:
                return self._fit(now, reset, period, reset - period)
            shorter = None if on_grid else self._shorter(reset, period, limit)
            if shorter is not None:
                return self._fit(now, reset, shorter, reset - shorter)
        elif self.kind == SLIDING:
            anchor = self._anchor(reset - period)
            # The window from the call whose slot frees to now holds half the limit at least (not
            # the client's ``used``: a quota the rate has risen past holds its own limit, under the
            # learned one); a busy server's reset can land on a recent call's span, with the window
            # all but empty.
            held = self._count(reset - period - FIT_S, now) >= limit / 2
            if anchor is not None and held:
                self._periods.append(self._span(reset, anchor))
                return self._fit(
                    now, reset, self._sliding_period(), reset - self._sliding_period() - FIT_S / 3
                )
        self.busy += 1
        self._doubt_until = now + self.probe_after * period
        return None

    def _fit(
        self, now: float, reset: float, period: float, start: float, count: int | None = None
    ) -> Rate | None:
        """A 429 that fits the quota: the window from ``start`` to it holds the limit (and the
        answers still on the wire add to it until ``reset``), or ``count`` is the limit, final."""
        self.fitted = True
        self._last_fit = now
        self._doubt_until = 0.0
        if self.kind == FIXED:
            self.boundary = reset
        final = count is not None
        if count is None:
            count = self._count(start, now)
        if count < 1:
            return None
        measured = Rate(count, _round_period(period))
        self._measured = (now if final else reset, count)
        if measured == self.rate:
            return None
        self.rate = measured
        return measured

    def _shorter(self, reset: float, period: float, limit: int) -> float | None:
        """Fixed windows a whole fraction of the learned one, of whole seconds, if this 429's reset
        is on their grid and the window before it holds at least that fraction of the limit: two
        resets some windows apart measured several windows as one (the client, or its polls, had
        left the window between them unfilled)."""
        assert self.boundary is not None
        for parts in range(2, int(period / MIN_PERIOD_S) + 1):
            length = period / parts
            if length < 1.0 - FIT_S or _off_whole(length) > 0.01:
                continue
            windows = (reset - self.boundary) / length
            on_grid = abs(windows - round(windows)) * length <= FIT_S
            if on_grid and self._count(reset - length - FIT_S, reset) >= limit / parts - 1:
                return length
        return None

    def _count(self, start: float, end: float) -> int:
        return sum(1 for t in self._accepted if start <= t <= end)

    def _anchor(self, at: float) -> tuple[float, float] | None:
        """The accepted call (sent, answered) a sliding window's slot was taken by, if one can have
        been counted at ``at``: the server counts a call after it is sent and before it answers,
        however late a busy machine reads the answer. The one answered nearest after ``at``."""
        near = [
            (sent, t)
            for sent, t in zip(self._sent, self._accepted, strict=True)
            if sent - FIT_S <= at <= t + FIT_S
        ]
        return min(near, key=lambda call: abs(call[1] - at)) if near else None

    @staticmethod
    def _span(reset: float, call: tuple[float, float]) -> float:
        """A sliding window's length from a 429's ``reset`` and the (sent, answered) call whose slot
        it frees: the server counted the call in between, so the window is at least the reset minus
        the answer, at most the reset minus the send. Quotas have windows of whole seconds: one in
        that span (a reset's precision either side) is the window; else the reset minus the answer."""
        sent, answered = call
        shortest, longest = reset - answered, reset - sent
        whole = max(1, math.ceil(shortest - FIT_S))  # the first whole second the span reaches
        return float(whole) if whole <= longest + FIT_S else shortest

    def _sliding_period(self) -> float:
        # Each measurement is a whole number of seconds, or the reset minus an answer, which comes
        # back after the server counted its call: short by that much, never long.
        return max(self._periods)


def _off_whole(period: float) -> float:
    """How far a window's length is from whole seconds, as a share of it."""
    return abs(period - max(1, round(period))) / period


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

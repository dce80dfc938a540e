"""Learning the quota from 429s: a table over a hand-driven clock, and a simulated fixed-window server."""

from __future__ import annotations

import pytest

from batchflux.emulator.quota import FixedWindowQuota, SlidingWindowQuota
from batchflux.engine.pacing import Rate
from batchflux.engine.quota import FollowUps, QuotaLearner, suggest_flag


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drive(learner: QuotaLearner, clock: Clock, steps: list[tuple[float, str, float | None]]) -> list[Rate]:
    """Steps: (time, "ok" | "429", the 429's delay). Returns the rates the learner announced."""
    changes = []
    for t, what, delay in steps:
        clock.now = t
        changed = learner.accepted() if what == "ok" else learner.rate_limited(delay)
        if changed is not None:
            changes.append(changed)
    return changes


def window(start: float, n: int, spacing: float = 0.01) -> list[tuple[float, str, float | None]]:
    return [(start + i * spacing, "ok", None) for i in range(n)]


def test_two_429s_in_a_row_measure_the_window() -> None:
    clock = Clock()
    learner = QuotaLearner(clock)
    steps = [*window(0.0, 10), (0.2, "429", 5.8)]  # a window of 6 s began before the client started
    steps += [*window(6.0, 10), (6.2, "429", 5.8)]  # at the reset it fills the next one: 10 fit
    assert drive(learner, clock, steps) == [Rate(10, 6.0)]
    assert learner.rate == Rate(10, 6.0)
    assert suggest_flag(learner.rate) == "--rate 10/6s"


def test_a_burst_of_429s_for_one_window_measures_nothing_more() -> None:
    clock = Clock()
    learner = QuotaLearner(clock)
    steps = [*window(0.0, 5), (0.1, "429", 5.9), (0.12, "429", 5.88), (0.13, "429", 5.87)]
    assert drive(learner, clock, steps) == []
    assert learner.rate is None


def test_a_429_below_the_learned_limit_lowers_it() -> None:
    clock = Clock()
    learner = QuotaLearner(clock)
    steps = [*window(0.0, 10), (0.2, "429", 5.8), *window(6.0, 10), (6.2, "429", 5.8)]
    steps += [*window(12.0, 7), (12.1, "429", 5.9)]  # polls took 3 of the window's 10 this time
    assert drive(learner, clock, steps) == [Rate(10, 6.0), Rate(7, 6.0)]


def test_windows_without_a_429_between_measure_only_the_last() -> None:
    clock = Clock()
    learner = QuotaLearner(clock)
    steps = [*window(0.0, 10), (0.2, "429", 5.8), *window(6.0, 10), (6.2, "429", 5.8)]
    steps += [*window(12.0, 6), *window(18.0, 6), *window(24.0, 11), (24.2, "429", 5.8)]
    assert drive(learner, clock, steps) == [Rate(10, 6.0), Rate(11, 6.0)]


def test_it_probes_one_higher_after_quiet_windows_and_steps_back_on_a_429() -> None:
    clock = Clock()
    learner = QuotaLearner(clock, probe_after=3)
    steps = [*window(0.0, 10), (0.2, "429", 5.8), *window(6.0, 10), (6.2, "429", 5.8)]
    for w in range(2, 6):  # four windows of 10, no 429: the third one's first submit probes
        steps += window(6.0 * w, 10)
    changes = drive(learner, clock, steps)
    assert changes == [Rate(10, 6.0), Rate(11, 6.0)]
    assert learner.probes == 1
    assert drive(learner, clock, [*window(36.0, 10), (36.2, "429", 5.8)]) == [
        Rate(10, 6.0)
    ]  # the 11th: refused


@pytest.mark.parametrize("delay", [None])
def test_a_429_without_a_reset_teaches_nothing(delay: float | None) -> None:
    clock = Clock()
    learner = QuotaLearner(clock)
    assert drive(learner, clock, [*window(0.0, 10), (1.0, "429", delay), (7.0, "429", delay)]) == []


def test_against_a_simulated_fixed_window_server_it_settles_at_the_limit() -> None:
    """A server of 60 per 6 s windows; a client that, once it knows a rate, sends exactly that many
    per window (its limiter), and until then sends 16 at a time until refused."""
    clock = Clock()
    learner = QuotaLearner(clock)
    limit, period = 60, 6.0
    refused = 0
    for w in range(30):
        start = w * period
        allowed = learner.rate.limit if learner.rate else 10_000
        for i in range(min(allowed, 200)):
            clock.now = start + 0.001 * (i + 1)
            if i < limit:
                learner.accepted()
            else:
                refused += 1
                learner.rate_limited(period - 0.001 * (i + 1))
                break
    assert learner.rate is not None
    assert learner.rate.period == period
    assert learner.rate.limit in (limit, limit + 1)  # at the limit, or probing one above it
    assert refused <= 2 + 30 // learner.probe_after + 1  # two to learn, one per probe


def test_answers_on_the_wire_as_the_429_came_raise_the_measured_size() -> None:
    clock = Clock()
    learner = QuotaLearner(clock)
    steps = [*window(0.0, 10), (0.2, "429", 5.8)]
    # The next window opens with a burst: 8 answers are back when the 429 that closes it comes,
    # 2 more (sent before it, accepted into the same window) land after it.
    steps += [*window(6.0, 8, spacing=0.001), (6.01, "429", 5.99), *window(6.02, 2, spacing=0.001)]
    assert drive(learner, clock, steps) == [Rate(8, 6.0), Rate(9, 6.0), Rate(10, 6.0)]
    # Once the window is over, an accepted call is the next window's, and changes nothing.
    assert drive(learner, clock, window(12.0, 11)) == []
    assert learner.rate == Rate(10, 6.0)


def test_follow_ups_start_from_the_prior_and_follow_the_recent_jobs() -> None:
    followups = FollowUps(prior=2.0, weight=4, memory=8)
    assert followups.mean == 2.0
    for _ in range(4):
        followups.observe(3)
    assert followups.mean == pytest.approx(2.5)  # half prior, half jobs
    for _ in range(100):
        followups.observe(4)
    assert followups.mean == pytest.approx((8 * 4 + 4 * 2.0) / 12)  # only the last 8 jobs count


@pytest.mark.parametrize(
    ("measured", "period"), [(5.999, 6.0), (6.03, 6.0), (0.999, 1.0), (0.75, 0.75), (1.5, 1.5)]
)
def test_a_measured_window_is_rounded_to_whole_seconds_when_within_a_percent(
    measured: float, period: float
) -> None:
    clock = Clock()
    learner = QuotaLearner(clock)
    steps = [*window(0.0, 3), (0.05, "429", 0.95)]  # the window reopens at 1.0
    steps += [*window(1.0, 3, spacing=0.001), (1.01, "429", measured - 0.01)]  # and again ``measured`` on
    assert drive(learner, clock, steps) == [Rate(3, period)]


# ---- which 429s are a quota's, and of which kind ------------------------------------------------


def learned_fixed(clock: Clock) -> QuotaLearner:
    """A learner that measured 10 per 6 s fixed windows, the last one reopening at 12 (the run
    began a second into a window)."""
    learner = QuotaLearner(clock)
    drive(learner, clock, [*window(1.0, 10), (1.2, "429", 4.8), *window(6.1, 10), (6.2, "429", 5.8)])
    assert (learner.rate, learner.kind, learner.boundary) == (Rate(10, 6.0), "fixed", 12.0)
    return learner


def test_a_429_under_the_learned_limit_is_load_not_a_smaller_quota() -> None:
    clock = Clock()
    learner = learned_fixed(clock)
    drive(learner, clock, window(12.0, 3))
    clock.now = 12.05
    assert learner.rate_limited(1.2, used=3) is None  # 3 of 10 used: the quota did not refuse it
    assert (learner.fitted, learner.busy, learner.rate) == (False, 1, Rate(10, 6.0))
    assert learner.doubting


def test_a_full_window_refused_off_the_windows_boundaries_is_load_too() -> None:
    clock = Clock()
    learner = learned_fixed(clock)
    drive(learner, clock, window(12.0, 10))
    clock.now = 12.2
    assert learner.rate_limited(1.2, used=10) is None  # reset at 13.4: no boundary of 6 s windows
    assert (learner.fitted, learner.busy) == (False, 1)


def test_a_full_window_refused_at_its_end_is_the_quota_exactly() -> None:
    clock = Clock()
    learner = learned_fixed(clock)
    drive(learner, clock, window(12.0, 9))
    clock.now = 12.2
    assert learner.rate_limited(5.8, used=9) == Rate(9, 6.0)  # a probe's size, one under: fits
    assert (learner.fitted, learner.busy, learner.boundary) == (True, 0, 18.0)


def test_a_429_on_a_boundary_with_the_window_all_but_empty_is_load_too() -> None:
    """A busy server's reset can land on the windows' grid (the limiter sends at each opening, and
    a reset a little shorter than the window puts it there). Read as the quota while the client
    counted its window full, the one call in it measured a quota of 1 a window, and each later 429
    on the grid held it there: ~0.7 jobs a second for the rest of a run, seen once."""
    clock = Clock()
    learner = learned_fixed(clock)
    drive(learner, clock, window(17.9, 1))
    clock.now = 17.95
    assert learner.rate_limited(0.05, used=9) is None  # reset at 18: on the grid, 1 call in its window
    assert (learner.fitted, learner.busy, learner.rate) == (False, 1, Rate(10, 6.0))


def test_after_load_429s_the_rate_rises_by_one_a_window_until_a_429_fits() -> None:
    clock = Clock()
    learner = learned_fixed(clock)
    drive(learner, clock, window(12.0, 3))
    clock.now = 12.05
    learner.rate_limited(1.2, used=3)
    rises = drive(learner, clock, [(12.0 + 0.5 * i, "ok", None) for i in range(1, 36)])
    assert rises == [Rate(11, 6.0), Rate(12, 6.0), Rate(13, 6.0)]  # one per 6 s: 12.5, 18.5, 24.5
    drive(learner, clock, window(30.0, 10))
    clock.now = 30.1
    assert learner.rate_limited(5.9, used=13) == Rate(10, 6.0)  # at a boundary, the window full
    assert (learner.fitted, learner.doubting) == (True, False)  # the quota again, exactly


def test_a_sliding_window_is_told_by_resets_one_period_after_the_calls_that_filled_it() -> None:
    clock = Clock()
    learner = QuotaLearner(clock)
    steps = [*window(0.0, 10), (0.1, "429", 5.9)]  # the first call's slot frees at 6.0
    # The client comes back at 6.1 (its cushion), when all ten slots are free, and takes them; the
    # eleventh is refused until the slot it took first frees: 12.1, not 12.0 as a fixed window's.
    steps += [*window(6.1, 10), (6.2, "429", 12.1 - 6.2)]
    assert drive(learner, clock, steps) == [Rate(10, 6.0)]
    assert learner.kind == "sliding"
    drive(learner, clock, [*window(12.1, 10), *window(18.1, 10)])
    clock.now = 21.0
    assert learner.rate_limited(1.2, used=10) is None  # frees at 22.2: no call at 16.2 took a slot
    assert (learner.fitted, learner.busy) == (False, 1)
    clock.now = 24.05
    assert learner.rate_limited(0.05, used=10) is None  # frees as the call at 18.1 leaves: the quota
    assert (learner.fitted, learner.rate, learner.doubting) == (True, Rate(10, 6.0), False)


def test_load_429s_at_a_steady_share_of_submits_never_collapse_the_rate() -> None:
    """A server with no quota refuses one submit in nine, reset 1.2 s on, and a client that honours
    each pause and paces by what it learned: the rate never falls below the pauses' ceiling."""
    clock = Clock()
    learner = QuotaLearner(clock)
    sent, t = 0, 0.0
    lowest = 10_000
    while t < 300.0:
        rate = learner.rate
        burst = rate.limit if rate else 16
        paused_until = t
        for i in range(burst):
            clock.now = t + 0.005 * i
            sent += 1
            if sent % 9 == 0:
                learner.rate_limited(1.2, used=i)
                paused_until = clock.now + 1.3
                break
            learner.accepted()
        if learner.rate is not None:
            lowest = min(lowest, learner.rate.limit / learner.rate.period)
        t = max(paused_until, t + (learner.rate.period if learner.rate else 0.0))
    assert learner.rate is not None
    assert lowest >= 8 / 1.5  # eight submits per pause: the rate the pauses allow
    assert learner.rate.limit / learner.rate.period > 8 / 1.3  # and it kept rising past them


def test_a_run_that_began_as_a_fixed_window_opened_is_not_taken_for_a_sliding_one() -> None:
    clock = Clock()
    learner = QuotaLearner(clock)
    # Fixed 6 s windows opening at 0, 6, 12; the run began 0.1 s into one, and came back 0.1 s after
    # the reset: read as sliding that is a 5.9 s window, read as fixed a 6 s one.
    steps = [*window(0.1, 10, spacing=0.001), (0.12, "429", 5.88)]
    steps += [*window(6.1, 10, spacing=0.001), (6.12, "429", 5.88)]
    assert drive(learner, clock, steps) == [Rate(10, 6.0)]
    assert learner.kind == "fixed"


@pytest.mark.parametrize(("lag", "connecting"), [(0.002, 0.0), (0.002, 0.04), (0.08, 0.04)])
@pytest.mark.parametrize("limiter", ["fixed", "sliding"])
def test_calls_sent_as_their_places_free_are_accepted_and_the_next_429_tells_the_windows_kind(
    limiter: str, lag: float, connecting: float
) -> None:
    """While the window is measured, the calls go as :meth:`QuotaLearner.frees_at` says, against
    the emulator's own quotas. A fixed window that the run began at the opening of, and a sliding
    one, look alike to here: each first 429 frees the first call's slot a window on. Sent back at
    the reset, place by place, the sliding window's next 429 would come a window after the first's
    too, and read fixed."""
    clock = Clock()
    learner = QuotaLearner(clock)
    server = FixedWindowQuota(10, 6.0, origin=0.0) if limiter == "fixed" else SlidingWindowQuota(10, 6.0)

    def call(sent: float, answer_lag: float = lag) -> Rate | None:
        """Counted ``lag / 2`` after it is sent, answered ``answer_lag`` after that."""
        decision = server.acquire("key", sent + lag / 2)
        clock.now = sent + lag / 2 + answer_lag
        if decision.allowed:
            assert learner.accepted(sent) is None
            return None
        assert learner.rate is None, "a call refused after the rate was learned"
        rate = learner.rate_limited(decision.reset_at - clock.now)
        assert rate is not None or learner.measuring
        return rate

    call(0.0, answer_lag=lag + connecting)  # the run's first call may set up the connection
    for i in range(1, 10):
        call(0.033 * i)
    assert call(0.4) is None  # the eleventh is refused, and the window is measured from here
    assert learner.measuring
    places = [learner.frees_at(place) for place in range(10)]
    assert learner.frees_at(10) == places[-1]  # past the first window's calls: after the last
    for at in places:
        assert at is not None
        assert call(at) is None  # accepted: the place was free
        assert learner.measuring
    assert call(clock.now + 0.01) == Rate(10, 6.0)  # the window full again: measured
    assert learner.kind == limiter
    assert learner.frees_at(0) is None  # measured: the limiter paces from here


def test_a_sliding_window_read_as_fixed_is_read_again_at_its_first_full_429() -> None:
    clock = Clock()
    learner = QuotaLearner(clock)
    # Read as fixed windows of 6.1 s (the client came back 0.1 s after the reset; ``window`` spacing).
    learned = drive(
        learner, clock, [*window(1.0, 10), (1.2, "429", 4.8), *window(6.1, 10), (6.2, "429", 5.9)]
    )
    assert (learned, learner.kind) == ([Rate(10, 6.1)], "fixed")
    drive(learner, clock, window(12.2, 10))
    clock.now = 12.3
    # Full, and refused until the slot of the window's first call frees: 6 s after it, off the grid.
    assert learner.rate_limited(18.2 - 12.3, used=10) == Rate(10, 6.0)
    assert (learner.kind, learner.fitted, learner.busy) == ("sliding", True, 0)


def late_answers(learner: QuotaLearner, clock: Clock, start: float, n: int, lag: float) -> None:
    """``n`` calls sent 10 ms apart from ``start``, each counted by the server 5 ms after it was sent
    and its answer read ``lag`` seconds after that (a busy machine reads answers late)."""
    for i in range(n):
        sent = start + 0.01 * i
        clock.now = sent + 0.005 + lag
        learner.accepted(sent)


@pytest.mark.parametrize("lag", [0.0, 0.15, 0.4])
def test_a_sliding_window_is_learned_whole_however_late_its_answers_are_read(lag: float) -> None:
    clock = Clock()
    learner = QuotaLearner(clock)
    late_answers(learner, clock, 0.0, 10, lag)
    clock.now += 0.05
    assert learner.rate_limited(6.005 - clock.now) is None  # the first call's slot frees at 6.005
    late_answers(learner, clock, 6.1, 10, lag)  # back after the reset, the ten slots free
    clock.now += 0.05
    # The eleventh is refused until the slot taken first in this window frees.
    assert learner.rate_limited(12.105 - clock.now) == Rate(10, 6.0)
    assert learner.kind == "sliding"
    late_answers(learner, clock, 12.2, 10, lag)
    clock.now += 0.05
    # The next window full, refused until its first call's slot frees: the quota, not load.
    assert learner.rate_limited(18.205 - clock.now, used=10) is None
    assert (learner.fitted, learner.busy, learner.rate) == (True, 0, Rate(10, 6.0))


def test_a_sliding_window_is_sized_by_the_first_window_not_by_answers_read_late_at_the_second() -> None:
    """The second 429 comes while the first window's last calls are still in the server's window:
    their answers, read late, fall after its edge though the server counted them before it."""
    clock = Clock()
    learner = QuotaLearner(clock)
    for i in range(10):  # sent 33 ms apart, counted 5 ms after, answered 80 ms after that
        sent = 0.033 * i
        clock.now = sent + 0.085
        learner.accepted(sent)
    clock.now = 0.4
    assert learner.rate_limited(6.005 - clock.now) is None  # the first call's slot frees at 6.005
    for i in range(4):  # back at the reset, one call as each place frees
        sent = 6.01 + 0.033 * i
        clock.now = sent + 0.01
        learner.accepted(sent)
    clock.now = 6.15
    # Refused until the fifth call of the first window leaves (counted at 0.137): the window from
    # there holds its last six calls and these four. Counted by answers from that edge, the calls
    # at 0.071 and 0.104, answered at 0.151 and 0.184, would count too: 12.
    assert learner.rate_limited(6.137 - clock.now) == Rate(10, 6.0)
    assert learner.kind == "sliding"


def test_late_answers_without_their_send_times_read_a_sliding_window_as_fixed() -> None:
    """The send times are what tell it: the answers alone, read 150 ms late, put the window's start
    a cushion later than the server's, and the resets read as fixed windows of 6.1 s."""
    clock = Clock()
    learner = QuotaLearner(clock)
    drive(learner, clock, [(0.155 + 0.01 * i, "ok", None) for i in range(10)])
    clock.now = 0.3
    learner.rate_limited(6.005 - 0.3)
    drive(learner, clock, [(6.255 + 0.01 * i, "ok", None) for i in range(10)])
    clock.now = 6.4
    assert learner.rate_limited(12.105 - 6.4) == Rate(10, 6.1)
    assert learner.kind == "fixed"


@pytest.mark.parametrize("start", [0.0, 0.5])
def test_fixed_windows_read_as_one_twice_their_length_are_read_again_at_a_429_between(start: float) -> None:
    """Resets two windows apart (the client left the window between unfilled) read as one fixed
    window of 2 s holding both windows' calls — even for a run that began as a window opened, whose
    first 429 reads as a sliding window of 1 s as well; a 429 with the window full, at a reset
    between those boundaries on the 1 s grid, is the quota's windows of 1 s, not load."""
    clock = Clock()
    learner = QuotaLearner(clock)
    steps = [*window(start, 8, spacing=0.001), (start + 0.01, "429", 0.99 - start)]  # 8 a 1 s window
    steps += [*window(1.0, 4, spacing=0.01), *window(2.0, 8, spacing=0.001), (2.01, "429", 0.99)]
    assert drive(learner, clock, steps) == [Rate(12, 2.0)]
    drive(learner, clock, window(3.0, 8, spacing=0.001))
    clock.now = 3.01
    assert learner.rate_limited(0.99, used=8) == Rate(8, 1.0)
    assert (learner.kind, learner.fitted, learner.busy) == ("fixed", True, 0)


def test_a_429_whose_reset_frees_a_recent_calls_slot_is_load_when_the_window_is_all_but_empty() -> None:
    """A busy server's reset can fall one period after a call just made: the window from that call
    to now holds two calls, not the limit, so it is load, and the learned rate stays."""
    clock = Clock()
    learner = QuotaLearner(clock)
    late_answers(learner, clock, 0.0, 10, 0.0)
    clock.now = 0.2
    learner.rate_limited(6.005 - 0.2)
    late_answers(learner, clock, 6.1, 10, 0.0)
    clock.now = 6.3
    assert learner.rate_limited(12.105 - 6.3) == Rate(10, 6.0)
    late_answers(learner, clock, 12.2, 8, 0.0)
    late_answers(learner, clock, 15.0, 2, 0.3)  # two more, their answers read late
    clock.now += 0.01
    # Refused until 6 s after the first of those two was sent: its span holds the slot's start.
    assert learner.rate_limited(21.005 - clock.now, used=10) is None
    assert (learner.fitted, learner.busy, learner.rate) == (False, 1, Rate(10, 6.0))


def test_a_rate_risen_past_a_sliding_quota_comes_back_to_it_at_the_next_full_429() -> None:
    clock = Clock()
    learner = QuotaLearner(clock, probe_after=1)  # a probe every window: the rate rises past the quota
    late_answers(learner, clock, 0.0, 10, 0.0)
    clock.now = 0.2
    learner.rate_limited(6.005 - 0.2)
    late_answers(learner, clock, 6.1, 10, 0.0)
    clock.now = 6.3
    assert learner.rate_limited(12.105 - 6.3) == Rate(10, 6.0)
    for start in (12.2, 18.3, 24.4):
        late_answers(learner, clock, start, 10, 0.0)
    assert learner.rate is not None
    assert learner.rate.limit >= 12
    clock.now = 24.6
    # The server's window, from the call whose slot frees next, holds its ten: the quota, not load.
    assert learner.rate_limited(30.405 - 24.6, used=10) == Rate(10, 6.0)
    assert (learner.fitted, learner.busy) == (True, 0)

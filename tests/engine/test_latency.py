"""The poll-timing model: scouts on a fine ladder before data, quantiles after."""

from __future__ import annotations

import heapq
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchflux.engine.latency import LatencyModel, PollTuning, latency_sample


def test_before_data_only_scouts_are_polled_on_an_age_proportional_ladder() -> None:
    model = LatencyModel(PollTuning(probe_start=0.5, probe_fraction=0.2, scouts=2, min_samples=3))
    assert model.admits_scout(0)
    assert model.admits_scout(1)
    assert not model.admits_scout(2)
    assert model.first_delay() == 0.5
    age, polls = 0.5, [0.5]
    while age < 10:
        age += model.next_delay(age)
        polls.append(age)
    assert polls[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])  # never closer than probe_start
    assert polls[-1] - polls[-2] == pytest.approx(0.2 * polls[-2], rel=1e-6)  # then a fifth of the age
    for x in (1.0, 2.0, 3.0):
        model.observe(x)
    assert model.ready
    assert model.admits_scout(99)


def test_first_poll_at_the_quantile_of_observed_latencies() -> None:
    model = LatencyModel(PollTuning(first_quantile=0.5))
    for x in (1.0, 2.0, 3.0, 4.0, 5.0):
        model.observe(x)
    assert model.first_delay() == pytest.approx(3.0)


def test_next_poll_targets_the_remaining_mass() -> None:
    model = LatencyModel(PollTuning(step_mass=0.5, min_step=0.01, max_step=100.0))
    for x in range(1, 101):  # latencies 1..100 s, uniform
        model.observe(float(x))
    # Unfinished at 60 s: 60 % done; half of the remaining 40 % is done by ~80 s.
    assert 60.0 + model.next_delay(60.0) == pytest.approx(80.0, abs=1.0)
    # Older than every job seen: step out by a fifth of its age.
    assert model.next_delay(200.0) == pytest.approx(40.0)


def test_the_runs_last_jobs_are_polled_every_twentieth_of_their_age_unless_polls_count() -> None:
    model = LatencyModel(PollTuning(min_step=0.05))
    for x in (2.0, 2.4, 2.8, 3.0):
        model.observe(x)
    # A straggler, older than every job seen: a fifth of its age, or a twentieth once it is one of
    # the run's last few; when polls count, each costs a slot and the step stays.
    assert model.next_delay(3.6) == pytest.approx(0.72)
    assert model.next_delay(3.6, closing=True) == pytest.approx(0.18)
    assert model.next_delay(3.6, counted=True, closing=True) == model.next_delay(3.6, counted=True)
    # Not late yet (under the 0.9 quantile): its own schedule, which aims where it will be done.
    assert model.next_delay(2.5, closing=True) == model.next_delay(2.5)
    assert model.closing_delay(2.5) is None
    tiny = LatencyModel(PollTuning(min_step=0.05, closing_fraction=0.01))
    for x in (0.2, 0.3, 0.4):
        tiny.observe(x)
    assert tiny.next_delay(1.0, closing=True) == pytest.approx(0.05)  # never under the least step


def test_forgets_old_latencies() -> None:
    model = LatencyModel(PollTuning(memory=10, first_quantile=0.5))
    for _ in range(10):
        model.observe(20.0)
    for _ in range(10):
        model.observe(2.0)
    assert model.samples == 10
    assert model.first_delay() == pytest.approx(2.0)


@given(
    st.lists(st.floats(0, 1000, allow_nan=False), min_size=0, max_size=50),
    st.floats(0, 2000, allow_nan=False),
)
def test_delays_stay_within_bounds(latencies: list[float], age: float) -> None:
    tuning = PollTuning()
    model = LatencyModel(tuning)
    for x in latencies:
        model.observe(x)
    assert tuning.min_step <= model.next_delay(age) <= tuning.max_step
    assert model.first_delay() > 0


def simulate(
    n: int, mean: float, sd: float, seed: int, spread: float = 0.0, tuning: PollTuning | None = None
) -> tuple[float, float]:
    """A batch of ``n`` jobs submitted together — evenly over ``spread`` seconds, as 16 submit
    workers send 256 in a few hundred milliseconds — polled as the engine does (scouts, held jobs
    released when the model is ready); returns (status calls per job, median detection lag)."""
    rng = random.Random(seed)
    model = LatencyModel(tuning)
    latency = [max(0.05, rng.gauss(mean, sd)) for _ in range(n)]
    submitted = [spread * j / n for j in range(n)]
    polls, unfinished, lags = [0] * n, [0.0] * n, []
    heap: list[tuple[float, int]] = []  # (absolute time, job)
    held, scouting = [], 0
    for j in range(n):
        if model.admits_scout(scouting):
            scouting += 1
            heapq.heappush(heap, (submitted[j] + model.first_delay(), j))
        else:
            held.append(j)
    while heap:
        now, j = heapq.heappop(heap)
        age = now - submitted[j]
        polls[j] += 1
        if age >= latency[j]:
            was_ready = model.ready
            model.observe((unfinished[j] + age) / 2 if unfinished[j] else age)
            lags.append(age - latency[j])
            if not was_ready and model.ready:
                for h in held:
                    heapq.heappush(heap, (max(now, submitted[h] + model.first_delay()), h))
                held = []
        else:
            unfinished[j] = age
            heapq.heappush(heap, (now + model.next_delay(age), j))
    return sum(polls) / n, statistics.median(lags)


@pytest.mark.parametrize(("mean", "sd"), [(2.4, 0.5), (24.0, 5.0)])
@pytest.mark.parametrize("spread", [0.0, 0.35])
def test_under_two_polls_per_job_for_a_batch_submitted_together(
    mean: float, sd: float, spread: float
) -> None:
    """The schedule's promise, computed without a server: simulated jobs, counted polls."""
    runs = [simulate(300, mean, sd, seed, spread) for seed in range(5)]
    assert statistics.mean(r[0] for r in runs) <= 2.0
    assert statistics.mean(r[1] for r in runs) <= 0.25 * mean  # and noticed soon after


def test_without_the_step_floor_a_spread_batch_costs_more_polls() -> None:
    """Why ``min_step_fraction`` exists: the same batch, the floor off, polls bunch up."""
    off = PollTuning(min_step_fraction=0.0)
    floor_off = statistics.mean(simulate(300, 2.4, 0.5, seed, 0.35, off)[0] for seed in range(5))
    floor_on = statistics.mean(simulate(300, 2.4, 0.5, seed, 0.35)[0] for seed in range(5))
    assert floor_off > 2.2
    assert floor_on < floor_off - 0.3


@pytest.mark.parametrize(
    ("unfinished_at", "done_by", "metrics", "sample"),
    [
        (0.0, 9.0, {"queue_time": 0.5, "inference_time": 2.0}, 2.5),  # a late poll does not move it
        (1.0, 3.0, {"inference_time": 2.0}, 2.0),  # no queue time: the inference alone, a floor
        (2.5, 4.0, {"inference_time": 2.0}, 2.5),  # … never under what a poll saw unfinished
        (0.0, 2.0, {"queue_time": 1.0, "inference_time": 2.0}, 2.0),  # nor over what one saw done
        (1.0, 3.0, {}, 2.0),  # no figures: the middle of the two polls
        (0.0, 3.0, None, 3.0),  # seen done at its first poll: that poll's age
        (1.0, 3.0, {"inference_time": "2.0"}, 2.0),  # figures that are not numbers are ignored
        (1.0, 3.0, {"inference_time": True}, 2.0),
        (1.0, 3.0, {"inference_time": -4}, 2.0),
    ],
)
def test_a_sample_takes_the_servers_figures_within_what_the_polls_saw(
    unfinished_at: float, done_by: float, metrics: dict[str, object] | None, sample: float
) -> None:
    assert latency_sample(unfinished_at, done_by, metrics) == pytest.approx(sample)

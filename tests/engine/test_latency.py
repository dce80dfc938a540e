"""The poll-timing model: probe ladder before data, quantiles after."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchflux.engine.latency import LatencyModel, PollTuning


def test_probe_ladder_before_enough_samples() -> None:
    model = LatencyModel(PollTuning(probe_start=0.5, probe_cap=5.0, min_samples=3))
    assert model.first_delay() == 0.5
    steps = [0.5]
    for _ in range(6):
        steps.append(model.next_delay(sum(steps), steps[-1]))
    assert steps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


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
    assert 60.0 + model.next_delay(60.0, 1.0) == pytest.approx(80.0, abs=1.0)


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
    st.floats(0, 100, allow_nan=False),
)
def test_delays_stay_within_bounds(latencies: list[float], age: float, prev: float) -> None:
    tuning = PollTuning()
    model = LatencyModel(tuning)
    for x in latencies:
        model.observe(x)
    assert tuning.min_step <= model.next_delay(age, prev) <= max(tuning.max_step, tuning.probe_cap)
    assert model.first_delay() > 0


def test_about_two_polls_per_job_on_a_normal_distribution() -> None:
    """The schedule's promise, computed without a server: simulated jobs, counted polls."""
    rng = random.Random(7)
    model = LatencyModel()
    for _ in range(200):
        model.observe(max(0.1, rng.gauss(2.4, 0.5)))
    polls = []
    for _ in range(2000):
        latency = max(0.1, rng.gauss(2.4, 0.5))
        t, n, step = model.first_delay(), 1, 0.0
        while t < latency:
            step = model.next_delay(t, step)
            t += step
            n += 1
        polls.append(n)
    assert sum(polls) / len(polls) <= 2.0

"""The circuit breaker's rule, as a table over a hand-driven clock."""

from __future__ import annotations

import pytest

from batchflux.engine.breaker import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# Each step: (time, "ok" | "fail"); expected: the time at which it opens, or None.
CASES = [
    ("fails-throughout", [(t, "fail") for t in range(0, 25)], 20.0),
    ("too-few-failures", [(0, "fail"), (10, "fail"), (30, "fail")], None),
    ("a-success-resets",
     [*[(t, "fail") for t in range(0, 15)], (15, "ok"), *[(t, "fail") for t in range(16, 30)]], None),
    ("bad-luck-between-successes", [(t / 10, "fail" if t % 3 else "ok") for t in range(0, 400)], None),
    ("opens-once-count-and-window-both-met",
     [(0, "fail"), (21, "fail"), (22, "fail"), (23, "fail"), (24, "fail")], 24.0),
]  # fmt: skip


@pytest.mark.parametrize(("steps", "opens_at"), [pytest.param(s, o, id=n) for n, s, o in CASES])
def test_opens_only_when_every_call_failed_for_the_window(
    steps: list[tuple[float, str]], opens_at: float | None
) -> None:
    clock = Clock()
    breaker = Breaker(clock, window_s=20.0, min_failures=5)
    opened = []
    for t, outcome in steps:
        clock.now = float(t)
        if outcome == "ok":
            breaker.success()
        elif breaker.failure("connection refused"):
            opened.append(clock.now)
    assert opened == ([opens_at] if opens_at is not None else [])
    assert breaker.open is (opens_at is not None)


def test_it_stays_open_and_says_why() -> None:
    clock = Clock()
    breaker = Breaker(clock, window_s=1.0, min_failures=2)
    assert not breaker.failure("boom")
    clock.now = 2.0
    assert breaker.failure("502 Bad Gateway")
    clock.now = 3.0
    assert not breaker.failure("again")  # already open: reported once
    assert breaker.open
    assert (
        breaker.describe("api.segmind.com") == "api.segmind.com unreachable: 3 calls failed over 1s (again)"
    )

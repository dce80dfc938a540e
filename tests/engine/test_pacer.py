"""The pacer: a call waits out its kind's pause before it takes a slot of the window, a 429 pauses
only its own kind and gives the slot back, and a learned quota is paced and announced."""

from __future__ import annotations

import asyncio
import random

from batchflux.api import RateLimited
from batchflux.engine.pacer import RESET_PRECISION_S, Pacer
from batchflux.engine.pacing import Rate
from batchflux.engine.quota import APART_S


def pacer(rate: Rate | None, pauses: list[tuple[str, float]] | None = None) -> Pacer:
    loop = asyncio.get_running_loop()
    seen = pauses if pauses is not None else []
    return Pacer(
        rate, loop.time, rng=random.Random(1), on_pause=lambda kind, until: seen.append((kind, until))
    )


async def test_a_pause_that_comes_while_a_submit_waits_for_its_slot_holds_the_slot_back_too() -> None:
    loop = asyncio.get_running_loop()
    p = pacer(Rate(1, 0.1))
    first = await p.admit("submit", urgent=False)  # the window is full for 0.1 s
    waiting = asyncio.create_task(p.admit("submit", urgent=False))
    await asyncio.sleep(0.01)
    start = loop.time()
    p.rate_limited(RateLimited(delay_s=0.3), 1, "submit", first)  # its POST came back 429
    slot = await asyncio.wait_for(waiting, 2.0)
    await p.ready(slot)  # the submit, prepared, goes
    # Not at 0.1 s, when the slot freed, but after the pause: a slot taken inside the pause would
    # count in a window the POST does not land in.
    assert loop.time() - start >= 0.3
    assert slot is not None
    assert p.gate("submit").pauses == 1


async def test_a_429_pauses_every_kind_the_quota_counts_and_polls_are_paced_once_counted() -> None:
    loop = asyncio.get_running_loop()
    paused: list[tuple[str, float]] = []
    p = pacer(Rate(100, 60.0), paused)
    p.rate_limited(RateLimited(delay_s=0.1), 1, "submit")
    assert [kind for kind, _ in paused] == ["submit"]  # polls not known to count: they go on
    start = loop.time()
    assert await p.admit("status", urgent=True) is None  # not counted yet: no slot taken
    assert loop.time() - start < 0.05
    p.rate_limited(RateLimited(delay_s=0.2), 1, "result")  # polls count: the quota is one
    assert p.gate("poll").paused
    assert p.gate("submit").paused
    start = loop.time()
    await p.ready(await p.admit("submit", urgent=False))  # submits wait the pause out too
    assert loop.time() - start >= 0.15
    slot = await p.admit("status", urgent=True)  # polls wait it out, then take a slot
    assert slot is not None
    paused.clear()
    p.rate_limited(RateLimited(delay_s=0.2), 1, "submit")  # and now a submit's 429 pauses the polls
    assert sorted(kind for kind, _ in paused) == ["poll", "submit"]


async def test_without_a_rate_two_429s_teach_the_window_and_the_submits_are_paced_by_it() -> None:
    loop = asyncio.get_running_loop()
    p = pacer(None)
    assert await p.admit("submit", urgent=False) is None  # nothing learned: no limiter
    for _ in range(3):
        p.accepted("submit")
    p.rate_limited(RateLimited(delay_s=0.05), 1, "submit")  # the window reopens in 50 ms
    await asyncio.sleep(0.06)
    for _ in range(3):
        await p.admit("submit", urgent=False)
        p.accepted("submit")
    reopens = loop.time() + 0.6
    p.rate_limited(RateLimited(delay_s=0.6), 1, "submit")  # full again: 3 in a window of ~0.66 s
    rate = p.learned_rate
    assert rate is not None
    assert rate.limit == 3
    assert 0.6 < rate.period < 0.75
    for _ in range(3):  # the pause holds them to the window's opening; then all three go
        await p.admit("submit", urgent=False)
    assert loop.time() >= reopens
    assert p.used() == 3
    await p.admit("submit", urgent=False)  # the fourth waits for the window after
    assert loop.time() >= reopens + rate.period - 1e-3


async def test_while_the_window_is_measured_the_refused_submits_come_back_as_their_places_free() -> None:
    loop = asyncio.get_running_loop()
    p = pacer(None)
    sent = loop.time()
    for _ in range(3):  # sent together, answered 0.1 s apart
        await asyncio.sleep(0.1)
        p.accepted("submit", sent)
    start = loop.time()
    p.rate_limited(RateLimited(delay_s=0.2), 1, "submit")
    # No cushion or jitter: nothing goes before its place frees anyway.
    assert p.gate("submit").resume_at - start <= 0.2 + RESET_PRECISION_S + 0.001
    went: list[float] = []

    async def submit() -> None:
        await p.ready(await p.admit("submit", urgent=False))
        went.append(loop.time() - start)

    await asyncio.gather(*(submit() for _ in range(4)))
    # The reset frees the first call's place, a window (0.5 s) after its answer; the others free as
    # far apart as they were answered. The first goes APART_S after the reset at the earliest, and
    # a fourth, past the first window's calls, no sooner than the last of them.
    frees = [0.2 + APART_S, 0.3, 0.4, 0.4]
    assert all(at >= free - 0.002 for at, free in zip(sorted(went), frees, strict=True)), (went, frees)
    assert p.gate("submit").pauses == 1


async def test_history_calls_are_one_kind_and_paced_once_the_quota_counts_them() -> None:
    paused: list[tuple[str, float]] = []
    p = pacer(Rate(100, 60.0), paused)
    assert await p.admit("history", urgent=True) is None
    p.rate_limited(RateLimited(delay_s=0.05), 1, "history_record")  # a record lookup met the quota
    assert [kind for kind, _ in paused] == ["history"]  # another host: its 429 pauses it alone
    assert await p.admit("history", urgent=True) is not None  # the list scans wait and count too
    assert p.used() == 1

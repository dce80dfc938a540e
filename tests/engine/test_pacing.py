"""Pacing primitives: the rate grammar, the sliding window (plain and aligned to the server's
windows, with room kept for follow-up calls), the pause gate."""

from __future__ import annotations

import asyncio

import pytest

from batchflux.engine.pacing import PauseGate, Rate, SlidingWindowLimiter, parse_rate


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("60/6s", Rate(60, 6.0)),
        ("50/60", Rate(50, 60.0)),
        ("50/m", Rate(50, 60.0)),
        ("1000/1h", Rate(1000, 3600.0)),
        (" 5 / 0.5s ", Rate(5, 0.5)),
    ],
)
def test_parse_rate(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "60", "/6s", "60/", "0/6s", "60/0s", "60/6d", "a/b", "-1/6s"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


async def test_sliding_window_never_exceeds_limit_in_any_window() -> None:
    loop = asyncio.get_running_loop()
    limiter = SlidingWindowLimiter(Rate(5, 0.2), loop.time)
    stamps: list[float] = []

    async def take() -> None:
        await limiter.ready(await limiter.acquire())  # a slot may come early: the call goes when ready
        stamps.append(loop.time())

    async with asyncio.TaskGroup() as tg:
        for _ in range(17):
            tg.create_task(take())
    stamps.sort()
    assert len(stamps) == 17
    # Any six consecutive acquisitions span at least one full period.
    for i in range(len(stamps) - 5):
        assert stamps[i + 5] - stamps[i] >= 0.2 - 1e-3
    # And the first window's quota went out at once, not spread over it.
    assert stamps[4] - stamps[0] < 0.1


async def test_settle_moves_the_window_to_the_answer() -> None:
    loop = asyncio.get_running_loop()
    limiter = SlidingWindowLimiter(Rate(1, 0.1), loop.time)
    slot = await limiter.acquire()
    await asyncio.sleep(0.05)
    limiter.settle(slot)  # the server answered 50 ms later
    settled = slot.at
    await limiter.ready(await limiter.acquire())
    assert loop.time() >= settled + 0.1 - 1e-3


async def test_a_slot_comes_a_head_start_early_and_its_call_goes_when_its_place_frees() -> None:
    """A submit prepares (its intent, on disk) between its slot's grant and its sending: the slot
    is granted that long before the place it takes frees, and the call still goes no sooner."""
    loop = asyncio.get_running_loop()
    limiter = SlidingWindowLimiter(Rate(1, 1.0), loop.time)
    for _ in range(3):  # three calls, each prepared in 40 ms: the head start is 40 ms
        slot = await limiter.acquire()
        await asyncio.sleep(0.04)
        await limiter.ready(slot)
        limiter.settle(slot)
        answered = slot.at
    assert limiter.head_start == pytest.approx(0.04, abs=0.02)
    slot = await limiter.acquire()
    granted = loop.time()
    assert answered + 1.0 - limiter.head_start - 0.01 <= granted < answered + 1.0
    assert slot.not_before == pytest.approx(answered + 1.0)
    await limiter.ready(slot)
    assert loop.time() >= answered + 1.0 - 1e-3  # never before the place frees


async def test_a_slot_given_back_before_its_place_frees_keeps_that_moment() -> None:
    loop = asyncio.get_running_loop()
    limiter = SlidingWindowLimiter(Rate(1, 0.5), loop.time)
    first = await limiter.acquire()
    limiter.settle(first)
    early = await limiter.acquire()  # a head start (25 ms, a 20th of the window) early
    assert early.not_before > loop.time()
    limiter.give_back(early)  # e.g. a pause began: it was never sent
    again = await limiter.acquire()
    assert again.not_before == pytest.approx(first.at + 0.5)


async def test_pause_gate_holds_every_caller_until_the_latest_reset() -> None:
    loop = asyncio.get_running_loop()
    gate = PauseGate(loop.time)
    gate.pause_for(0.05)
    gate.pause_for(0.1)
    gate.pause_for(0.01)  # an earlier reset never shortens the pause
    assert gate.paused
    start = loop.time()
    await asyncio.gather(gate.wait(), gate.wait())
    assert loop.time() - start >= 0.1 - 1e-3
    assert not gate.paused
    assert gate.pauses == 1


async def test_urgent_waiters_go_first_and_a_cancelled_one_gives_its_turn_away() -> None:
    loop = asyncio.get_running_loop()
    limiter = SlidingWindowLimiter(Rate(1, 0.05), loop.time)
    await limiter.acquire()  # the window is full
    order: list[str] = []

    async def take(name: str, urgent: bool) -> None:
        await limiter.acquire(urgent=urgent)
        order.append(name)

    first_submit = asyncio.create_task(take("submit-1", False))
    gone = asyncio.create_task(take("poll-cancelled", True))
    second_submit = asyncio.create_task(take("submit-2", False))
    poll = asyncio.create_task(take("poll", True))
    await asyncio.sleep(0)  # all four are waiting
    gone.cancel()
    await asyncio.gather(first_submit, second_submit, poll)
    assert order == ["poll", "submit-1", "submit-2"]
    assert gone.cancelled()


async def test_waiters_cancelled_together_as_a_slot_frees_leave_quietly() -> None:
    """A task group cancelling its workers cancels every waiter at once; the first to handle its
    cancellation frees the line, which drops the other cancelled waiters before their own handlers
    run: those must still end cancelled, not with an error (seen as a ValueError under load)."""
    loop = asyncio.get_running_loop()
    limiter = SlidingWindowLimiter(Rate(1, 60.0), loop.time)
    held = await limiter.acquire()  # the window is full for a minute
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(3)]
    await asyncio.sleep(0)  # all three are waiting
    for task in waiters:
        task.cancel()
    limiter.give_back(held)  # a slot frees before any of them has run its handler
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert [type(r) for r in results] == [asyncio.CancelledError] * 3
    assert limiter.used() == 0  # none of them kept a slot
    await asyncio.wait_for(limiter.acquire(), 1.0)  # and the line still serves


async def test_a_new_rate_applies_to_the_waiters_at_once() -> None:
    loop = asyncio.get_running_loop()
    limiter = SlidingWindowLimiter(Rate(1, 10.0), loop.time)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    assert not waiter.done()  # it would wait 10 s
    limiter.set_rate(Rate(2, 10.0))
    await asyncio.wait_for(waiter, 1.0)


async def test_a_refused_call_gives_its_slot_back() -> None:
    loop = asyncio.get_running_loop()
    limiter = SlidingWindowLimiter(Rate(1, 60.0), loop.time)
    refused = await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    assert not waiter.done()  # the window is full for a minute
    limiter.give_back(refused)  # the server answered 429: it counted nothing
    await asyncio.wait_for(waiter, 1.0)
    assert limiter.used() == 1


async def test_aligned_a_slot_is_held_to_the_end_of_the_servers_window_only() -> None:
    loop = asyncio.get_running_loop()
    limiter = SlidingWindowLimiter(Rate(2, 0.5), loop.time)
    boundary = loop.time() + 0.05  # the server's next window opens in 50 ms
    limiter.align(boundary, guard=0.0)
    await limiter.acquire()
    await limiter.acquire()  # this window is full
    await limiter.acquire()  # the next one opens at the boundary, not half a second on
    assert boundary - 1e-3 <= loop.time() < boundary + 0.2


async def test_aligned_a_slot_near_a_boundary_counts_on_both_sides() -> None:
    loop = asyncio.get_running_loop()
    limiter = SlidingWindowLimiter(Rate(1, 0.2), loop.time)
    boundary = loop.time() + 0.02
    limiter.align(boundary, guard=0.05)  # now is within the guard before the boundary
    await limiter.acquire()
    await limiter.acquire()  # so the window after it is taken too: this waits for the one after
    assert loop.time() >= boundary + 0.2 + 0.05 - 1e-3


async def test_keep_room_leaves_each_window_room_for_the_follow_ups() -> None:
    loop = asyncio.get_running_loop()
    limiter = SlidingWindowLimiter(Rate(10, 60.0), loop.time)
    limiter.keep_room(1.5)  # each submit brings one and a half polls: ⌊10 / 2.5⌋ = 4 submits
    for _ in range(4):
        await limiter.acquire()
    fifth = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.01)
    assert not fifth.done()
    for _ in range(6):  # the polls take the rest at once
        await asyncio.wait_for(limiter.acquire(urgent=True), 0.5)
    assert limiter.used() == 10
    fifth.cancel()


@pytest.mark.parametrize("aligned", [False, True])
async def test_the_runs_last_submits_take_the_window_past_their_share_once_all_of_them_fit(
    aligned: bool,
) -> None:
    loop = asyncio.get_running_loop()
    limiter = SlidingWindowLimiter(Rate(10, 60.0), loop.time)
    if aligned:
        limiter.align(loop.time() - 1.0, guard=0.0)  # a window opened a second ago
    left = [7]  # the run's submits not yet made

    async def submit() -> None:
        await limiter.acquire()
        left[0] -= 1

    limiter.keep_room(1.5, left=lambda: left[0])  # 10 / 2.5 = 4 submits a window
    await limiter.acquire(urgent=True)  # a poll: 9 places free, 7 submits left
    for _ in range(4):
        await asyncio.wait_for(submit(), 0.5)
    last = [asyncio.create_task(submit()) for _ in range(3)]  # past the share, but all fit
    await asyncio.wait_for(asyncio.gather(*last), 0.5)
    assert limiter.used() == 8

    left[0] = 3  # a new window's worth of work, where 3 would not fit the 2 places left
    more = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.05)
    assert not more.done()  # past its share, and the rest not all fitting: it waits
    more.cancel()


async def test_aligned_the_polls_waiting_at_an_opening_come_off_the_submits_part() -> None:
    loop = asyncio.get_running_loop()
    limiter = SlidingWindowLimiter(Rate(10, 60.0), loop.time)
    limiter.align(loop.time() + 0.05 - 60.0, guard=0.0)  # the next window opens in 50 ms
    limiter.keep_room(1.0)  # a submit brings one poll: 5 submits a window, with no backlog
    for _ in range(10):
        await limiter.acquire(urgent=True)  # this window is full
    polls = [asyncio.create_task(limiter.acquire(urgent=True)) for _ in range(4)]
    submits = [asyncio.create_task(limiter.acquire()) for _ in range(5)]
    await asyncio.sleep(0.15)  # the next window has opened
    assert all(p.done() for p in polls)  # the four held-over polls went first
    # and left (10 − 4) / 2 = 3 submits, so that their polls fit behind them
    assert sum(s.done() for s in submits) == 3
    for task in submits:
        task.cancel()


async def test_aligned_a_wake_up_inside_the_guard_still_opens_the_next_window_on_time() -> None:
    loop = asyncio.get_running_loop()
    limiter = SlidingWindowLimiter(Rate(4, 0.4), loop.time)
    start = loop.time()
    limiter.align(start + 0.1 - 0.4, guard=0.05)  # the next window opens at +0.1 (+0.15 with the guard)
    limiter.keep_room(1.0)  # 2 submits a window
    await limiter.acquire()
    await limiter.acquire()
    third = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.12)  # inside the guard after the boundary, something wakes the limiter
    limiter.keep_room(1.0)
    await asyncio.wait_for(third, 1.0)
    assert loop.time() - start < 0.3  # served as the window opened, not a window later


async def test_aligned_to_fixed_windows_no_slot_is_granted_ahead_of_its_window() -> None:
    """A slot of the server's fixed windows counts in the window it is taken in: taken a head start
    before a boundary, it would count in the window before while its call lands in the next."""
    loop = asyncio.get_running_loop()
    limiter = SlidingWindowLimiter(Rate(2, 1.0), loop.time)
    assert limiter.early > 0  # sliding: granted a head start early
    boundary = loop.time() + 0.2
    limiter.align(boundary, guard=0.0)  # the server's windows open at +0.2 s, +1.2 s, ...
    assert limiter.early == 0.0
    for _ in range(2):
        await limiter.acquire()  # this window, opened 0.8 s ago, is full
    await limiter.acquire()
    assert loop.time() >= boundary - 1e-3

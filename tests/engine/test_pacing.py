"""Pacing primitives: the rate grammar, the sliding window, the pause gate, AIMD."""

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
        await limiter.acquire()
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
    settled = slot[0]
    await limiter.acquire()
    assert loop.time() >= settled + 0.1 - 1e-3


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

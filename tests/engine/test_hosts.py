"""A host's rule (whose accident a failure is) as tables over a hand-driven clock, and its line of
waiting calls on the real event loop."""

from __future__ import annotations

import asyncio

import pytest
from runkit import wait_until

from batchflux.engine.hosts import PROBE_BASE_S, PROBE_CAP_S, Host, HostHealth


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_is_the_calls_own_only_when_the_host_answered_others_meanwhile() -> None:
    clock = Clock()
    host = HostHealth("api", clock)
    host.succeeded()  # t=0
    clock.now = 1.0
    sent = clock.now
    clock.now = 1.5
    host.succeeded()  # another call answered while ours was on the wire
    clock.now = 2.0
    assert host.failed(sent, "502").own
    clock.now = 3.0
    assert not host.failed(2.5, "refused").own  # nothing answered since it was sent
    assert not host.answering
    clock.now = 4.0
    host.succeeded()  # the host answered another call …
    clock.now = 5.0
    assert host.failed(3.0, "refused").own  # … since this call's previous failure: its own bad luck


def test_the_probe_cadence_grows_to_its_cap_and_the_breaker_still_decides() -> None:
    clock = Clock()
    host = HostHealth("api", clock, window_s=20.0)
    gaps = []
    opened_at = None
    while opened_at is None:
        failure = host.failed(clock.now, "refused")
        if failure.opened:
            opened_at = clock.now
        gaps.append(host.probe_at() - clock.now)
        clock.now = host.probe_at()
    assert gaps[:6] == pytest.approx([PROBE_BASE_S * 2**k for k in range(5)] + [PROBE_CAP_S])
    assert max(gaps) == pytest.approx(PROBE_CAP_S)
    assert 20.0 <= opened_at <= 20.0 + PROBE_CAP_S  # a dead host is declared down on time
    assert host.down


async def test_while_the_host_answers_nobody_waits_and_one_failure_holds_up_only_its_call() -> None:
    loop = asyncio.get_running_loop()
    host = Host("api", loop.time)
    assert await host.turn()
    host.succeeded()
    assert await asyncio.wait_for(host.turn(keep_trying=False), 0.1)
    host.failed(loop.time(), "502")
    retry = asyncio.create_task(host.turn(retry=True))  # the failed call waits …
    assert await asyncio.wait_for(host.turn(), 0.05)  # … a new one goes (one failure is no outage)
    assert not retry.done()
    host.failed(loop.time(), "502")  # two in a row: new calls join the line too
    fresh = asyncio.create_task(host.turn())
    await asyncio.sleep(0)
    assert not fresh.done()
    host.succeeded()
    assert await asyncio.wait_for(asyncio.gather(retry, fresh), 0.1) == [True, True]


async def test_a_failing_host_lets_one_probe_go_and_the_line_follows_its_success_in_order() -> None:
    loop = asyncio.get_running_loop()
    host = Host("api", loop.time)
    host.failed(loop.time(), "refused")
    order: list[int] = []

    async def caller(n: int) -> None:
        assert await host.turn(retry=True)  # each failed, and nothing else succeeded
        order.append(n)

    tasks = [asyncio.create_task(caller(n)) for n in range(5)]
    await asyncio.sleep(0)
    assert order == []
    await wait_until(lambda: order == [0], within=2, what="the probe")  # the first in line, alone
    await asyncio.sleep(PROBE_BASE_S / 2)
    assert order == [0]
    host.succeeded()  # the probe got an answer: everyone goes, in the order they came
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_once_the_host_is_down_calls_that_cannot_outlive_it_stop_waiting() -> None:
    loop = asyncio.get_running_loop()
    host = Host("api", loop.time, window_s=0.0, min_failures=2)
    host.failed(loop.time(), "refused")
    assert await asyncio.wait_for(host.turn(retry=True), 1)  # the probe goes …
    submit = asyncio.create_task(host.turn(keep_trying=False, retry=True))
    poll = asyncio.create_task(host.turn(keep_trying=True, retry=True))
    await asyncio.sleep(0)
    assert not submit.done()
    assert host.failed(loop.time(), "refused").opened  # … and fails: the breaker decides
    assert await asyncio.wait_for(submit, 0.1) is False
    assert not poll.done()
    assert await asyncio.wait_for(poll, PROBE_CAP_S + 1) is True  # it goes on probing
    assert await host.turn(keep_trying=False) is False


async def test_give_up_releases_the_calls_that_cannot_outlive_the_run() -> None:
    loop = asyncio.get_running_loop()
    host = Host("api", loop.time)
    host.failed(loop.time(), "refused")
    first = asyncio.create_task(host.turn(retry=True))  # probes
    assert await asyncio.wait_for(first, 1)
    submit = asyncio.create_task(host.turn(keep_trying=False, retry=True))
    await asyncio.sleep(0)
    host.give_up()
    assert await asyncio.wait_for(submit, 0.1) is False


@pytest.mark.parametrize("cancel_first", [True, False])
async def test_a_cancelled_waiter_does_not_hold_the_line(cancel_first: bool) -> None:
    loop = asyncio.get_running_loop()
    host = Host("api", loop.time)
    host.failed(loop.time(), "refused")
    a = asyncio.create_task(host.turn(retry=True))
    b = asyncio.create_task(host.turn(retry=True))
    await asyncio.sleep(0)
    (a if cancel_first else b).cancel()
    host.succeeded()
    left = b if cancel_first else a
    assert await asyncio.wait_for(left, 0.5) is True

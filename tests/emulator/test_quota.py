"""The per-key quota: 429 with the reset header, optional Retry-After, polls counted when asked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from batchflux.emulator import Emulator

Make = Callable[..., Emulator]


def sliding_max(times: list[float], window: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_burst_over_quota_gets_429_with_reset(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    async with make_emulator(rpm=3, latency_mean=0.05) as emu:
        api = api_for(emu)
        replies = [await api.submit(prompt=f"p{i}") for i in range(5)]
        assert [r.status for r in replies] == [200, 200, 200, 429, 429]
        refused = replies[3]
        assert refused.body == {"error": "Rate limit exceeded"}
        assert "Retry-After" not in refused.headers
        reset = datetime.fromisoformat(refused.headers["x-rate-limit-reset-at-utc"]).timestamp()
        first_submit = emu.stats()["submit_times"][0]
        assert first_submit < reset <= first_submit + 60.0  # the end of the first 60 s window
        stats = emu.stats()
        assert (stats["submits"], stats["rate_limited"]) == (3, 2)
        assert (
            await api.request("GET", f"/v2/requests/{replies[0].body['request_id']}/status")
        ).status == 200


async def test_quota_reopens_at_the_announced_reset(
    make_emulator: Make, api_for: Callable[[Emulator], Any], wait_until: Any
) -> None:
    async with make_emulator(rpm=2, window_s=0.5, retry_after=True, latency_mean=0.05) as emu:
        api = api_for(emu)
        for _ in range(10):  # fill a window (the first may close under us: windows are short)
            refused = await api.submit(prompt="a")
            if refused.status == 429:
                break
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "1"  # whole seconds, rounded up, at least 1
        reset = datetime.fromisoformat(refused.headers["x-rate-limit-reset-at-utc"]).timestamp()

        async def accepted() -> bool:
            return bool((await api.submit(prompt="b")).status == 200)

        await wait_until(accepted, within=5.0, what="a submit accepted in the next window")
        times = emu.stats()["submit_times"]
        assert times[-1] >= reset - 1e-3  # nothing accepted before the announced reset
        assert sliding_max(times, 0.5) <= 2 + 1  # fixed windows allow at most 2*limit across a boundary


async def test_polls_count_toward_the_quota_only_when_asked(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    async with make_emulator(rpm=2, latency_mean=0.05) as emu:
        api = api_for(emu)
        rid = (await api.submit_ok(prompt="p"))["request_id"]
        polls = [(await api.request("GET", f"/v2/requests/{rid}/status")).status for _ in range(5)]
        assert 429 not in polls
        emu.reconfigure(count_polls=True)
        polls = [(await api.request("GET", f"/v2/requests/{rid}/status")).status for _ in range(2)]
        assert polls == [200, 429]  # the submit and one poll used the window's two
        assert (await api.submit(prompt="q")).status == 429
        assert emu.stats()["rate_limited"] == 2


async def test_quota_is_per_key(make_emulator: Make, api_for: Callable[[Emulator], Any]) -> None:
    keys = ("SG_1111111111111111", "SG_2222222222222222")
    async with make_emulator(rpm=1, keys=keys) as emu:
        api = api_for(emu)
        statuses = []
        for key in (*keys, *keys):
            reply = await api.request("POST", "/v2/flux-kontext-max", key=key, json={"prompt": "p"})
            statuses.append(reply.status)
        assert statuses == [200, 200, 429, 429]


async def test_no_window_ever_gets_more_than_the_limit(
    make_emulator: Make, api_for: Callable[[Emulator], Any], wait_until: Any
) -> None:
    window = 0.3
    async with make_emulator(rpm=5, window_s=window, latency_mean=0.02) as emu:
        api = api_for(emu)

        seen: list[int] = []

        async def flood() -> bool:
            seen.extend(r.status for r in await asyncio.gather(*(api.submit(prompt="f") for _ in range(8))))
            return bool(emu.stats()["submits"] >= 15)

        await wait_until(flood, within=10.0, every=0.05, what="15 accepted submits")
        stats = emu.stats()
        origin = emu.core.unix(emu.core.quota.origin)
        per_window: dict[int, int] = {}
        for t in stats["submit_times"]:
            index = int((t - origin) // window)
            per_window[index] = per_window.get(index, 0) + 1
        assert max(per_window.values()) <= 5
        assert sum(per_window.values()) == stats["submits"] >= 15
        assert set(seen) == {200, 429}
        assert (seen.count(200), seen.count(429)) == (stats["submits"], stats["rate_limited"])


async def test_a_sliding_limiter_frees_a_slot_one_window_after_each_accepted_submit(
    make_emulator: Make, api_for: Callable[[Emulator], Any], wait_until: Any
) -> None:
    async with make_emulator(rpm=3, window_s=0.6, limiter="sliding", latency_mean=0.05) as emu:
        api = api_for(emu)
        for _ in range(3):
            assert (await api.submit(prompt="a")).status == 200
            await asyncio.sleep(0.1)
        refused = await api.submit(prompt="b")
        assert refused.status == 429
        reset = datetime.fromisoformat(refused.headers["x-rate-limit-reset-at-utc"]).timestamp()
        first, second, _ = emu.stats()["submit_times"]
        assert reset == pytest.approx(first + 0.6, abs=2e-3)  # the oldest slot, not a window's end

        async def accepted() -> bool:
            return bool((await api.submit(prompt="c")).status == 200)

        await wait_until(accepted, within=5.0, what="the oldest slot freed")
        again = await api.submit(prompt="d")
        assert again.status == 429  # one slot freed, and only one
        later = datetime.fromisoformat(again.headers["x-rate-limit-reset-at-utc"]).timestamp()
        assert later == pytest.approx(second + 0.6, abs=2e-3)
        assert sliding_max(emu.stats()["submit_times"], 0.6) <= 3


async def test_busy_429s_refuse_one_submit_in_n_with_their_own_reset(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    async with make_emulator(busy_429=3, busy_reset_s=1.2, latency_mean=0.05) as emu:
        api = api_for(emu)
        replies = [await api.submit(prompt=f"p{i}") for i in range(6)]
        assert [r.status for r in replies] == [200, 200, 429, 200, 200, 429]  # no quota, just busy
        reset = datetime.fromisoformat(replies[2].headers["x-rate-limit-reset-at-utc"]).timestamp()
        stats = emu.stats()
        assert reset == pytest.approx(stats["rate_limited_times"][0] + 1.2, abs=2e-3)
        # Calls inside the announced pause are accepted (load, not a quota), and counted as such.
        assert stats["calls_in_announced_pause"] == 3
        assert (stats["submits"], stats["rate_limited"]) == (4, 2)

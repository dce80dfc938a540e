"""The per-key quota: 429 with the reset header, optional Retry-After, polls counted when asked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

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

"""Injected faults: 5xx before anything happens, drops after the work is done, truncated media."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from batchflux.emulator import DEFAULT_API_KEY, Emulator

Make = Callable[..., Emulator]
KEY = {"x-api-key": DEFAULT_API_KEY}


@pytest.mark.parametrize(
    ("kind", "content_type"), [("500", "application/json"), ("502", "text/html"), ("504", "text/html")]
)
async def test_submit_5xx_happens_before_the_job_exists(
    make_emulator: Make, api_for: Callable[[Emulator], Any], kind: str, content_type: str
) -> None:
    async with make_emulator(faults={kind: 1.0}, fault_endpoints=frozenset({"submit"}), credits=1.0) as emu:
        api = api_for(emu)
        reply = await api.submit(prompt="p")
        assert reply.status == int(kind)
        assert reply.headers["Content-Type"].startswith(content_type)
        stats = emu.stats()
        assert stats["submits"] == 0
        assert stats["credits_left"] == 1.0  # nothing billed
        assert stats["faults"] == {"500": 0, "502": 0, "504": 0, "drop": 0, "truncate": 0} | {kind: 1}
        assert (await api.request("GET", "/v1/get-user-credits")).status == 200  # other endpoints unaffected


async def test_dropped_submit_is_created_and_billed(make_emulator: Make, http: aiohttp.ClientSession) -> None:
    async with make_emulator(faults={"drop": 1.0}, fault_endpoints=frozenset({"submit"}), credits=1.0) as emu:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with http.post(f"{emu.base_url}/v2/flux-kontext-max", json={"prompt": "p"}, headers=KEY):
                pass
        stats = emu.stats()
        assert stats["submits"] == 1
        assert stats["credits_left"] == pytest.approx(0.9)
        assert stats["faults"]["drop"] == 1
        assert sum(stats["jobs_by_state"].values()) == 1


async def test_a_held_submit_exists_and_is_billed_before_its_answer(
    make_emulator: Make, http: aiohttp.ClientSession
) -> None:
    async with make_emulator(submit_hold_s=30.0, credits=1.0) as emu:
        post = asyncio.ensure_future(
            http.post(f"{emu.base_url}/v2/flux-kontext-max", json={"prompt": "p"}, headers=KEY)
        )
        for _ in range(500):  # the request is created at once; its answer is still held
            if emu.stats()["submits"] == 1:
                break
            await asyncio.sleep(0.01)
        assert (emu.stats()["submits"], emu.stats()["credits_left"]) == (1, pytest.approx(0.9))
        assert not post.done()
        post.cancel()  # a client that gave up: an ambiguous submit, billed
        with pytest.raises(asyncio.CancelledError):
            await post


async def test_dropped_status_and_truncated_media(
    make_emulator: Make, http: aiohttp.ClientSession, api_for: Callable[[Emulator], Any]
) -> None:
    async with make_emulator(latency_mean=0.02, latency_sd=0.0) as emu:
        api = api_for(emu)
        rid = (await api.submit_ok(prompt="p"))["request_id"]
        await api.until_state(rid, "COMPLETED")
        output = (await api.request("GET", f"/v2/requests/{rid}")).body["output"]
        emu.reconfigure(faults={"drop": 1.0}, fault_endpoints=frozenset({"status"}))
        before = emu.stats()["status_calls"]
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with http.get(f"{emu.base_url}/v2/requests/{rid}/status", headers=KEY):
                pass
        dropped = emu.stats()
        # aiohttp retries an idempotent GET once after a disconnect, so the server may see it twice:
        # every one of those calls was handled, then dropped.
        assert dropped["faults"]["drop"] == dropped["status_calls"] - before >= 1
        emu.reconfigure(faults={"truncate": 1.0}, fault_endpoints=frozenset({"media", "status"}))
        status = await api.request("GET", f"/v2/requests/{rid}/status")
        assert status.status == 200  # truncate is media-only
        async with http.get(output) as resp:
            assert resp.status == 200
            assert resp.content_length is not None
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
        emu.reconfigure(faults={})
        whole = await api.request("GET", output, key=None)
        assert whole.status == 200
        assert whole.raw[:8] == b"\x89PNG\r\n\x1a\n"
        info = emu.request_info(rid)
        assert info is not None
        assert hashlib.sha256(whole.raw).hexdigest() == info["sha256"]
        assert emu.stats()["faults"]["truncate"] == 1


async def test_fault_rates_are_counted_exactly(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    async with make_emulator(
        faults={"500": 0.2, "502": 0.1}, fault_endpoints=frozenset({"credits"}), seed=7
    ) as emu:
        api = api_for(emu)
        statuses = [(await api.request("GET", "/v1/get-user-credits")).status for _ in range(200)]
        stats = emu.stats()
        assert statuses.count(500) == stats["faults"]["500"]
        assert statuses.count(502) == stats["faults"]["502"]
        assert statuses.count(200) == 200 - statuses.count(500) - statuses.count(502)
        assert 20 <= statuses.count(500) <= 60  # about 40 expected
        assert 5 <= statuses.count(502) <= 35  # about 20 expected
        assert stats["credits_calls"] == 200


async def test_same_seed_same_faults(make_emulator: Make, api_for: Callable[[Emulator], Any]) -> None:
    runs = []
    for _ in range(2):
        async with make_emulator(faults={"500": 0.5}, seed=3) as emu:
            api = api_for(emu)
            runs.append([(await api.request("GET", "/v1/get-user-credits")).status for _ in range(30)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500}

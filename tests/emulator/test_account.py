"""Credits (406, charge at submit, refund on FAILED), content type 406, retention 404, credits endpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from batchflux.emulator import Emulator

Make = Callable[..., Emulator]


async def test_insufficient_credits_is_a_plain_406(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    async with make_emulator(credits=0.25, price=0.1, latency_mean=0.05) as emu:
        api = api_for(emu)
        assert [(await api.submit(prompt="p")).status for _ in range(2)] == [200, 200]
        refused = await api.submit(prompt="p")
        assert refused.status == 406
        assert refused.headers["Content-Type"].startswith("text/plain")
        assert refused.body == "Insufficient credits"
        credits = await api.request("GET", "/v1/get-user-credits")
        assert credits.status == 200
        assert credits.body == {"credits": pytest.approx(0.05), "free-credits": 0.0}
        stats = emu.stats()
        assert (stats["submits"], stats["credits_calls"]) == (2, 1)
        assert stats["credits_left"] == pytest.approx(0.05)


async def test_failed_jobs_are_refunded(make_emulator: Make, api_for: Callable[[Emulator], Any]) -> None:
    async with make_emulator(credits=1.0, price=0.25, latency_mean=0.5, latency_sd=0.0) as emu:
        api = api_for(emu)
        ok = (await api.submit_ok(prompt="fine"))["request_id"]
        blocked = (await api.submit_ok(prompt="nsfw please"))["request_id"]
        assert emu.stats()["credits_left"] == pytest.approx(0.5)  # both charged at submit
        await api.until_state(blocked, "FAILED")
        await api.until_state(ok, "COMPLETED")
        assert emu.stats()["credits_left"] == pytest.approx(0.75)  # the failed one given back
        assert (await api.request("GET", "/v1/get-user-credits")).body["credits"] == pytest.approx(0.75)


async def test_reconfigured_credits_take_effect(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    async with make_emulator() as emu:
        api = api_for(emu)
        emu.reconfigure(credits=0.0)
        assert (await api.submit(prompt="p")).status == 406
        emu.reconfigure(credits=5.0)
        assert (await api.submit(prompt="p")).status == 200


@pytest.mark.parametrize(
    ("headers", "data"),
    [
        ({"Content-Type": "text/plain"}, b'{"prompt": "p"}'),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"prompt=p"),
        ({}, b'{"prompt": "p"}'),
    ],
)
async def test_non_json_content_type_is_406(
    emulator: Emulator, api_for: Callable[[Emulator], Any], headers: dict[str, str], data: bytes
) -> None:
    api = api_for(emulator)
    for path in ("/v2/flux-kontext-max", "/upload-asset"):
        reply = await api.request("POST", path, headers=headers, data=data)
        assert reply.status == 406
        assert reply.body == "Invalid content type"
    assert emulator.stats()["submits"] == 0


async def test_status_and_result_expire_after_retention(
    make_emulator: Make, api_for: Callable[[Emulator], Any], wait_until: Any
) -> None:
    async with make_emulator(retention_s=0.5, latency_mean=0.01, latency_sd=0.0, latency_min=0.01) as emu:
        api = api_for(emu)
        rid = (await api.submit_ok(prompt="p"))["request_id"]
        await api.until_state(rid, "COMPLETED")
        first = await api.request("GET", f"/v2/requests/{rid}")
        assert first.status == 200
        output = first.body["output"]

        async def gone() -> bool:
            return bool((await api.request("GET", f"/v2/requests/{rid}/status")).status == 404)

        await wait_until(gone, within=5.0, what="status 404 after retention")
        loop_now = emu.core.unix(emu.core.clock())
        info = emu.request_info(rid)
        assert info is not None
        assert loop_now - info["submitted_at"] >= 0.5
        for path in (f"/v2/requests/{rid}/status", f"/v2/requests/{rid}"):
            reply = await api.request("GET", path)
            assert (reply.status, reply.body) == (404, {"error": f"Request {rid} not found"})
        media = await api.request("GET", output, key=None)
        assert media.status == 200  # the file outlives the request record


async def test_unknown_request_is_404(emulator: Emulator, api_for: Callable[[Emulator], Any]) -> None:
    api = api_for(emulator)
    reply = await api.request("GET", "/v2/requests/0000-nope/status")
    assert (reply.status, reply.body) == (404, {"error": "Request 0000-nope not found"})
    assert emulator.request_info("0000-nope") is None
    assert (await api.request("GET", "/_emulator/requests/0000-nope", key=None)).status == 404

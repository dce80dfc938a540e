"""The v2 queue's state machine through a plain aiohttp client: submit, poll, result, FAILED as 422."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from batchflux.emulator import Emulator

Make = Callable[..., Emulator]


async def test_submit_poll_result(make_emulator: Make, api_for: Callable[[Emulator], Any]) -> None:
    async with make_emulator(latency_mean=0.1, latency_sd=0.0) as emu:
        api = api_for(emu)
        sub = await api.submit_ok(prompt="make it blue")
        rid = sub["request_id"]
        assert sub["status"] == "QUEUED"
        assert sub["status_url"] == f"{emu.base_url}/v2/requests/{rid}/status"
        assert sub["poll_url"] == sub["status_url"]
        assert sub["response_url"] == f"{emu.base_url}/v2/requests/{rid}"
        await api.until_state(rid, "COMPLETED")
        status = await api.request("GET", sub["status_url"])
        assert status.status == 200
        assert status.body["status"] == "COMPLETED"
        assert status.body["request_id"] == rid
        assert status.body["metrics"]["inference_time"] == pytest.approx(0.1, abs=1e-3)
        result = await api.request("GET", sub["response_url"])
        assert result.status == 200
        assert result.body["output"] == f"{emu.base_url}/media/{rid}.png"
        stats = emu.stats()
        assert (stats["submits"], stats["status_calls"], stats["result_calls"]) == (1, 1, 1)
        info = emu.request_info(rid)
        assert info is not None
        assert (info["status_calls"], info["result_calls"]) == (1, 1)
        assert info["output_url"] == result.body["output"]
        assert info["sha256"] is not None  # rendered when the result went out


async def test_jobs_beyond_the_workers_stay_queued(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    async with make_emulator(workers=1, latency_mean=1.0, latency_sd=0.0) as emu:
        api = api_for(emu)
        first = (await api.submit_ok(prompt="one"))["request_id"]
        second = (await api.submit_ok(prompt="two"))["request_id"]
        early = await api.request("GET", f"/v2/requests/{second}/status")
        assert early.body["status"] == "QUEUED"
        assert early.body["metrics"] == {}
        assert (await api.request("GET", f"/v2/requests/{first}/status")).body["status"] == "PROCESSING"
        premature = await api.request("GET", f"/v2/requests/{second}")
        assert premature.status == 200
        assert premature.body["status"] in ("QUEUED", "PROCESSING")
        assert "output" not in premature.body
        await api.until_state(second, "COMPLETED")
        a, b = emu.request_info(first), emu.request_info(second)
        assert a is not None
        assert b is not None
        assert b["started_at"] == pytest.approx(a["completed_at"], abs=1e-6)  # FIFO behind the one slot
        assert emu.stats()["peak_active"] == 2
        assert emu.stats()["jobs_by_state"] == {"QUEUED": 0, "PROCESSING": 0, "COMPLETED": 2, "FAILED": 0}


async def test_moderation_fails_with_422_on_status_and_result(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    async with make_emulator(latency_mean=0.05, moderation_words=("forbidden",)) as emu:
        api = api_for(emu)
        rid = (await api.submit_ok(prompt="Something FORBIDDEN here"))["request_id"]
        await api.until_state(rid, "FAILED")
        for path in (f"/v2/requests/{rid}/status", f"/v2/requests/{rid}"):
            reply = await api.request("GET", path)
            assert reply.status == 422
            assert reply.body["status"] == "FAILED"
            assert reply.body["request_id"] == rid
            assert reply.body["error"].startswith("content blocked")
            assert "metrics" in reply.body
            assert "output" not in reply.body
        assert (await api.request("GET", f"/media/{rid}.png")).status == 404


async def test_invalid_params_rejected_at_submit_or_failed_at_run(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    bad = {
        "prompt": "x",
        "aspect_ratio": "5:7",
        "safety_tolerance": 5,
        "input_image": "http://127.0.0.1:9/a.png",
    }
    async with make_emulator(latency_mean=0.05) as emu:
        api = api_for(emu)
        reply = await api.submit(**bad)
        assert reply.status == 400
        assert "aspect_ratio" in reply.body["error"]
        assert "safety_tolerance" in reply.body["error"]
        assert (await api.submit(aspect_ratio="1:1")).status == 400  # prompt is required
        assert (await api.submit("some-other-model", whatever=[1, 2])).status == 200  # unchecked slug
        emu.reconfigure(invalid_params_at="run")
        rid = (await api.submit_ok(**bad))["request_id"]
        await api.until_state(rid, "FAILED")
        failed = await api.request("GET", f"/v2/requests/{rid}/status")
        assert failed.status == 422
        assert "aspect_ratio" in failed.body["error"]
        assert emu.stats()["submits"] == 2


async def test_other_keys_requests_are_not_found(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    async with make_emulator(keys=("SG_aaaaaaaaaaaaaaaa", "SG_bbbbbbbbbbbbbbbb")) as emu:
        api = api_for(emu)
        reply = await api.request(
            "POST", "/v2/flux-kontext-max", key="SG_aaaaaaaaaaaaaaaa", json={"prompt": "p"}
        )
        rid = reply.body["request_id"]
        mine = await api.request("GET", f"/v2/requests/{rid}/status", key="SG_aaaaaaaaaaaaaaaa")
        theirs = await api.request("GET", f"/v2/requests/{rid}/status", key="SG_bbbbbbbbbbbbbbbb")
        assert mine.status == 200
        assert theirs.status == 404
        assert theirs.body == {"error": f"Request {rid} not found"}


async def test_unauthorized(emulator: Emulator, api_for: Callable[[Emulator], Any]) -> None:
    api = api_for(emulator)
    assert (await api.submit_ok(prompt="p"))["request_id"]
    cases = [
        ("POST", "/v2/flux-kontext-max", None),
        ("POST", "/v2/flux-kontext-max", "SG_0000000000000000"),
        ("GET", "/v2/requests/x/status", None),
        ("GET", "/v2/requests/x", "Bearer nope"),
        ("GET", "/v1/get-user-credits", None),
        ("POST", "/upload-asset", None),
    ]
    for method, path, key in cases:
        reply = await api.request(method, path, key=key, json={"prompt": "p"})
        assert reply.status == 401, (method, path)
        assert "error" in reply.body
    bearer = await api.request(
        "POST",
        "/v2/flux-kontext-max",
        key=None,
        headers={"Authorization": "Bearer SG_e0e0e0e0e0e0e0e0"},
        json={},
    )
    assert bearer.status == 401
    stats = emulator.stats()
    assert stats["unauthorized"] == len(cases) + 1
    assert stats["submits"] == 1

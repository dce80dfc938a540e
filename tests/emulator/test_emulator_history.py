"""The request history (segmind-v2.md, "Request history"): every request of the key, of any age,
with its inputs, outcome, cost and output; a page at a time; 400 for what the server refuses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from batchflux.emulator import Emulator
from batchflux.emulator.config import HISTORY_OUTAGES

Make = Callable[..., Emulator]
FAST = {"latency_mean": 0.02, "latency_sd": 0.0, "latency_min": 0.01}
HISTORY = "/inference-request/request-history"
ROW_KEYS = {
    "request_id", "model_name", "model_status", "credits_deduction", "request_body",
    "generation_url", "latency_ms", "error", "created_at", "updated_at",
}  # fmt: skip


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def days_ago(n: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=n)).isoformat()


async def test_a_completed_request_has_its_body_cost_output_and_latency(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    async with make_emulator(price=0.12, **FAST) as emu:
        api = api_for(emu)
        params = {"prompt": "a red door", "aspect_ratio": "4:3", "seed": 7, "output_format": "jpg"}
        rid = (await api.submit_ok(**params))["request_id"]
        await api.until_state(rid, "COMPLETED")
        row = (await api.request("GET", f"{HISTORY}/{rid}")).body
        assert set(row) == ROW_KEYS
        assert row["request_id"] == rid
        assert row["model_name"] == "flux-kontext-max"
        assert row["model_status"] == "COMPLETED"
        assert row["credits_deduction"] == pytest.approx(0.12)
        assert row["request_body"] == params
        assert row["generation_url"] == f"{emu.base_url}/media/{rid}.jpg"
        assert row["error"] is None
        assert isinstance(row["latency_ms"], int)
        assert row["latency_ms"] >= 10
        created = datetime.fromisoformat(row["created_at"])
        info = emu.request_info(rid)
        assert info is not None
        assert created.timestamp() == pytest.approx(info["submitted_at"], abs=0.002)
        result = (await api.request("GET", f"/v2/requests/{rid}")).body
        assert result["output"] == row["generation_url"]  # the same file the v2 result names
        listed = (await api.request("GET", HISTORY)).body
        assert listed["data"] == [row]
        assert (listed["page"], listed["per_page"], listed["total"], listed["total_pages"]) == (1, 20, 1, 1)


async def test_failed_and_pending_rows(make_emulator: Make, api_for: Callable[[Emulator], Any]) -> None:
    async with make_emulator(**FAST) as emu:
        api = api_for(emu)
        blocked = (await api.submit_ok(prompt="something nsfw"))["request_id"]
        await api.until_state(blocked, "FAILED")
        emu.reconfigure(latency_mean=60.0)
        slow = (await api.submit_ok(prompt="slow"))["request_id"]
        failed = (await api.request("GET", f"{HISTORY}/{blocked}")).body
        assert failed["model_status"] == "FAILED"
        assert failed["error"].startswith("content blocked")
        assert failed["credits_deduction"] == 0.0  # failed requests are not billed
        assert failed["generation_url"] is None
        pending = (await api.request("GET", f"{HISTORY}/{slow}")).body
        assert pending["model_status"] == "PENDING"
        assert pending["generation_url"] is None
        assert pending["latency_ms"] is None
        assert pending["request_body"] == {"prompt": "slow"}
        only_failed = (await api.request("GET", HISTORY, params={"status": "FAILED"})).body
        assert [r["request_id"] for r in only_failed["data"]] == [blocked]


async def test_a_record_lands_after_the_delay_and_has_empty_fields_until_then(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    async with make_emulator(history_delay_s=3600.0, **FAST) as emu:
        api = api_for(emu)
        rid = (await api.submit_ok(prompt="p"))["request_id"]
        await api.until_state(rid, "COMPLETED")
        early = (await api.request("GET", f"{HISTORY}/{rid}")).body
        assert {k for k, v in early.items() if v is not None} == {"request_id", "model_name", "created_at"}
        assert (await api.request("GET", HISTORY)).body["data"] == [early]
        assert (await api.request("GET", HISTORY, params={"status": "COMPLETED"})).body["data"] == []
        emu.reconfigure(history_delay_s=0.0)  # landing is computed on read
        landed = (await api.request("GET", f"{HISTORY}/{rid}")).body
        assert landed["model_status"] == "COMPLETED"
        assert landed["request_body"] == {"prompt": "p"}


async def test_records_outlive_the_one_hour_retention(
    make_emulator: Make, api_for: Callable[[Emulator], Any], wait_until: Any
) -> None:
    async with make_emulator(retention_s=0.2, **FAST) as emu:
        api = api_for(emu)
        rid = (await api.submit_ok(prompt="p"))["request_id"]

        async def forgotten() -> bool:
            return (await api.request("GET", f"/v2/requests/{rid}/status")).status == 404

        await wait_until(forgotten, what="the v2 record to expire")
        row = (await api.request("GET", f"{HISTORY}/{rid}")).body
        assert row["model_status"] == "COMPLETED"
        media = await api.request("GET", row["generation_url"], key=None)
        assert media.status == 200
        assert media.raw.startswith(b"\x89PNG")


async def test_the_file_is_gone_after_media_retention(
    make_emulator: Make, api_for: Callable[[Emulator], Any], wait_until: Any
) -> None:
    async with make_emulator(media_retention_s=0.2, **FAST) as emu:
        api = api_for(emu)
        rid = (await api.submit_ok(prompt="p"))["request_id"]
        await api.until_state(rid, "COMPLETED")
        url = (await api.request("GET", f"{HISTORY}/{rid}")).body["generation_url"]

        async def gone() -> bool:
            return (await api.request("GET", url, key=None)).status == 404

        await wait_until(gone, what="the output file to be deleted")
        assert (await api.request("GET", f"{HISTORY}/{rid}")).body["generation_url"] == url  # still named


async def test_pages_sorting_and_filters(make_emulator: Make, api_for: Callable[[Emulator], Any]) -> None:
    async with make_emulator(**FAST) as emu:
        api = api_for(emu)
        ids = [(await api.submit_ok(prompt=f"p{i}"))["request_id"] for i in range(5)]
        other = (await api.submit(slug="some-other-model", prompt="x")).body["request_id"]
        for rid in [*ids, other]:
            await api.until_state(rid, "COMPLETED")

        async def listed(**query: Any) -> dict[str, Any]:
            reply = await api.request("GET", HISTORY, params={k: str(v) for k, v in query.items()})
            assert reply.status == 200, reply.body
            body: dict[str, Any] = reply.body
            return body

        pages = [await listed(model_name="kontext", per_page=2, page=p) for p in (1, 2, 3, 4)]
        assert [[r["request_id"] for r in p["data"]] for p in pages] == [
            ids[4:2:-1],
            ids[2:0:-1],
            ids[:1],
            [],
        ]  # newest first
        assert {(p["total"], p["total_pages"]) for p in pages} == {(5, 3)}
        ascending = await listed(model_name="KONTEXT", sort_order="asc", per_page=100)
        assert [r["request_id"] for r in ascending["data"]] == ids
        assert (await listed())["total"] == 6
        assert [r["request_id"] for r in (await listed(model_name="other"))["data"]] == [other]
        assert (await listed(sort_by="model_name", sort_order="asc"))["data"][0]["request_id"] == ids[0]
        assert (await listed(sort_by="credits_deduction"))["total"] == 6
        assert (await listed(from_date=today(), to_date=today()))["total"] == 6
        assert (await listed(from_date=days_ago(30), to_date=days_ago(1)))["total"] == 0


@pytest.mark.parametrize(
    "query",
    [
        {"per_page": "101"},
        {"per_page": "0"},
        {"per_page": "many"},
        {"page": "0"},
        {"from_date": days_ago(31), "to_date": today()},  # 32 days
        {"from_date": today(), "to_date": days_ago(1)},
        {"from_date": "2026/01/01"},
        {"status": "QUEUED"},
        {"sort_by": "latency_ms"},
        {"sort_order": "up"},
    ],
)
async def test_refused_queries_are_400(
    make_emulator: Make, api_for: Callable[[Emulator], Any], query: dict[str, str]
) -> None:
    async with make_emulator(**FAST) as emu:
        reply = await api_for(emu).request("GET", HISTORY, params=query)
        assert reply.status == 400
        assert isinstance(reply.body["error"], str)
        assert reply.body["error"]


async def test_the_widest_window_is_31_days(make_emulator: Make, api_for: Callable[[Emulator], Any]) -> None:
    async with make_emulator(**FAST) as emu:
        reply = await api_for(emu).request("GET", HISTORY, params={"from_date": days_ago(30)})
        assert reply.status == 200


async def test_only_the_callers_own_requests(make_emulator: Make, api_for: Callable[[Emulator], Any]) -> None:
    async with make_emulator(keys=("SG_a", "SG_b"), **FAST) as emu:
        api = api_for(emu)
        mine = (await api.request("POST", "/v2/flux-kontext-max", key="SG_a", json={"prompt": "p"})).body
        assert (await api.request("GET", HISTORY, key="SG_b")).body["data"] == []
        theirs = await api.request("GET", f"{HISTORY}/{mine['request_id']}", key="SG_b")
        assert theirs.status == 404
        assert (await api.request("GET", f"{HISTORY}/no-such-id", key="SG_a")).status == 404
        assert (await api.request("GET", HISTORY, key=None)).status == 401
        assert (await api.request("GET", f"{HISTORY}/{mine['request_id']}", key=None)).status == 401


async def test_history_calls_are_counted(make_emulator: Make, api_for: Callable[[Emulator], Any]) -> None:
    async with make_emulator(**FAST) as emu:
        api = api_for(emu)
        rid = (await api.submit_ok(prompt="p"))["request_id"]
        await api.request("GET", HISTORY)
        await api.request("GET", HISTORY, params={"per_page": "500"})  # refused, still a call
        await api.request("GET", f"{HISTORY}/{rid}")
        stats = emu.stats()
        assert (stats["history_calls"], stats["history_record_calls"]) == (2, 1)
        assert stats["status_calls"] == stats["result_calls"] == 0


@pytest.mark.parametrize("outage", HISTORY_OUTAGES)
async def test_an_outage_fails_both_endpoints(
    make_emulator: Make, api_for: Callable[[Emulator], Any], outage: str
) -> None:
    async with make_emulator(history_outage=outage, **FAST) as emu:
        api = api_for(emu)
        rid = (await api.submit_ok(prompt="p"))["request_id"]
        for path in (HISTORY, f"{HISTORY}/{rid}"):
            reply = await api.request("GET", path)
            if outage == "envelope":
                assert reply.status == 200
                assert not {"data", "request_id", "model_status"} & set(reply.body)
            else:
                assert reply.status == int(outage)
        assert (await api.request("GET", f"/v2/requests/{rid}/status")).status == 200  # v2 unaffected


async def test_faults_reach_the_history_and_polls_may_count_toward_the_quota(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    async with make_emulator(faults={"500": 1.0}, fault_endpoints=frozenset({"history"}), **FAST) as emu:
        api = api_for(emu)
        assert (await api.request("GET", HISTORY)).status == 500
        assert (await api.submit(prompt="p")).status == 200
        assert emu.stats()["faults"]["500"] == 1
    async with make_emulator(rpm=1, count_polls=True, **FAST) as emu:
        api = api_for(emu)
        assert (await api.request("GET", HISTORY)).status == 200
        limited = await api.request("GET", HISTORY)
        assert limited.status == 429
        assert "x-rate-limit-reset-at-utc" in limited.headers

"""The request history at work, through the real client and emulator: a submit whose answer was lost
is found and not paid again; a request past its hour is fetched from its record; and whenever the
history cannot answer, the run does what it did without it and says so once.

Each branch: found; not landed yet, then found; not found (resubmitted, counted as a possible
duplicate); taken by another job; FAILED; PENDING; the file gone; the history down; an envelope of
an unknown shape. Runs are in-process (:func:`runkit.run_against`); a run "killed" mid-flight is
one stopped at once while status and result calls fail, which leaves the same ledger a SIGKILL
would (the CLI and a real kill: ``test_resume_history_kill.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from runkit import (
    assert_images_match_emulator,
    count,
    plain_jobs,
    read_events,
    run_against,
    serve,
    since_last_start,
    wait_until,
    write_manifest,
)

from batchflux.emulator import DEFAULT_API_KEY, Emulator, EmulatorConfig
from batchflux.engine.config import EngineConfig
from batchflux.ledger import Event, EventType
from batchflux.run.exitcodes import ExitCode
from batchflux.run.runner import Run, RunOptions, RunResult

FAST: dict[str, Any] = {"latency_mean": 0.05, "latency_sd": 0.01, "latency_min": 0.01}
RETENTION = 1.0
FALLBACK = "the request history could not answer"


def emulator(**knobs: Any) -> Emulator:
    return Emulator(EmulatorConfig(**{**FAST, **knobs}))


def engine(**changes: Any) -> EngineConfig:
    return EngineConfig(**{"history_wait_s": 0.5, **changes})


def submitted(out: Path) -> list[dict[str, Any]]:
    return [e for e in read_events(out) if e["event"] == "submitted"]


def summary_of(result: RunResult) -> dict[str, Any]:
    assert result.summary is not None, result.message
    return result.summary.to_dict()


async def leave_in_flight(emu: Emulator, manifest: Path, out: Path, jobs: int) -> list[dict[str, Any]]:
    """A run that submits ``jobs`` jobs and stops at once, before it learns any outcome (every
    status and result call fails): the ledger a kill leaves. Returns the ``submitted`` events."""
    emu.reconfigure(faults={"500": 1.0}, fault_endpoints=frozenset({"status", "result"}))
    opts = RunOptions(
        manifest=manifest,
        api_key=DEFAULT_API_KEY,
        out_dir=out,
        base_url=emu.base_url,
        engine=EngineConfig(retention_s=RETENTION),
        report=False,
    )
    run = Run(opts)
    task = asyncio.create_task(run.execute())
    await wait_until(lambda: task.done() or len(submitted(out)) == jobs, what=f"{jobs} submits")
    run.request_stop(0.0)
    run.request_stop(0.0)  # the second stop: at once, nothing drained
    result = await task
    assert result.exit_code == ExitCode.INTERRUPTED, result.message
    emu.reconfigure(faults={})
    return submitted(out)


async def past_retention(events: list[dict[str, Any]]) -> None:
    newest = max(float(e["submitted_at"]) for e in events)
    await wait_until(lambda: time.time() - newest > RETENTION + 0.05, what="retention to pass")


def open_intent(out: Path, job: dict[str, Any], *, ts: float = 0.0, sent: str | None = None) -> None:
    """Append what a run killed between its ``submit_intent`` and the POST leaves behind."""
    params = {"aspect_ratio": "1:1", "output_format": "png", **{k: v for k, v in job.items() if k != "id"}}
    data: dict[str, Any] = {"fingerprint": "", "model": "flux-kontext-max", "params": params}
    if sent is not None:
        data["input_sent"] = sent
    out.mkdir(parents=True, exist_ok=True)
    with (out / "ledger.jsonl").open("a") as ledger:
        ledger.write(Event(EventType.SUBMIT_INTENT, job["id"], data, ts=ts).encode() + "\n")


async def post(emu: Emulator, body: dict[str, Any]) -> str:
    """A submit made outside batchflux (as a killed run's POST that got through would be)."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{emu.base_url}/v2/flux-kontext-max", json=body, headers={"x-api-key": DEFAULT_API_KEY}
        ) as r,
    ):
        assert r.status == 200
        rid: str = (await r.json())["request_id"]
        return rid


# ---- open intents -----------------------------------------------------------------------------------


async def test_submits_without_an_answer_are_found_and_not_paid_again(tmp_path: Path) -> None:
    jobs = plain_jobs(6)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with emulator(faults={"drop": 1.0}, fault_endpoints=frozenset({"submit"}), price=0.1) as emu:
        result = await run_against(emu, manifest, out, engine=engine())
        stats = emu.stats()
        assert result.exit_code == ExitCode.OK, result.message
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
    assert (stats["submits"], stats["duplicate_submits"], stats["faults"]["drop"]) == (6, 0, 6)
    events = submitted(out)
    assert [e.get("recovered") for e in events] == [True] * 6
    assert {e["credits_deduction"] for e in events} == {0.1}
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {(r["cost_usd"], r["cost_source"]) for r in rows} == {(0.1, "actual")}  # what Segmind said
    s = summary_of(result)
    assert (s["recovered_submits"], s["possible_duplicates"], s["history_cost_requests"]) == (6, 0, 6)
    assert s["history_cost_usd"] == pytest.approx(0.6)
    assert s["api_calls"]["history"] == stats["history_calls"] >= 1
    assert count(read_events(out), "submit_intent") == 6  # one POST each: none sent twice


async def test_a_record_that_lands_late_is_found_on_the_second_look(tmp_path: Path) -> None:
    jobs = plain_jobs(3)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    knobs = {"faults": {"drop": 1.0}, "fault_endpoints": frozenset({"submit"}), "history_delay_s": 0.8}
    async with emulator(**knobs) as emu:
        result = await run_against(emu, manifest, out, engine=engine(history_wait_s=1.5))
        stats = emu.stats()
        assert result.exit_code == ExitCode.OK, result.message
    assert (stats["submits"], stats["duplicate_submits"]) == (3, 0)
    assert stats["history_calls"] >= 2  # a look that saw rows with empty fields, then one that matched
    assert summary_of(result)["recovered_submits"] == 3


async def test_a_submit_the_history_never_shows_is_sent_again_and_counted(tmp_path: Path) -> None:
    """In a run: not found after the wait → sent again under a new intent, a possible duplicate.
    The next run finds the requests those submits made, once their records land."""
    jobs = plain_jobs(2)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    knobs = {"faults": {"drop": 1.0}, "fault_endpoints": frozenset({"submit"}), "history_delay_s": 3600.0}
    async with emulator(**knobs) as emu:
        first = await run_against(
            emu, manifest, out, engine=engine(history_wait_s=0.2, ambiguous_resubmits=1)
        )
        stats = emu.stats()
        assert first.exit_code == ExitCode.JOBS_FAILED, first.message  # both left for the next run
        assert (stats["submits"], stats["duplicate_submits"]) == (4, 2)
        s = summary_of(first)
        assert (s["possible_duplicates"], s["recovered_submits"]) == (4, 0)
        assert stats["history_calls"] >= 4  # two looks for each of the four submits

        emu.reconfigure(faults={}, history_delay_s=0.0)
        second = await run_against(emu, manifest, out, engine=engine())
        assert second.exit_code == ExitCode.OK, second.message
        assert emu.stats()["submits"] == 4  # nothing paid a third time
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
    s = summary_of(second)
    assert (s["recovered_submits"], s["possible_duplicates"]) == (2, 2)  # the earlier lost ones stay counted


async def test_an_open_intent_nobody_sent_is_resubmitted_after_the_wait(tmp_path: Path) -> None:
    jobs = plain_jobs(2)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    open_intent(out, jobs[0], ts=time.time())
    async with emulator() as emu:
        result = await run_against(emu, manifest, out, engine=engine(history_wait_s=0.3))
        stats = emu.stats()
        assert result.exit_code == ExitCode.OK, result.message
    assert (stats["submits"], stats["duplicate_submits"]) == (2, 0)
    assert stats["history_calls"] == 2  # the first look, and the one after the landing wait
    s = summary_of(result)
    assert (s["possible_duplicates"], s["recovered_submits"]) == (1, 0)


def run_event(out: Path, kind: EventType, ts: float) -> None:
    """Append a run's start or (clean) finish."""
    data: dict[str, Any] = {"run_id": "earlier"} | (
        {"exit_code": 130} if kind is EventType.RUN_FINISHED else {}
    )
    out.mkdir(parents=True, exist_ok=True)
    with (out / "ledger.jsonl").open("a") as ledger:
        ledger.write(Event(kind, None, data, ts=ts).encode() + "\n")


async def test_an_old_open_intent_of_a_run_that_stopped_cleanly_is_looked_up_once(tmp_path: Path) -> None:
    jobs = plain_jobs(1)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    # The run that wrote it stopped cleanly 10 minutes ago: no POST of it left after that, so its
    # record would have landed long ago.
    now = time.time()
    run_event(out, EventType.RUN_STARTED, now - 700)
    open_intent(out, jobs[0], ts=now - 650)
    run_event(out, EventType.RUN_FINISHED, now - 600)
    async with emulator() as emu:
        result = await run_against(emu, manifest, out, engine=engine(history_wait_s=60.0))
        assert result.exit_code == ExitCode.OK, result.message
        assert emu.stats()["history_calls"] == 1


async def test_an_old_open_intent_of_a_killed_run_waits_for_a_late_record(tmp_path: Path) -> None:
    """The intent is 10 minutes old, but its run was killed: its POST may have left just before the
    kill (a submit that waited out 429s), and its record may still be on its way. The wait counts
    from this run's start, not from the intent: the request is found, not paid twice."""
    jobs = plain_jobs(1)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    now = time.time()
    run_event(out, EventType.RUN_STARTED, now - 700)
    open_intent(out, jobs[0], ts=now - 600)
    async with emulator(history_delay_s=0.6) as emu:
        rid = await post(
            emu, {"prompt": "edit number 0", "seed": 0, "aspect_ratio": "1:1", "output_format": "png"}
        )
        result = await run_against(emu, manifest, out, engine=engine(history_wait_s=1.0))
        stats = emu.stats()
        assert result.exit_code == ExitCode.OK, result.message
    assert (stats["submits"], stats["history_calls"]) == (1, 2)  # not found yet, then found
    assert [(e["request_id"], e.get("recovered")) for e in submitted(out)] == [(rid, True)]
    assert summary_of(result)["possible_duplicates"] == 0


async def test_an_open_intent_at_resume_adopts_the_request_it_made(tmp_path: Path) -> None:
    jobs = plain_jobs(3)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with emulator() as emu:
        at = time.time()
        open_intent(out, jobs[1], ts=at)
        rid = await post(
            emu, {"prompt": "edit number 1", "seed": 1, "aspect_ratio": "1:1", "output_format": "png"}
        )
        result = await run_against(emu, manifest, out, engine=engine())
        stats = emu.stats()
        assert result.exit_code == ExitCode.OK, result.message
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
    assert (stats["submits"], stats["duplicate_submits"]) == (3, 0)
    adopted = [e for e in submitted(out) if e["job"] == "job0001"]
    assert [(e["request_id"], e.get("recovered")) for e in adopted] == [(rid, True)]
    assert summary_of(result)["possible_duplicates"] == 0
    assert summary_of(result)["recovered_submits"] == 1


async def test_a_request_another_job_holds_is_never_taken(tmp_path: Path) -> None:
    """Two jobs that send the same body: one is done with its request; the other's open intent
    must not adopt it (that job would get the same image and its own request would go unclaimed)."""
    twin = {"prompt": "same edit", "seed": 7}
    first = write_manifest(tmp_path / "m1", [{"id": "a", **twin}])
    both = write_manifest(tmp_path / "m2", [{"id": "a", **twin}, {"id": "b", **twin}])
    out = tmp_path / "out"
    async with emulator() as emu:
        assert (await run_against(emu, first, out)).exit_code == ExitCode.OK
        held = submitted(out)[0]["request_id"]
        open_intent(out, {"id": "b", **twin}, ts=time.time())
        result = await run_against(emu, both, out, engine=engine(history_wait_s=0.2))
        assert result.exit_code == ExitCode.OK, result.message
        assert_images_match_emulator(emu, out, ["a", "b"])
        assert emu.stats()["submits"] == 2
    b = [e for e in submitted(out) if e["job"] == "b"]
    assert len(b) == 1
    assert b[0]["request_id"] != held
    assert "recovered" not in b[0]


async def test_jobs_sending_the_same_body_each_take_their_own_request(tmp_path: Path) -> None:
    twin = {"prompt": "a variation", "seed": -1}
    jobs = [{"id": f"v{n}", **twin} for n in range(3)]
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with emulator() as emu:
        at = time.time()
        for job in jobs:
            open_intent(out, job, ts=at)
        made = {await post(emu, {**twin, "aspect_ratio": "1:1", "output_format": "png"}) for _ in range(2)}
        result = await run_against(emu, manifest, out, engine=engine(history_wait_s=0.2))
        assert result.exit_code == ExitCode.OK, result.message
        assert emu.stats()["submits"] == 3  # two found, one paid for
    ids = {e["job"]: e["request_id"] for e in submitted(out)}
    assert len(set(ids.values())) == 3
    assert made < set(ids.values())
    assert summary_of(result)["recovered_submits"] == 2


async def test_a_local_input_is_matched_by_the_upload_it_was_sent_as(tmp_path: Path) -> None:
    """Two jobs differing only in their local input image: each is matched to its own request by
    the upload URL its intent recorded; an intent that recorded none is never matched."""
    jobs = [
        {"id": "cat", "prompt": "same", "input_image": "img/cat.jpg", "seed": 1},
        {"id": "rocket", "prompt": "same", "input_image": "img/rocket.jpg", "seed": 1},
    ]
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    knobs = {"faults": {"drop": 1.0}, "fault_endpoints": frozenset({"submit"})}
    async with emulator(**knobs) as emu:
        result = await run_against(emu, manifest, out, engine=engine())
        assert result.exit_code == ExitCode.OK, result.message
        assert_images_match_emulator(emu, out, ["cat", "rocket"])
        stats = emu.stats()
    assert (stats["submits"], stats["duplicate_submits"]) == (2, 0)
    intents = {e["job"]: e for e in read_events(out) if e["event"] == "submit_intent"}
    for e in submitted(out):
        info_body = intents[e["job"]]["input_sent"]
        assert info_body.startswith("http://127.0.0.1:")  # the upload URL, not the local path
    assert intents["cat"]["input_sent"] != intents["rocket"]["input_sent"]


# ---- requests past their hour ---------------------------------------------------------------------


async def test_expired_requests_are_fetched_failed_or_resubmitted_by_their_record(tmp_path: Path) -> None:
    jobs = [*plain_jobs(3), {"id": "blocked", "prompt": "an nsfw edit", "seed": 9}]
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with emulator(retention_s=RETENTION) as emu:
        lost = await leave_in_flight(emu, manifest, out, 4)
        await past_retention(lost)
        before = emu.stats()["submits"]
        result = await run_against(emu, manifest, out, engine=engine(retention_s=RETENTION), report=False)
        stats = emu.stats()
        assert result.exit_code == ExitCode.JOBS_FAILED, result.message
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs[:3]])
    assert stats["submits"] == before == 4  # nothing paid again
    assert stats["history_record_calls"] == 4
    s = summary_of(result)
    assert (s["recovered_results"], s["expired_resubmits"]) == (3, 0)
    assert s["failures_by_cause"] == {"moderation": 1}
    assert s["failed_jobs"][0]["error"].startswith("content blocked")
    this_run = since_last_start(read_events(out))
    assert {e["job"] for e in this_run if e["event"] == "result" and e.get("via") == "history"} == {
        "job0000", "job0001", "job0002"
    }  # fmt: skip
    assert count(this_run, "expired") == 0


async def test_an_expired_request_still_pending_is_resubmitted(tmp_path: Path) -> None:
    jobs = plain_jobs(2)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with emulator(retention_s=RETENTION, latency_mean=60.0, latency_sd=0.0) as emu:
        lost = await leave_in_flight(emu, manifest, out, 2)
        await past_retention(lost)
        emu.reconfigure(**FAST)
        result = await run_against(emu, manifest, out, engine=engine(retention_s=RETENTION), report=False)
        stats = emu.stats()
        assert result.exit_code == ExitCode.OK, result.message
    assert (stats["submits"], stats["history_record_calls"]) == (4, 2)
    s = summary_of(result)
    assert (s["recovered_results"], s["expired_resubmits"]) == (0, 2)


async def test_an_expired_request_whose_file_is_gone_is_resubmitted(tmp_path: Path) -> None:
    jobs = plain_jobs(2)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with emulator(retention_s=RETENTION, media_retention_s=1.5) as emu:
        lost = await leave_in_flight(emu, manifest, out, 2)
        await past_retention(lost)
        for e in lost:  # the emulator serves no file for the request any more
            await wait_until(
                lambda e=e: emu.core.completed_output(e["request_id"], "png") is None, what="gone"
            )
        result = await run_against(emu, manifest, out, engine=engine(retention_s=RETENTION), report=False)
        stats = emu.stats()
        assert result.exit_code == ExitCode.OK, result.message
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
    assert (stats["submits"], stats["history_record_calls"]) == (4, 2)
    s = summary_of(result)
    assert (s["recovered_results"], s["expired_resubmits"]) == (2, 2)  # fetched, found gone, paid again


async def test_a_request_that_expires_during_a_run_is_fetched_from_its_record(tmp_path: Path) -> None:
    jobs = plain_jobs(3)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with emulator(
        retention_s=RETENTION, faults={"500": 1.0}, fault_endpoints=frozenset({"status"})
    ) as emu:
        cfg = engine(retention_s=RETENTION, backoff_cap_s=0.1, backoff_base_s=0.01)
        task = asyncio.create_task(run_against(emu, manifest, out, engine=cfg, report=False))
        await wait_until(lambda: task.done() or len(submitted(out)) == 3, what="3 submits")
        await past_retention(submitted(out))
        emu.reconfigure(faults={})  # the next status call hears 404: the request's hour is over
        result = await task
        stats = emu.stats()
        assert result.exit_code == ExitCode.OK, result.message
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
    assert (stats["submits"], stats["history_record_calls"]) == (3, 3)
    s = summary_of(result)
    assert (s["recovered_results"], s["expired_resubmits"]) == (3, 0)


# ---- when the history cannot answer ---------------------------------------------------------------


@pytest.mark.parametrize("outage", ["500", "404", "envelope"])
async def test_without_an_answer_the_run_does_as_before_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, outage: str
) -> None:
    jobs = plain_jobs(4)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with emulator(retention_s=RETENTION) as emu:
        lost = await leave_in_flight(emu, write_manifest(tmp_path / "m3", jobs[:3]), out, 3)
        open_intent(out, jobs[3], ts=time.time())  # and one intent open
        await past_retention(lost)
        emu.reconfigure(history_outage=outage)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="batchflux"):
            # A 500 from a history that answers nothing else is its host's outage: its calls wait
            # for the breaker's decision (shortened here; 20 s by default) before falling back.
            cfg = engine(retention_s=RETENTION, backoff_base_s=0.02, outage_after_s=0.5)
            result = await run_against(emu, manifest, out, engine=cfg, report=False)
        stats = emu.stats()
        assert result.exit_code == ExitCode.OK, result.message
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
    fallbacks = [r for r in caplog.records if FALLBACK in r.getMessage()]
    assert len(fallbacks) == 1, [r.getMessage() for r in caplog.records]
    assert stats["submits"] == 3 + 4  # the expired three and all four again: as without the history
    s = summary_of(result)
    assert (s["expired_resubmits"], s["recovered_results"], s["recovered_submits"]) == (3, 0, 0)
    assert s["possible_duplicates"] == 1


async def test_no_history_asks_nothing(tmp_path: Path) -> None:
    jobs = plain_jobs(2)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with emulator(
        retention_s=RETENTION, faults={"drop": 1.0}, fault_endpoints=frozenset({"submit"})
    ) as emu:
        off = engine(history=False, ambiguous_resubmits=1)
        result = await run_against(emu, manifest, out, engine=off)
        stats = emu.stats()
    assert result.exit_code == ExitCode.JOBS_FAILED
    assert (stats["history_calls"], stats["history_record_calls"]) == (0, 0)
    assert summary_of(result)["possible_duplicates"] == 4


async def test_a_429_from_the_history_pauses_its_calls_and_they_go_on(tmp_path: Path) -> None:
    """History calls wait at a 429 gate of their own kind, announced in the ledger like the others.
    The history answers through a small proxy that refuses its first call with a 429."""
    jobs = plain_jobs(2)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    calls: list[int] = []

    async with emulator(faults={"drop": 1.0}, fault_endpoints=frozenset({"submit"})) as emu:

        async def proxy(request: web.Request) -> web.Response:
            calls.append(1)
            if len(calls) == 1:
                reset = datetime.fromtimestamp(time.time() + 0.3, UTC).isoformat()
                return web.json_response(
                    {"error": "slow down"}, status=429, headers={"x-rate-limit-reset-at-utc": reset}
                )
            url = f"{emu.base_url}/inference-request/request-history"
            async with (
                aiohttp.ClientSession() as http,
                http.get(url, params=request.query, headers={"x-api-key": DEFAULT_API_KEY}) as r,
            ):
                return web.json_response(await r.json(), status=r.status)

        app = web.Application()
        app.router.add_get("/h", proxy)
        async with serve(app) as proxy_url:
            result = await run_against(
                emu, manifest, out, engine=engine(), report=False, history_url=f"{proxy_url}/h"
            )
        stats = emu.stats()
        assert result.exit_code == ExitCode.OK, result.message
    assert (stats["submits"], stats["duplicate_submits"]) == (2, 0)
    s = summary_of(result)
    assert (s["recovered_submits"], s["rate_limited"]) == (2, 1)
    paused = [e for e in read_events(out) if e["event"] == "paused"]
    assert [e["kind"] for e in paused] == ["history"]
    assert len(calls) >= 2


async def test_a_slow_answer_listed_before_the_landing_is_no_final_not_found(tmp_path: Path) -> None:
    """The history reads its list at once but answers 1 s later (a scan of many pages takes that
    long), past the landing wait: the list it read was from before the record landed, so the
    lookup looks once more instead of paying again."""
    jobs = plain_jobs(2)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    knobs = {"faults": {"drop": 1.0}, "fault_endpoints": frozenset({"submit"}), "history_delay_s": 0.3}
    async with emulator(**knobs) as emu:

        async def late(request: web.Request) -> web.Response:
            url = f"{emu.base_url}/inference-request/request-history"
            async with (
                aiohttp.ClientSession() as http,
                http.get(url, params=request.query, headers={"x-api-key": DEFAULT_API_KEY}) as r,
            ):
                body, status = await r.json(), r.status
            await asyncio.sleep(1.0)
            return web.json_response(body, status=status)

        app = web.Application()
        app.router.add_get("/h", late)
        async with serve(app) as proxy_url:
            result = await run_against(
                emu,
                manifest,
                out,
                engine=engine(history_wait_s=0.5),
                report=False,
                history_url=f"{proxy_url}/h",
            )
        stats = emu.stats()
        assert result.exit_code == ExitCode.OK, result.message
    assert (stats["submits"], stats["duplicate_submits"]) == (2, 0)
    assert summary_of(result)["recovered_submits"] == 2

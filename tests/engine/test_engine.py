"""The engine end to end against the real emulator: happy path, faults, quota, failures, auth."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from runkit import (
    assert_images_match_emulator,
    files_containing,
    max_in_window,
    plain_jobs,
    read_events,
    run_against,
    serve,
    write_manifest,
)

from batchflux.api import ApiClient
from batchflux.emulator import DEFAULT_API_KEY, Emulator, EmulatorConfig
from batchflux.engine.config import EngineConfig
from batchflux.engine.core import Engine
from batchflux.engine.pacing import Rate
from batchflux.engine.progress import NullProgress
from batchflux.engine.tracks import Track
from batchflux.ledger import LedgerWriter
from batchflux.ledger.resume import Action, Decision
from batchflux.manifest.job import Job
from batchflux.run.exitcodes import ExitCode
from batchflux.run.preflight import credit_preflight


async def test_happy_path_with_local_inputs(tmp_path: Path) -> None:
    jobs = plain_jobs(8)
    jobs[0]["input_image"] = "img/cat.jpg"
    jobs[1]["input_image"] = "img/cat.jpg"  # the same file: uploaded once
    jobs[2]["input_image"] = "img/rocket.jpg"
    jobs[3]["output_format"] = "jpg"
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(latency_mean=0.1, latency_sd=0.03)) as emu:
        result = await run_against(emu, manifest, out)
        stats = emu.stats()
        assert result.exit_code == ExitCode.OK, result.message
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
    assert stats["upload_calls"] == 2
    assert stats["submits"] == 8
    assert stats["duplicate_submits"] == 0
    assert stats["media_with_key"] == 0
    assert (out / "job0003.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    assert (out / "summary.json").exists()
    assert files_containing(out, DEFAULT_API_KEY) == []


@pytest.mark.slow
async def test_every_job_survives_faults_and_a_429ing_quota(tmp_path: Path) -> None:
    """200 jobs, 10 % of every call failing in each way, and a quota the client is not told."""
    jobs = plain_jobs(200)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    faults = {"500": 0.1, "502": 0.1, "drop": 0.1, "truncate": 0.1}
    # A quota below the in-flight cap: the first burst meets it whatever the machine's speed.
    config = EmulatorConfig(latency_mean=0.1, latency_sd=0.05, faults=faults, rpm=30, window_s=1.0, seed=3)
    cap = 40
    engine = EngineConfig(
        max_in_flight=cap,
        backoff_base_s=0.02,
        backoff_cap_s=0.3,
        get_attempts=30,
        submit_attempts=30,
        ambiguous_resubmits=30,
        download_attempts=30,
    )
    async with Emulator(config) as emu:
        result = await run_against(emu, manifest, out, engine=engine)
        stats = emu.stats()
        assert result.exit_code == ExitCode.OK, result.message
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
    events = read_events(out)
    intents = Counter(e["job"] for e in events if e["event"] == "submit_intent")
    submitted = Counter(e["job"] for e in events if e["event"] == "submitted")
    ambiguous = sum(intents[j] - submitted[j] for j in intents)
    assert stats["faults"].get("drop", 0) > 0
    assert stats["faults"].get("truncate", 0) > 0
    assert stats["rate_limited"] > 0
    assert stats["media_with_key"] == 0
    # Paid duplicates only where the ledger says the submit got no answer.
    assert stats["submits"] - len(jobs) <= ambiguous
    assert stats["duplicate_submits"] <= ambiguous
    assert result.stats is not None
    assert result.stats.peak_in_flight <= cap
    # The server also runs the orphans of submits whose answer was lost, which the client cannot see.
    assert stats["peak_active"] <= cap + ambiguous


async def test_rpm_is_respected_and_a_window_goes_out_at_once(tmp_path: Path) -> None:
    jobs = plain_jobs(25)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(latency_mean=0.05, rpm=10, window_s=1.0)) as emu:
        result = await run_against(emu, manifest, out, engine=EngineConfig(rate=Rate(10, 1.0)))
        stats = emu.stats()
    assert result.exit_code == ExitCode.OK, result.message
    assert stats["rate_limited"] == 0
    times = stats["submit_times"]
    assert len(times) == 25
    assert max_in_window(times, 1.0) <= 10
    first = sorted(times)[:10]
    assert first[-1] - first[0] < 0.5  # the first window's quota is spent as it opens


async def test_failures_are_recorded_and_the_rest_completes(tmp_path: Path) -> None:
    jobs = plain_jobs(10)
    jobs[3]["prompt"] = "make it nsfw please"
    jobs[6]["prompt"] = "a prompt the server finds too long " * 4
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(latency_mean=0.05, max_prompt_chars=100)) as emu:
        result = await run_against(emu, manifest, out)
        stats = emu.stats()
    assert result.exit_code == ExitCode.JOBS_FAILED
    assert result.summary is not None
    failed = {f.id: f for f in result.summary.failed_jobs}
    assert set(failed) == {"job0003", "job0006"}
    assert failed["job0003"].cause == "moderation"
    assert "blocked" in failed["job0003"].error
    assert failed["job0006"].cause == "invalid"
    assert failed["job0006"].http_status == 400
    assert "too long" in failed["job0006"].error
    assert result.summary.counts["done"] == 8
    assert stats["submits"] == 9  # the 400 created nothing, and was not retried


async def test_expired_requests_end_failed_with_the_reason(tmp_path: Path) -> None:
    jobs = plain_jobs(3)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    config = EmulatorConfig(latency_mean=1.0, latency_sd=0.0, retention_s=0.2)
    async with Emulator(config) as emu:
        result = await run_against(
            emu, manifest, out, engine=EngineConfig(retention_s=0.2, expired_resubmits=1)
        )
        stats = emu.stats()
    assert result.exit_code == ExitCode.JOBS_FAILED
    assert result.summary is not None
    assert {f.cause for f in result.summary.failed_jobs} == {"expired"}
    assert all("not found" in f.error or "expired" in f.error for f in result.summary.failed_jobs)
    assert stats["submits"] == 6  # one resubmit each, then failed
    assert result.summary.expired_resubmits == 3


async def test_bad_key_stops_the_run_with_exit_3(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(5))
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig()) as emu:
        result = await run_against(emu, manifest, out, api_key="SG_0000000000000bad", credit_check=False)
        stats = emu.stats()
    assert result.exit_code == ExitCode.STOPPED
    assert "401" in result.message or "key" in result.message.lower()
    assert "\n" not in result.message
    assert stats["submits"] == 0
    assert "SG_0000000000000bad" not in (out / "ledger.jsonl").read_text()


async def test_partial_downloads_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(2))
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    leftovers = [out / ".job0000.png.k3j2.part", out / "sub" / ".x.jpg.99.part"]
    for part in leftovers:
        part.write_bytes(b"\x89PNG half an image")
    async with Emulator(EmulatorConfig(latency_mean=0.05)) as emu:
        result = await run_against(emu, manifest, out)
    assert result.exit_code == ExitCode.OK, result.message
    assert not any(p.exists() for p in leftovers)
    assert sorted(p.name for p in out.glob("*.png")) == ["job0000.png", "job0001.png"]


async def test_credit_check_rides_out_a_passing_fault(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(2))
    config = EmulatorConfig(
        latency_mean=0.05, faults={"502": 0.5}, fault_endpoints=frozenset({"credits"}), seed=1
    )
    async with Emulator(config) as emu:
        result = await run_against(emu, manifest, tmp_path / "out")
        stats = emu.stats()
    assert stats["faults"].get("502", 0) >= 1, "the seed should make the first credit check fail"
    assert result.exit_code == ExitCode.OK, result.message


async def test_an_output_path_that_leaves_the_run_directory_fails_that_job_only(tmp_path: Path) -> None:
    """The manifest refuses such paths; the download stage checks again, lexically, as a last line."""

    def job(job_id: str, output: str) -> Job:
        params = {"prompt": f"edit {job_id}", "aspect_ratio": "1:1", "output_format": "png", "seed": 1}
        return Job(job_id, 0, "flux-kontext-max", params, output, fingerprint=job_id)

    out = tmp_path / "out"
    jobs = [job("inside", "sub/inside.png"), job("escape", "../escape.png"), job("deep", "a/../../deep.png")]
    async with (
        Emulator(EmulatorConfig(latency_mean=0.05, latency_sd=0.0)) as emu,
        aiohttp.ClientSession() as session,
    ):
        client = ApiClient(session, api_key=DEFAULT_API_KEY, base_url=emu.base_url)
        with LedgerWriter(out / "ledger.jsonl") as ledger:
            engine = Engine(
                config=EngineConfig(), client=client, ledger=ledger, out_dir=out, progress=NullProgress()
            )
            stats = await engine.run([Decision(j, Action.SUBMIT, "new", None) for j in jobs])
    assert (out / "sub" / "inside.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted((f.id, f.cause) for f in stats.failures) == [("deep", "invalid"), ("escape", "invalid")]
    assert not (tmp_path / "escape.png").exists()
    assert not (tmp_path / "deep.png").exists()


async def test_a_finished_scout_is_not_replaced_a_failed_one_is(tmp_path: Path) -> None:
    """Before the latency model knows anything only five scouts are polled. One that finishes gives
    its sample and is not replaced: a held request in its place would be old already, polled at
    once, and if done teach only "shorter than my age" — samples that made the model ready early,
    on underestimated latencies (a 300-job batch then cost 2.6 status calls a job, not 1.7)."""
    async with aiohttp.ClientSession() as session:
        client = ApiClient(session, api_key=DEFAULT_API_KEY, base_url="http://127.0.0.1:9")
        with LedgerWriter(tmp_path / "ledger.jsonl") as ledger:
            engine = Engine(
                config=EngineConfig(), client=client, ledger=ledger, out_dir=tmp_path, progress=NullProgress()
            )
            job = Job("j", 0, "flux-kontext-max", {"prompt": "p"}, "j.png", fingerprint="j")
            tracks = [Track(job=job, request_id=f"r{i}", submitted_mono=engine.clock()) for i in range(8)]
            for track in tracks:
                engine.hold(track)
                engine.schedule_first_poll(track)
            scouts = [t for t in tracks if t in engine.scouting]
            assert len(scouts) == 5
            assert len(engine.held) == 3

            engine.fetcher.observe_latency(scouts[0], 1.0)  # finished: its sample, no replacement
            engine.release(scouts[0])  # its result fetched
            assert scouts[0] not in engine.scouting
            assert len(engine.scouting) == 4
            assert len(engine.held) == 3
            assert not engine.latency.ready

            engine.release(scouts[1])  # failed or expired: a held request takes its place
            assert len(engine.scouting) == 4
            assert len(engine.held) == 2


async def test_a_credits_endpoint_that_is_not_there_warns_and_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 404 from the credit pre-flight stops nothing (an account or a proxy without that endpoint);
    a 401 still refuses to start, and a 406 at submit still stops the run."""

    async def unauthorized(request: web.Request) -> web.Response:
        return web.json_response({"error": "bad key"}, status=401)

    locked = web.Application()
    locked.router.add_get("/v1/get-user-credits", unauthorized)
    async with (
        serve(web.Application()) as missing_url,  # no credits route: 404
        serve(locked) as locked_url,
        aiohttp.ClientSession() as session,
    ):
        missing = ApiClient(session, api_key=DEFAULT_API_KEY, base_url=missing_url)
        with caplog.at_level(logging.WARNING, logger="batchflux"):
            assert await credit_preflight(missing, 3, 0.1) is None
        assert "could not check the account's credits" in caplog.text
        refused = ApiClient(session, api_key=DEFAULT_API_KEY, base_url=locked_url)
        refusal = await credit_preflight(refused, 3, 0.1)
        assert refusal is not None
        assert refusal[0] == ExitCode.STOPPED
        assert "refused the credit check" in refusal[1]

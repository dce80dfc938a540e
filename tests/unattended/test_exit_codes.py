"""The cron contract (issue 6): every exit code of ``batchflux run``, reached for real by a
subprocess against the emulator. 130 (signals) lives in test_signals.py, 4 in test_lock_e2e.py."""

from __future__ import annotations

import json
from pathlib import Path

from runkit import (
    Clis,
    assert_images_match_emulator,
    jobs_with,
    plain_jobs,
    read_events,
    summary,
    write_manifest,
)

from batchflux.emulator import Emulator, EmulatorConfig

FAST = EmulatorConfig(latency_mean=0.05, latency_sd=0.01)
BAD_KEY = "SG_0000000000000bad"


def last_finish(out: Path) -> dict[str, object]:
    finished = [e for e in read_events(out) if e["event"] == "run_finished"]
    assert finished, "no run_finished in the ledger"
    return finished[-1]


async def test_0_every_job_done(tmp_path: Path, clis: Clis) -> None:
    jobs = plain_jobs(6)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with Emulator(FAST) as emu:
        result = await clis.run("run", manifest, "--out", out, emu=emu)
        assert result.code == 0, result
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
        assert emu.stats()["submits"] == 6
    assert summary(out)["exit_code"] == 0
    assert summary(out)["counts"] == {"done": 6, "failed": 0, "in_flight": 0, "pending": 0}
    assert last_finish(out)["exit_code"] == 0
    assert "6/6 done, 0 failed" in result.stderr


async def test_1_a_moderated_job_fails_the_rest_complete(tmp_path: Path, clis: Clis) -> None:
    jobs = plain_jobs(5)
    jobs[2]["prompt"] = "make it nsfw"
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with Emulator(FAST) as emu:
        result = await clis.run("run", manifest, "--out", out, emu=emu)
    assert result.code == 1, result
    s = summary(out)
    assert s["exit_code"] == 1
    assert [(f["id"], f["cause"]) for f in s["failed_jobs"]] == [("job0002", "moderation")]
    assert s["counts"]["done"] == 4
    assert last_finish(out)["exit_code"] == 1


async def test_1_a_resumed_runs_summary_lists_the_failures_of_earlier_runs(
    tmp_path: Path, clis: Clis
) -> None:
    jobs = plain_jobs(4)
    jobs[1]["prompt"] = "make it nsfw"
    manifest_dir = tmp_path / "m"
    manifest = write_manifest(manifest_dir, jobs)
    out = tmp_path / "out"
    async with Emulator(FAST) as emu:
        first = await clis.run("run", manifest, "--out", out, emu=emu)
        assert first.code == 1, first
        first_run = summary(out)["run_id"]
        jobs += [{"id": "late", "prompt": "make it nsfw too", "seed": 7}]
        write_manifest(manifest_dir, jobs)
        second = await clis.run("run", manifest, "--out", out, emu=emu)
    assert second.code == 1, second
    s = summary(out)
    assert s["run_id"] != first_run
    assert s["counts"]["failed"] == 2 == len(s["failed_jobs"])
    assert s["failures_by_cause"] == {"moderation": 2}
    assert [(f["id"], f["cause"], f["run_id"]) for f in s["failed_jobs"]] == [
        ("job0001", "moderation", first_run),  # kept from the first run
        ("late", "moderation", s["run_id"]),  # failed in this one
    ]


async def test_2_manifest_error_submits_nothing(tmp_path: Path, clis: Clis) -> None:
    jobs = plain_jobs(3)
    del jobs[1]["prompt"]
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with Emulator(FAST) as emu:
        result = await clis.run("run", manifest, "--out", out, emu=emu)
        assert emu.stats()["submits"] == 0
        assert emu.stats()["credits_calls"] == 0
    assert result.code == 2, result
    assert "batch.yaml:" in result.stderr
    assert "prompt" in result.stderr
    assert not (out / "ledger.jsonl").exists()


async def test_2_without_an_api_key(tmp_path: Path, clis: Clis) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(2))
    async with Emulator(FAST) as emu:
        result = await clis.run("run", manifest, "--out", tmp_path / "out", emu=emu, key=None)
        assert emu.stats()["submits"] == 0
    assert result.code == 2, result
    assert "SEGMIND_API_KEY" in result.stderr


async def test_2_an_output_directory_that_cannot_be_one(tmp_path: Path, clis: Clis) -> None:
    """A file where the run directory should be: one line, no traceback, nothing submitted."""
    manifest = write_manifest(tmp_path / "m", plain_jobs(2))
    (tmp_path / "taken").write_text("a file, not a directory")
    async with Emulator(FAST) as emu:
        for out, extra in (
            (tmp_path / "taken", ()),
            (tmp_path / "taken" / "sub", ()),
            (tmp_path / "taken", ("--dry-run",)),
        ):
            result = await clis.run("run", manifest, "--out", out, *extra, emu=emu)
            assert result.code == 2, result
            assert f"cannot use {out} as the output directory" in result.stderr, result
            assert "Traceback" not in result.stderr
        assert emu.stats()["submits"] == 0


async def test_2_corrupt_ledger_middle_line_is_located_and_left_alone(tmp_path: Path, clis: Clis) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(3))
    out = tmp_path / "out"
    async with Emulator(FAST) as emu:
        first = await clis.run("run", manifest, "--out", out, emu=emu)
        assert first.code == 0, first
        ledger = out / "ledger.jsonl"
        lines = ledger.read_bytes().splitlines(keepends=True)
        lines[3] = b'{"v":1,"ts":17000,"event":"submitted","job":"job0001",\xff garbage\n'
        damaged = b"".join(lines)
        ledger.write_bytes(damaged)
        (out / "job0001.png").unlink()  # something to do, were the ledger readable
        second = await clis.run("run", manifest, "--out", out, emu=emu)
        assert emu.stats()["submits"] == 3
        assert emu.stats()["media_calls"] == 3
    assert second.code == 2, second
    assert "ledger.jsonl:4" in second.stderr
    assert ledger.read_bytes() == damaged  # never rewritten


async def test_3_wrong_key_at_the_credit_preflight(tmp_path: Path, clis: Clis) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(3))
    out = tmp_path / "out"
    async with Emulator(FAST) as emu:
        result = await clis.run("run", manifest, "--out", out, emu=emu, key=BAD_KEY)
        stats = emu.stats()
    assert result.code == 3, result
    assert stats["submits"] == 0
    assert stats["unauthorized"] >= 1
    assert "401" in result.stderr or "key" in result.stderr.lower()
    assert BAD_KEY not in result.stderr + result.stdout


async def test_3_wrong_key_stops_the_run(tmp_path: Path, clis: Clis) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(3))
    out = tmp_path / "out"
    async with Emulator(FAST) as emu:
        result = await clis.run("run", manifest, "--out", out, "--no-credit-check", emu=emu, key=BAD_KEY)
        stats = emu.stats()
    assert result.code == 3, result
    assert stats["submits"] == 0
    assert stats["unauthorized"] >= 1
    assert "401" in result.stderr or "key" in result.stderr.lower()
    assert last_finish(out)["exit_code"] == 3
    assert summary(out)["stop_reason"] == "auth"
    assert BAD_KEY not in result.stderr + result.stdout


async def test_3_max_jobs_then_a_rerun_finishes(tmp_path: Path, clis: Clis) -> None:
    jobs = plain_jobs(5)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with Emulator(FAST) as emu:
        capped = await clis.run("run", manifest, "--out", out, "--max-jobs", "2", emu=emu)
        assert capped.code == 3, capped
        assert emu.stats()["submits"] == 2
        s = summary(out)
        assert s["stop_reason"] == "budget"
        assert s["counts"] == {"done": 2, "failed": 0, "in_flight": 0, "pending": 3}
        assert "--max-jobs 2" in capped.stderr
        rest = await clis.run("run", manifest, "--out", out, emu=emu)
        assert rest.code == 0, rest
        assert emu.stats()["submits"] == 5
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])


async def test_3_max_cost(tmp_path: Path, clis: Clis) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(5))
    out = tmp_path / "out"
    async with Emulator(FAST) as emu:
        result = await clis.run("run", manifest, "--out", out, "--max-cost", "0.25", emu=emu)
        assert emu.stats()["submits"] == 2  # $0.10 each: a third would pass $0.25
    assert result.code == 3, result
    assert summary(out)["stop_reason"] == "budget"
    assert summary(out)["estimated_spend_usd"] <= 0.25


async def test_3_credit_preflight_refuses_to_start(tmp_path: Path, clis: Clis) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(5))
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(latency_mean=0.05, credits=0.45, price=0.10)) as emu:
        result = await clis.run("run", manifest, "--out", out, emu=emu)
        assert emu.stats()["submits"] == 0
        assert emu.stats()["credits_calls"] == 1
    assert result.code == 3, result
    assert "not enough credits" in result.stderr
    assert "5 jobs" in result.stderr


async def test_3_credits_run_out_mid_run_drains_what_is_in_flight(tmp_path: Path, clis: Clis) -> None:
    jobs = plain_jobs(5)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(latency_mean=0.05, credits=0.35, price=0.10)) as emu:
        result = await clis.run("run", manifest, "--out", out, "--no-credit-check", emu=emu)
        stats = emu.stats()
    assert result.code == 3, result
    assert stats["submits"] == 3
    events = read_events(out)
    assert len(jobs_with(events, "downloaded")) == 3  # what was submitted was seen through
    assert summary(out)["stop_reason"] == "credits"
    assert summary(out)["counts"]["pending"] == 2


async def test_0_after_a_torn_last_line_which_is_set_aside(tmp_path: Path, clis: Clis) -> None:
    """The crash case: a write cut short at the end of the ledger is reported and moved aside, not
    an error (contrast with a corrupt middle line, exit 2)."""
    jobs = plain_jobs(3)
    manifest_dir = tmp_path / "m"
    manifest = write_manifest(manifest_dir, jobs)
    out = tmp_path / "out"
    torn = b'{"v":1,"ts":1790000000.5,"event":"submit_intent","job":"job00'
    async with Emulator(FAST) as emu:
        first = await clis.run("run", manifest, "--out", out, emu=emu)
        assert first.code == 0, first
        with (out / "ledger.jsonl").open("ab") as ledger:
            ledger.write(torn)
        jobs += plain_jobs(1, start=3)
        write_manifest(manifest_dir, jobs)
        second = await clis.run("run", manifest, "--out", out, emu=emu)
        assert second.code == 0, second
        assert emu.stats()["submits"] == 4
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
    assert "torn" in second.stderr
    assert torn in (out / "ledger.jsonl.torn").read_bytes()  # kept, not thrown away
    lines = (out / "ledger.jsonl").read_bytes().splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)  # whole lines only now

"""``--dry-run`` (issue 6) on a directory in every state at once: it says what a run would submit,
re-poll, download, skip and keep failed, and the cost — and the API sees nothing of it."""

from __future__ import annotations

import signal
from pathlib import Path

from runkit import Clis, count, plain_jobs, read_events, since_last_start, wait_until, write_manifest

from batchflux.emulator import Emulator, EmulatorConfig


async def test_dry_run_reports_every_action_and_the_cost_and_calls_nothing(
    tmp_path: Path, clis: Clis
) -> None:
    jobs = plain_jobs(10)
    jobs[9]["prompt"] = "an nsfw edit"
    manifest_dir = tmp_path / "m"
    manifest = write_manifest(manifest_dir, jobs)
    out = tmp_path / "out"
    args = ("run", manifest, "--out", out, "--no-report")
    async with Emulator(EmulatorConfig(latency_mean=0.05, latency_sd=0.01)) as emu:
        first = await clis.run(*args, emu=emu)
        assert first.code == 1, first  # 9 done, 1 failed (moderation)
        # Three more jobs, submitted to a slow server, then the run is killed: re-poll them.
        write_manifest(manifest_dir, [*jobs, *plain_jobs(3, start=10)])
        emu.reconfigure(latency_mean=60.0, latency_sd=0.0)
        cli = await clis.start(*args, emu=emu)
        await wait_until(
            lambda: not cli.running or count(since_last_start(read_events(out)), "submitted") == 3,
            what="3 submitted",
        )
        assert cli.running, (await cli.wait()).stderr
        cli.send(signal.SIGKILL)
        await cli.proc.wait()

        for name in ("job0000.png", "job0001.png"):  # result known, file gone: download again
            (out / name).unlink()
        write_manifest(manifest_dir, [*jobs, *plain_jobs(7, start=10)])  # and four new ones
        ledger = (out / "ledger.jsonl").read_bytes()
        summary = (out / "summary.json").read_bytes()
        before = emu.stats()

        dry = await clis.run(*args, "--dry-run", emu=emu)
        no_key = await clis.run(*args, "--dry-run", emu=emu, key=None)
        capped = await clis.run(*args, "--dry-run", "--max-jobs", "2", emu=emu)
        after = emu.stats()

    plan = "resuming: 7 done, 3 re-polled, 2 re-downloaded, 0 resubmitted, 4 new, 1 failed kept"
    for result in (dry, no_key, capped):
        assert result.code == 0, result
        assert plan in result.stderr
        assert "Nothing was submitted" in result.stderr
    expected = "would submit 4, re-poll 3, download 2, skip 7 done, keep 1 failed; estimated cost $0.40"
    assert expected in dry.stderr
    assert expected in no_key.stderr
    assert "would submit 2," in capped.stderr
    assert "estimated cost $0.20" in capped.stderr
    for calls in ("submits", "status_calls", "result_calls", "media_calls", "credits_calls", "upload_calls"):
        assert after[calls] == before[calls], calls
    assert (out / "ledger.jsonl").read_bytes() == ledger
    assert (out / "summary.json").read_bytes() == summary
    assert not (out / "job0000.png").exists()

"""When the server counts polls toward the quota (issue 21): a 429 on any counted kind pauses every
counted kind, and polls go to the result URL alone — one counted call a poll, and the poll that finds
the job done brings its output — whether it answers a request not finished yet with its status or
with a 404 (read as not finished within the request's hour: no job is taken for expired)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from runkit import assert_images_match_emulator, plain_jobs, run_against, summary, write_manifest

from batchflux.emulator import Emulator, EmulatorConfig
from batchflux.run.exitcodes import ExitCode


@pytest.mark.parametrize("pending", ["answers", "404"])
async def test_polls_counted_as_few_calls_a_job_as_the_server_allows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, pending: str
) -> None:
    jobs = plain_jobs(200 if pending == "answers" else 100)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    # The real 50 a minute and ~24 s jobs, scaled to a quick test; enough worker slots that none
    # queues (a queue would widen the latencies the polls aim at). With the 404, latencies spread
    # wide enough that some poll surely meets a request not finished.
    config = EmulatorConfig(
        latency_mean=2.4, latency_sd=0.5 if pending == "answers" else 1.2, rpm=80, window_s=1.0,
        count_polls=True,
        result_pending=pending, workers=100_000,
    )  # fmt: skip
    async with Emulator(config) as emu:
        with caplog.at_level(logging.INFO, logger="batchflux"):
            result = await run_against(emu, manifest, out, report=False)
        stats = emu.stats()
        assert result.exit_code == ExitCode.OK, result.message
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
    said = "\n".join(r.getMessage() for r in caplog.records)
    per_job = stats["counted_calls"] / len(jobs)
    s = summary(out)
    assert s["counts"]["failed"] == 0
    assert s["expired_resubmits"] == 0  # a 404 for a request not finished is not an expiry
    assert stats["duplicate_submits"] == 0
    if pending == "answers":
        assert "polls go there alone" in said
        # Polling the status URL and then the result takes 3.2+ counted calls a job. At this test's
        # quick scale (80 a second, the learner re-reading its window on the way) it measured 2.0-2.4
        # on an idle 2-core machine; the benchmark at the real scale meets 2.2 (bench_hosts: 2.00).
        assert per_job <= 2.5, (per_job, stats)
        # Once the first pause is over, no counted call lands inside one announced later.
        first_pause_end = min(stats["rate_limited_times"]) + config.window_s
        late = [t for t in stats["in_announced_pause_times"] if t > first_pause_end]
        assert late == [], (late, stats["rate_limited_times"])
    else:  # the 404 is learned once, and the polls stay on the result URL
        assert said.count("answers 404 for a request not finished") == 1, said
        # Polling the status URL, then the result, takes 3 counted calls a job at the least (3.04 in
        # bench_hosts). This test's latencies are wide (sd 1.2 s), so some jobs are polled again:
        # 2.7 measured.
        assert per_job < 3.0, (per_job, stats)
        assert stats["status_calls"] < len(jobs) / 10  # only those before polls were seen to count

"""Retention expiry with the request history (issue 13): a real ``batchflux run`` killed with every
request in flight, resumed after the server's one-hour record is gone (shortened to 1 s on both
sides), fetches every image from the requests' history records and pays for none of them again.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from runkit import (
    Clis,
    abandoned_requests,
    assert_images_match_emulator,
    count,
    plain_jobs,
    read_events,
    since_last_start,
    summary,
    wait_until,
    write_manifest,
)

from batchflux.emulator import Emulator, EmulatorConfig

RETENTION = 1.0
JOBS = 10


async def test_a_kill_past_retention_costs_no_second_payment(tmp_path: Path, clis: Clis) -> None:
    jobs = plain_jobs(JOBS)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    args = ("run", manifest, "--out", out, "--retention", "1", "--no-progress", "--no-report")
    # The requests complete on the server at once; the client never hears it (status and result
    # fail), so at the kill every job is submitted and none has its result.
    config = EmulatorConfig(
        latency_mean=0.05,
        latency_sd=0.01,
        retention_s=RETENTION,
        faults={"500": 1.0},
        fault_endpoints=frozenset({"status", "result"}),
    )
    async with Emulator(config) as emu:
        cli = await clis.start(*args, emu=emu)

        def all_submitted() -> bool:
            return not cli.running or count(read_events(out), "submitted") == JOBS

        await wait_until(all_submitted, what="every job submitted")
        assert cli.running, (await cli.wait()).stderr
        cli.send(signal.SIGKILL)
        assert await cli.proc.wait() == -signal.SIGKILL
        lost = {e["job"]: e for e in read_events(out) if e["event"] == "submitted"}
        assert len(lost) == JOBS
        newest = max(float(e["submitted_at"]) for e in lost.values())
        await wait_until(lambda: time.time() - newest > RETENTION + 0.05, what="retention to pass")
        assert emu.stats()["jobs_by_state"]["COMPLETED"] == JOBS

        emu.reconfigure(faults={})
        resumed = await clis.run(*args, emu=emu)
        assert resumed.code == 0, resumed
        stats = emu.stats()
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])

    assert stats["submits"] == JOBS  # 0 resubmits: every record said COMPLETED
    assert stats["history_record_calls"] == JOBS
    assert "request history: looking up 10 expired requests" in resumed.stderr
    assert "request history: 10 expired requests fetched from their record" in resumed.stderr
    s = summary(out)
    assert (s["expired_resubmits"], s["recovered_results"]) == (0, JOBS)
    events = read_events(out)
    this_run = since_last_start(events)
    assert {e["job"]: e["request_id"] for e in this_run if e["event"] == "result"} == {
        job: e["request_id"] for job, e in lost.items()
    }
    assert all(e.get("via") == "history" for e in this_run if e["event"] == "result")
    assert count(this_run, "submit_intent") == 0
    assert abandoned_requests(events) == []

"""Expiry (issue 5): a run killed with requests in flight, resumed after the server forgot them,
resubmits exactly those jobs — and nothing else — and says so.

Retention is shortened to 1 s on both sides (emulator ``retention_s=1.0``, CLI ``--retention 1``).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
from runkit import (
    Clis,
    abandoned_requests,
    assert_images_match_emulator,
    jobs_with,
    plain_jobs,
    read_events,
    since_last_start,
    summary,
    wait_until,
    write_manifest,
)

from batchflux.emulator import DEFAULT_API_KEY, Emulator, EmulatorConfig

RETENTION = 1.0


def unresolved_submits(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Job → its last ``submitted`` event, for jobs with no outcome after it."""
    last: dict[str, dict[str, Any]] = {}
    for e in events:
        job = e["job"]
        if e["event"] == "submitted":
            last[job] = e
        elif e["event"] in ("result", "failed", "expired", "downloaded"):
            last.pop(job, None)
    return last


async def test_requests_past_retention_are_resubmitted_and_only_they(tmp_path: Path, clis: Clis) -> None:
    jobs = plain_jobs(20)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    args = ("run", manifest, "--out", out, "--retention", "1", "--no-progress", "--no-report")
    config = EmulatorConfig(latency_mean=0.05, latency_sd=0.01, retention_s=RETENTION)
    async with Emulator(config) as emu:
        # Half the jobs done and on disk (the cap stops the run with exit 3, resumable).
        first = await clis.run(*args, "--max-jobs", "10", emu=emu)
        assert first.code == 3, first
        done_before = jobs_with(read_events(out), "downloaded")
        assert len(done_before) == 10

        # The rest submitted to a server that will not finish them in time; killed at once.
        emu.reconfigure(latency_mean=60.0, latency_sd=0.0)
        cli = await clis.start(*args, emu=emu)
        await wait_until(
            lambda: not cli.running or len(unresolved_submits(read_events(out))) == 10,
            what="the other 10 jobs submitted",
        )
        assert cli.running, (await cli.wait()).stderr
        cli.send(signal.SIGKILL)
        assert await cli.proc.wait() == -signal.SIGKILL
        lost = unresolved_submits(read_events(out))
        assert set(lost).isdisjoint(done_before)
        assert set(lost) | done_before == {j["id"] for j in jobs}
        submits_before = emu.stats()["submits"]
        assert submits_before == 20

        # The condition the resume rule looks at: retention has passed since the last submit.
        newest = max(float(e["submitted_at"]) for e in lost.values())
        await wait_until(lambda: time.time() - newest > RETENTION, what="retention to pass")
        async with aiohttp.ClientSession(headers={"x-api-key": DEFAULT_API_KEY}) as http:
            for e in lost.values():  # and the server agrees: it forgot them
                async with http.get(str(e["status_url"])) as reply:
                    assert reply.status == 404

        emu.reconfigure(latency_mean=0.05, latency_sd=0.01)
        resumed = await clis.run(*args, emu=emu)
        assert resumed.code == 0, resumed
        stats = emu.stats()
        assert stats["submits"] - submits_before == 10
        assert stats["duplicate_submits"] == 10  # the same bodies again: paid twice, and counted
        assert stats["history_record_calls"] == 10  # each record asked first: still PENDING
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])

    events = read_events(out)
    this_run = since_last_start(events)
    assert jobs_with(this_run, "submit_intent") == set(lost)
    expired = {e["job"]: e["request_id"] for e in this_run if e["event"] == "expired"}
    assert expired == {job: e["request_id"] for job, e in lost.items()}
    assert abandoned_requests(events) == []  # each superseded only after its `expired` event
    assert "10 resubmitted (10 expired)" in resumed.stderr
    assert summary(out)["expired_resubmits"] == 10

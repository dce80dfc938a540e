"""Signals (issue 6): SIGTERM / SIGINT / SIGHUP sent to a real ``batchflux run`` mid-run.

First signal: stop submitting, drain what is in flight, exit 130 with the ledger closed
(``run_finished``) and summary.json saying ``interrupted``; the next run completes the rest without
submitting anything twice. A second signal, or the end of ``--grace``, stops at once and leaves the
in-flight requests for the next run to poll. Any of the three counts as the first or the second.
A run whose console has gone when the signal comes: test_closed_console.py.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
from runkit import (
    Clis,
    ambiguous_count,
    assert_images_match_emulator,
    count,
    jobs_with,
    plain_jobs,
    read_events,
    summary,
    wait_until,
    write_manifest,
)

from batchflux.emulator import Emulator, EmulatorConfig


async def test_sigterm_drains_exits_130_and_the_rerun_finishes_without_duplicates(
    tmp_path: Path, clis: Clis
) -> None:
    jobs = plain_jobs(40)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    args = ("run", manifest, "--out", out, "--no-progress")
    async with Emulator(EmulatorConfig(latency_mean=0.3, latency_sd=0.05)) as emu:
        cli = await clis.start(*args, "--rate", "10/1s", emu=emu)
        await wait_until(
            lambda: not cli.running or count(read_events(out), "submitted") >= 3, what="3 submitted"
        )
        assert cli.running, (await cli.wait()).stderr
        cli.send(signal.SIGTERM)
        stopped = await cli.wait()
        assert stopped.code == 130, stopped
        assert "stopping: no new submits" in stopped.stderr

        events = read_events(out)
        assert events[-1]["event"] == "run_finished"
        assert events[-1]["exit_code"] == 130
        # Drained: everything submitted was seen through to its image; nothing left unanswered.
        assert jobs_with(events, "submitted") == jobs_with(events, "downloaded")
        assert ambiguous_count(events) == 0
        s = summary(out)
        assert s["interrupted"] is True
        assert s["exit_code"] == 130
        assert s["counts"]["in_flight"] == 0
        assert 0 < s["counts"]["pending"] < len(jobs)
        assert s["counts"]["done"] + s["counts"]["pending"] == len(jobs)

        resumed = await clis.run(*args, "--rate", "100/1s", emu=emu)
        assert resumed.code == 0, resumed
        stats = emu.stats()
        assert stats["duplicate_submits"] == 0
        assert stats["submits"] == len(jobs)
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
    assert summary(out)["interrupted"] is False


@pytest.mark.parametrize(
    ("how", "grace", "signals"),
    [
        ("second signal", "60", (signal.SIGINT, signal.SIGINT)),
        ("a hangup, then a stop", "60", (signal.SIGHUP, signal.SIGTERM)),
        ("grace over", "0.5", (signal.SIGTERM,)),
    ],
)
async def test_stopping_at_once_leaves_in_flight_requests_to_the_next_run(
    tmp_path: Path, clis: Clis, how: str, grace: str, signals: tuple[signal.Signals, ...]
) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(5))
    out = tmp_path / "out"
    args = ("run", manifest, "--out", out, "--grace", grace, "--no-progress", "--no-report")
    # The server takes a minute per job: nothing in flight can finish while the test runs.
    async with Emulator(EmulatorConfig(latency_mean=60.0, latency_sd=0.0)) as emu:
        cli = await clis.start(*args, emu=emu)
        await wait_until(
            lambda: not cli.running or count(read_events(out), "submitted") == 5, what="5 submitted"
        )
        for n, sig in enumerate(signals):
            assert cli.running, (await cli.wait()).stderr
            cli.send(sig)
            if n == 0:
                await wait_until(
                    lambda: "stopping: no new submits" in cli.output()[1], what="the first signal's message"
                )
        stopped = await cli.wait(within=30.0)  # a minute of latency, a 60 s grace: it did not wait
        assert stopped.code == 130, stopped

        events = read_events(out)
        assert events[-1]["event"] == "run_finished"
        assert events[-1]["exit_code"] == 130
        assert count(events, "downloaded") == 0
        s = summary(out)
        assert s["interrupted"] is True
        assert s["counts"]["in_flight"] == 5

        # The next run would poll them again, never resubmit.
        dry = await clis.run(*args, "--dry-run", emu=emu)
        assert dry.code == 0, dry
        assert "would submit 0, re-poll 5" in dry.stderr
        status = await clis.run("status", out, "--json")
        assert status.code == 0, status
        assert json.loads(status.stdout)["in_flight"]["count"] == 5
        assert emu.stats()["submits"] == 5


async def test_the_stop_message_counts_only_requests_on_the_server(tmp_path: Path, clis: Clis) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(40))
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(latency_mean=0.3, latency_sd=0.05)) as emu:
        cli = await clis.start("run", manifest, "--out", out, "--rate", "10/1s", "--no-report", emu=emu)
        await wait_until(
            lambda: not cli.running or count(read_events(out), "submitted") >= 3, what="3 submitted"
        )
        cli.send(signal.SIGTERM)
        stopped = await cli.wait()
    assert stopped.code == 130, stopped
    said = re.search(r"waiting up to \S+ for (\d+) requests in flight", stopped.stderr)
    assert said is not None, stopped.stderr
    # Every request in flight at the signal was submitted before it, so the ledger has it.
    assert int(said.group(1)) <= count(read_events(out), "submitted")

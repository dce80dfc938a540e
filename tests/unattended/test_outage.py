"""An outage is not a verdict (issue 17): the API goes away mid-run, a real ``batchflux run`` ends on
its own with exit 75 and its unsubmitted jobs pending, and once the API is back the same command
finishes every job, with no ``--retry-failed`` and no request paid twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from runkit import (
    Clis,
    assert_images_match_emulator,
    count,
    plain_jobs,
    read_events,
    summary,
    wait_until,
    write_manifest,
)

from batchflux.emulator import Emulator, EmulatorConfig


@pytest.mark.slow
async def test_an_outage_ends_the_run_with_75_and_the_rerun_finishes_every_job(
    tmp_path: Path, clis: Clis
) -> None:
    jobs = plain_jobs(300)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    # A short outage window and drain keep the test quick; the defaults are 20 s and 30 s. So does
    # a short landing wait for submits the outage cut off (the emulator's records land at once).
    args = (
        "run",
        manifest,
        "--out",
        out,
        "--no-progress",
        "--no-report",
        "--outage-after",
        "2",
        "--grace",
        "3",
        "--history-wait",
        "1",
    )
    async with Emulator(EmulatorConfig(latency_mean=0.3, latency_sd=0.05)) as emu:
        cli = await clis.start(*args, "--rate", "20/1s", emu=emu)
        await wait_until(
            lambda: not cli.running or count(read_events(out), "submitted") >= 60,
            what="60 submitted",
            within=60,
        )
        assert cli.running, (await cli.wait()).stderr
        await emu.go_down()
        loop_time = asyncio.get_running_loop().time
        down_at = loop_time()
        stopped = await cli.wait(within=120)
        assert loop_time() - down_at < 120
        assert stopped.code == 75, stopped
        assert "unreachable" in stopped.stderr
        assert "Traceback" not in stopped.stderr

        events = read_events(out)
        failed = [e for e in events if e["event"] == "failed"]
        assert failed == []  # nothing was wrong with any job
        s = summary(out)
        assert s["exit_code"] == 75
        assert s["stop_reason"] == "unreachable"
        assert s["counts"]["failed"] == 0
        assert s["counts"]["pending"] > 0
        assert s["counts"]["done"] + s["counts"]["in_flight"] + s["counts"]["pending"] == len(jobs)

        await emu.come_back()
        again = await clis.run(*args, emu=emu)
        assert again.code == 0, again
        assert summary(out)["counts"]["done"] == len(jobs)
        assert emu.stats()["duplicate_submits"] == 0
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])

"""An outage fails no job, with every flag at its default (issue 21): the API host, or the media
host alone (on its own port, as Segmind's is), goes away mid-run; a real ``batchflux run`` ends on
its own with exit 75 and no job recorded failed, and once the host is back the same command
finishes every job with no request paid twice."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from runkit import (
    CliResult,
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

CONFIG = EmulatorConfig(latency_mean=0.3, latency_sd=0.05, media_port=0)


def assert_stopped_and_nothing_failed(stopped: CliResult, out: Path, total: int, says: str) -> None:
    """The run ended on its own with 75, saying ``says``, and recorded no job failed."""
    assert stopped.code == 75, stopped
    assert says in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert [e for e in read_events(out) if e["event"] == "failed"] == []
    s = summary(out)
    assert s["exit_code"] == 75
    assert s["stop_reason"] == "unreachable"
    assert s["counts"]["failed"] == 0
    assert s["counts"]["done"] + s["counts"]["in_flight"] + s["counts"]["pending"] == total


async def assert_the_rerun_finishes(
    clis: Clis, args: tuple[str | Path, ...], emu: Emulator, out: Path, jobs: list[dict[str, Any]]
) -> None:
    """Once the host is back, the same command finishes every job, none paid twice."""
    again = await clis.run(*args, emu=emu)
    assert again.code == 0, again
    assert summary(out)["counts"]["done"] == len(jobs)
    assert emu.stats()["duplicate_submits"] == 0
    assert_images_match_emulator(emu, out, [j["id"] for j in jobs])


@pytest.mark.slow
async def test_the_api_down_4s_into_a_run_fails_no_job_and_the_rerun_finishes(
    tmp_path: Path, clis: Clis
) -> None:
    jobs = plain_jobs(120)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    args = ("run", manifest, "--out", out, "--no-progress", "--no-report", "--rate", "20/2s")
    async with Emulator(CONFIG) as emu:
        loop_time = asyncio.get_running_loop().time
        cli = await clis.start(*args, emu=emu)
        await wait_until(lambda: count(read_events(out), "submitted") >= 1, what="the first submit")
        await asyncio.sleep(4)
        assert cli.running, (await cli.wait()).stderr
        await emu.go_down()
        down_at = loop_time()
        stopped = await cli.wait(within=90)
        took = loop_time() - down_at
        assert took < 60, took
        assert_stopped_and_nothing_failed(stopped, out, len(jobs), "unreachable")
        assert summary(out)["counts"]["pending"] > 0

        await emu.come_back()
        await assert_the_rerun_finishes(clis, args, emu, out, jobs)


@pytest.mark.slow
async def test_the_media_host_alone_down_fails_no_job_and_the_rerun_finishes(
    tmp_path: Path, clis: Clis
) -> None:
    jobs = plain_jobs(60)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    args = ("run", manifest, "--out", out, "--no-progress", "--no-report", "--rate", "20/2s")
    async with Emulator(CONFIG) as emu:
        cli = await clis.start(*args, emu=emu)
        await wait_until(lambda: count(read_events(out), "downloaded") >= 5, what="5 images")
        await emu.media_go_down()
        stopped = await cli.wait(within=90)
        assert_stopped_and_nothing_failed(stopped, out, len(jobs), "the media host unreachable")
        assert emu.stats()["status_calls"] > 0  # the API served on

        await emu.media_come_back()
        await assert_the_rerun_finishes(clis, args, emu, out, jobs)

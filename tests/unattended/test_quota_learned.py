"""The quota without being told (issue 15): a real ``batchflux run`` with no ``--rate`` learns the
emulator's windowed quota from its 429s, and a run killed inside an announced pause and resumed at
once sends nothing of that kind before the pause ends."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from runkit import (
    Clis,
    assert_images_match_emulator,
    plain_jobs,
    read_events,
    summary,
    wait_until,
    write_manifest,
)

from batchflux.emulator import Emulator, EmulatorConfig


@pytest.mark.parametrize("limiter", ["fixed", "sliding"])
async def test_a_run_without_a_rate_learns_the_quota_and_stops_hitting_it(
    tmp_path: Path, clis: Clis, limiter: str
) -> None:
    jobs = plain_jobs(60)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    config = EmulatorConfig(latency_mean=0.2, latency_sd=0.02, rpm=10, window_s=1.0, limiter=limiter)
    async with Emulator(config) as emu:
        done = await clis.run("run", manifest, "--out", out, "--no-progress", "--no-report", emu=emu)
        assert done.code == 0, done
        stats = emu.stats()
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
    s = summary(out)
    assert s["learned_rate"] in ("10/1s", "11/1s")  # measured, or one probe above it
    assert "learned the quota" in done.stderr
    # Six windows of submits: one burst of 429s to find the first window's end, one to measure the
    # next, then none but a probe's; the burst is at most the submits in flight together (16).
    assert stats["rate_limited"] <= 2 * 16 + 1
    paused = [e for e in read_events(out) if e["event"] == "paused"]
    assert paused
    assert {e["kind"] for e in paused} == {"submit"}  # polls were never limited, so never paused


@pytest.mark.parametrize("quota", [None, 40])
async def test_429s_that_are_not_a_quota_are_waited_out_and_never_shrink_the_pace(
    tmp_path: Path, clis: Clis, quota: int | None
) -> None:
    """One submit in nine refused (reset 0.3 s) whatever the rate: with no quota behind, and with a
    generous sliding one. The run keeps near what the honoured pauses allow, ~8 submits a pause."""
    jobs = plain_jobs(120)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    config = EmulatorConfig(
        latency_mean=0.2,
        latency_sd=0.02,
        busy_429=9,
        busy_reset_s=0.3,
        rpm=quota,
        window_s=1.0,
        limiter="sliding",
    )
    async with Emulator(config) as emu:
        done = await clis.run("run", manifest, "--out", out, "--no-progress", "--no-report", emu=emu)
        assert done.code == 0, done
        stats = emu.stats()
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
    times = stats["submit_times"]
    span = max(times) - min(times)
    ceiling = len(jobs) / 8 * (0.3 + 0.1)  # a pause (reset, cushion, mean jitter) per eight accepted
    assert span <= 2 * ceiling, (span, summary(out).get("learned_rate"))


async def test_when_the_polls_count_too_they_are_paced_with_the_submits(tmp_path: Path, clis: Clis) -> None:
    jobs = plain_jobs(90)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    config = EmulatorConfig(latency_mean=0.3, latency_sd=0.03, rpm=30, window_s=1.0, count_polls=True)
    async with Emulator(config) as emu:
        done = await clis.run("run", manifest, "--out", out, "--no-progress", "--no-report", emu=emu)
        assert done.code == 0, done
        stats = emu.stats()
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
    assert summary(out)["learned_rate"] in ("30/1s", "31/1s")
    assert "counts poll calls toward the quota" in done.stderr
    # The 429s find the first window's end and measure the next; after that the submits leave each
    # window room for their polls, and no kind runs into the limit again (a probe's one aside).
    first = min(stats["submit_times"])
    later = [t for t in stats["rate_limited_times"] if t >= first + 3 * config.window_s]
    assert len(later) <= 1, later
    assert {e["kind"] for e in read_events(out) if e["event"] == "paused"} == {"submit", "poll"}


async def test_a_run_killed_inside_a_pause_waits_it_out_when_resumed(tmp_path: Path, clis: Clis) -> None:
    jobs = plain_jobs(40)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    # The emulator's history records land at once: a short landing wait for the killed run's open
    # submits keeps the test quick.
    args = ("run", manifest, "--out", out, "--no-progress", "--no-report", "--history-wait", "1")
    # A long window: the pause announced by the first 429 (it ends with the first window, counted
    # from the emulator's start) outlasts the run's start-up, the kill and the restart — ~3 s idle,
    # over 6 s with the suite in 4 workers on 2 busy cores (a 6 s window was seen to end first).
    async with Emulator(EmulatorConfig(latency_mean=0.2, latency_sd=0.02, rpm=8, window_s=12.0)) as emu:
        cli = await clis.start(*args, emu=emu)
        await wait_until(
            lambda: not cli.running or any(e["event"] == "paused" for e in read_events(out)),
            what="a paused event",
            within=30,
        )
        assert cli.running, (await cli.wait()).stderr
        cli.send(signal.SIGKILL)
        await cli.wait()
        # No more 429s from here: whatever the emulator counts inside an announced pause now was
        # sent inside the pause the killed run heard of.
        emu.reconfigure(rpm=None)
        before = emu.stats()["calls_in_announced_pause"]
        (pause,) = [e for e in read_events(out) if e["event"] == "paused"]
        resumed = await clis.run(*args, emu=emu)
        assert resumed.code == 0, resumed
        stats = emu.stats()
    assert stats["calls_in_announced_pause"] == before  # the resumed run sent nothing inside it
    assert "waiting it out" in resumed.stderr
    assert pause["until"] > pause["ts"]

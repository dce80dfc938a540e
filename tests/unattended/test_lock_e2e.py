"""run.lock (issue 6) between real processes: a live run makes a second one exit 4 naming it; a run
killed with SIGKILL leaves its lock file behind, and that file blocks nothing."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from runkit import (
    Cli,
    Clis,
    assert_images_match_emulator,
    count,
    plain_jobs,
    read_events,
    wait_until,
    write_manifest,
)

from batchflux.emulator import Emulator, EmulatorConfig

FAST = EmulatorConfig(latency_mean=0.05, latency_sd=0.01)


async def start_holder(clis: Clis, emu: Emulator, manifest: Path, out: Path) -> Cli:
    """A real run that finishes its first job, then waits a minute for its next submit slot,
    holding the lock all along."""
    cli = await clis.start("run", manifest, "--out", out, "--rate", "1/60s", "--no-report", emu=emu)
    await wait_until(
        lambda: not cli.running or count(read_events(out), "downloaded") == 1, what="the first job done"
    )
    assert cli.running, (await cli.wait()).stderr
    return cli


async def test_a_second_run_on_a_locked_directory_exits_4_naming_the_holder(
    tmp_path: Path, clis: Clis
) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(3))
    out = tmp_path / "out"
    async with Emulator(FAST) as emu:
        holder = await start_holder(clis, emu, manifest, out)
        ledger_before = (out / "ledger.jsonl").read_bytes()
        second = await clis.run("run", manifest, "--out", out, emu=emu)
        assert second.code == 4, second
        assert f"pid {holder.pid}" in second.stderr
        assert "run.lock" in second.stderr
        assert emu.stats()["submits"] == 1
        assert (out / "ledger.jsonl").read_bytes() == ledger_before  # the loser wrote nothing
        dry = await clis.run("run", manifest, "--out", out, "--dry-run", emu=emu)
        assert dry.code == 4, dry
        holder.send(signal.SIGTERM)
        assert (await holder.wait()).code == 130


async def test_a_lock_left_by_a_killed_run_blocks_nothing(tmp_path: Path, clis: Clis) -> None:
    jobs = plain_jobs(3)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with Emulator(FAST) as emu:
        holder = await start_holder(clis, emu, manifest, out)
        holder.send(signal.SIGKILL)
        assert await holder.proc.wait() == -signal.SIGKILL
        left = json.loads((out / "run.lock").read_text())
        assert left["pid"] == holder.pid  # the dead run's record is still there

        result = await clis.run("run", manifest, "--out", out, emu=emu)
        assert result.code == 0, result
        assert "another batchflux run" not in result.stderr
        assert emu.stats()["submits"] == 3
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
    assert (out / "run.lock").read_text() == ""  # released by the run that finished

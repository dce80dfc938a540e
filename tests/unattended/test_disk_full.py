"""A full disk stops the run like an outage (issue 17): a real ``batchflux run`` into a small tmpfs
ends with exit 75, one line naming the path and the error and no traceback, fails no job for it,
and once there is room the plain rerun finishes every job with no request paid twice.

Needs a tmpfs of its own: the test mounts one (root, as on CI) and skips, saying why, where it may not.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from runkit import Clis, assert_images_match_emulator, plain_jobs, read_events, summary, write_manifest

from batchflux.emulator import Emulator, EmulatorConfig


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=10m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_disk_ends_the_run_with_75_and_the_rerun_finishes(
    tmp_path: Path, small_disk: Path, clis: Clis
) -> None:
    jobs = plain_jobs(300)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = small_disk / "out"
    args = ("run", manifest, "--out", out, "--no-progress", "--no-report", "--grace", "5")
    # Large noisy images fill 10 MB long before 300 jobs are done; submitting stops at 8 MB free.
    async with Emulator(EmulatorConfig(latency_mean=0.05, latency_sd=0.01, image_long_side=512)) as emu:
        full = await clis.run(*args, emu=emu)
        assert full.code == 75, full
        assert "Traceback" not in full.stderr
        assert str(out) in full.stderr
        events = read_events(out)
        assert [e for e in events if e["event"] == "failed"] == []
        done_first = sum(1 for e in events if e["event"] == "downloaded")
        assert 0 < done_first < len(jobs)

        remount = ["mount", "-o", "remount,size=200m", str(small_disk)]
        grown = await asyncio.to_thread(subprocess.run, remount, capture_output=True)
        assert grown.returncode == 0, grown.stderr
        again = await clis.run(*args, emu=emu)
        assert again.code == 0, again
        assert summary(out)["counts"]["done"] == len(jobs)
        assert emu.stats()["duplicate_submits"] == 0
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])

"""A pod that loses its disk loses nothing: ``kill -9`` mid-run, the spool deleted, then a run from
a new spool rebuilds the ledger from the bucket and adopts from the request history what the lost
tail of the ledger did, before it submits anything. Every image lands once, no request is paid
twice (the emulator counts duplicate bodies), and the ledger is whole."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
from runkit import Clis, plain_jobs, wait_until, write_manifest
from s3kit import all_objects, images_of, ledger_of

from batchflux.emulator import Emulator, EmulatorConfig

SLOW = EmulatorConfig(latency_mean=1.5, latency_sd=0.2)


@pytest.mark.slow
async def test_kill_9_with_the_spool_deleted_pays_nothing_twice(
    tmp_path: Path, clis: Clis, bucket: str
) -> None:
    jobs = plain_jobs(24)
    manifest = write_manifest(tmp_path / "m", jobs)
    url = f"s3://{bucket}/lost"
    async with Emulator(SLOW) as emu:
        first = await clis.start(
            "run", manifest, "--out", url, "--spool", tmp_path / "pod-1", "--rate", "4/1s",
            "--no-report", emu=emu,
        )  # fmt: skip

        # Killed once a segment is shipped and more requests were made after it.
        def unshipped_requests() -> bool:
            if not first.running:
                return True
            known = sum(1 for e in ledger_of(all_objects(url)) if e["event"] == "submitted")
            return known >= 4 and emu.stats()["submits"] >= known + 3

        await wait_until(unshipped_requests, what="a shipped segment and requests after it", within=60)
        assert first.running, (await first.wait()).stderr
        first.send(signal.SIGKILL)
        assert await first.proc.wait() == -signal.SIGKILL
        paid_before = emu.stats()["submits"]
        shipped = ledger_of(all_objects(url))
        known = {e["job"] for e in shipped if e["event"] == "submitted"}
        assert len(known) < paid_before, "the test needs requests the shipped ledger does not know"
        shutil.rmtree(tmp_path / "pod-1")  # the pod's emptyDir is gone

        second = await clis.run(
            "run", manifest, "--out", url, "--spool", tmp_path / "pod-2", "--history-wait", "1",
            "--no-report", emu=emu, within=120,
        )  # fmt: skip
        assert second.code == 0, second
        assert "adopted" in second.stderr
        stats = emu.stats()
        assert stats["duplicate_submits"] == 0
        assert stats["submits"] == len(jobs)

    objects = all_objects(url)
    assert set(images_of(objects)) == {f"{j['id']}.png" for j in jobs}
    events = ledger_of(objects)
    downloaded = [e["job"] for e in events if e["event"] == "downloaded"]
    assert sorted(downloaded) == sorted(j["id"] for j in jobs)  # each image once
    assert events[-1]["event"] == "run_finished"

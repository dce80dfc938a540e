"""Sharding (issue 6): ``--shard 0/2`` and ``--shard 1/2`` run side by side (as two pods would) into
two directories; their jobs are disjoint and together every job; ``batchflux status`` merges them."""

from __future__ import annotations

import json
from pathlib import Path

from runkit import Clis, files_containing, image_files, plain_jobs, read_events, summary, write_manifest

from batchflux.emulator import DEFAULT_API_KEY, Emulator, EmulatorConfig


def ledger_jobs(out: Path) -> set[str]:
    return {e["job"] for e in read_events(out) if e["job"] is not None}


async def test_two_shards_are_disjoint_complete_and_merge_in_status(tmp_path: Path, clis: Clis) -> None:
    jobs = plain_jobs(40)
    jobs[7]["prompt"] = "an nsfw one"
    all_ids = {j["id"] for j in jobs}
    manifest = write_manifest(tmp_path / "m", jobs)
    outs = [tmp_path / "shard0", tmp_path / "shard1"]
    async with Emulator(EmulatorConfig(latency_mean=0.05, latency_sd=0.01)) as emu:
        running = [
            await clis.start("run", manifest, "--out", out, "--shard", f"{k}/2", "--no-report", emu=emu)
            for k, out in enumerate(outs)
        ]
        results = [await cli.wait() for cli in running]
        stats = emu.stats()
        # Rerunning a shard finds its part done: the partition is stable between runs.
        again = await clis.run("run", manifest, "--out", outs[0], "--shard", "0/2", "--dry-run", emu=emu)

    assert sorted(r.code for r in results) == [0, 1], results  # one shard holds the failing job
    parts = [ledger_jobs(out) for out in outs]
    assert all(parts)  # neither shard is empty
    assert parts[0].isdisjoint(parts[1])
    assert parts[0] | parts[1] == all_ids
    images = [{p.stem for p in image_files(out)} for out in outs]
    assert images[0].isdisjoint(images[1])
    assert images[0] | images[1] == all_ids - {"job0007"}
    assert stats["submits"] == 40
    assert stats["duplicate_submits"] == 0
    for k, out in enumerate(outs):
        started = next(e for e in read_events(out) if e["event"] == "run_started")
        assert started["shard"] == f"{k}/2"
        assert started["jobs"] == len(parts[k])
        assert summary(out)["shard"] == f"{k}/2"
        assert summary(out)["jobs"] == len(parts[k])
        assert files_containing(out, DEFAULT_API_KEY) == []
    assert again.code == 0, again
    assert "would submit 0" in again.stderr

    status = await clis.run("status", *outs, "--json")
    assert status.code == 0, status
    merged = json.loads(status.stdout)
    assert merged["jobs"] == 40
    assert merged["by_state"]["downloaded"] == 39
    assert merged["by_state"]["failed"] == 1
    assert [(f["cause"], f["count"], f["example_job"]) for f in merged["failures"]] == [
        ("moderation", 1, "job0007")
    ]
    assert sorted(r["out_dir"] for r in merged["last_runs"]) == sorted(str(o) for o in outs)
    assert sorted(r["exit_code"] for r in merged["last_runs"]) == [0, 1]
    assert merged["duplicate_ids"] == 0

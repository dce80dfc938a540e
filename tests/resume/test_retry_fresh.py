"""``--retry-failed[=CAUSES]`` resubmits only the failed jobs it selects; ``--fresh`` starts over
with the old ledger moved aside, never deleted (issue 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from runkit import (
    Clis,
    assert_images_match_emulator,
    jobs_with,
    plain_jobs,
    read_events,
    since_last_start,
    summary,
    write_manifest,
)

from batchflux.emulator import Emulator, EmulatorConfig


def failed_causes(out: Path) -> dict[str, str]:
    """Job → cause of its latest ``failed`` event, for jobs whose last word is a failure."""
    last: dict[str, Any] = {}
    for e in read_events(out):
        if e["job"] is not None and e["event"] in ("failed", "downloaded", "submit_intent"):
            last[e["job"]] = e
    return {job: e["cause"] for job, e in last.items() if e["event"] == "failed"}


@pytest.mark.slow
async def test_retry_failed_selects_verdicts_by_cause_and_accidents_retry_by_themselves(
    tmp_path: Path, clis: Clis
) -> None:
    jobs = plain_jobs(4)
    jobs += [{"id": f"mod{i}", "prompt": f"nsfw edit {i}", "seed": i} for i in range(2)]
    jobs += [{"id": "long0", "prompt": "a long prompt " * 20, "seed": 9}]  # the server's 400: invalid
    manifest_dir = tmp_path / "m"
    manifest = write_manifest(manifest_dir, jobs)
    out = tmp_path / "out"
    args = ("run", manifest, "--out", out, "--no-report")
    async with Emulator(EmulatorConfig(latency_mean=0.05, latency_sd=0.01, max_prompt_chars=200)) as emu:
        first = await clis.run(*args, emu=emu)
        assert first.code == 1, first
        assert failed_causes(out) == {"mod0": "moderation", "mod1": "moderation", "long0": "invalid"}

        # Two jobs whose requests expire before they finish (1 s of work, 0.3 s retention), twice.
        jobs += [{"id": f"exp{i}", "prompt": f"slow edit {i}", "seed": i} for i in range(2)]
        write_manifest(manifest_dir, jobs)
        emu.reconfigure(latency_mean=1.0, latency_sd=0.0, retention_s=0.3)
        second = await clis.run(*args, "--retention", "0.3", emu=emu)
        assert second.code == 1, second
        assert failed_causes(out) == {
            "mod0": "moderation",
            "mod1": "moderation",
            "long0": "invalid",
            "exp0": "expired",
            "exp1": "expired",
        }

        # From now on every job would succeed. Resubmitted: the verdicts selected by cause, and the
        # accidents (expired) by themselves; the unselected verdict stays failed.
        emu.reconfigure(
            latency_mean=0.05, latency_sd=0.01, retention_s=3600.0, moderation_words=(), max_prompt_chars=None
        )
        submits = emu.stats()["submits"]
        moderation = await clis.run(*args, "--retry-failed=moderation", emu=emu)
        assert moderation.code == 1, moderation  # long0 is still failed
        resubmitted = jobs_with(since_last_start(read_events(out)), "submit_intent")
        assert resubmitted == {"mod0", "mod1", "exp0", "exp1"}
        assert emu.stats()["submits"] == submits + 4
        assert failed_causes(out) == {"long0": "invalid"}
        assert "1 failed kept" in moderation.stderr
        assert "2 failed by accident, retried" in moderation.stderr

        every = await clis.run(*args, "--retry-failed", emu=emu)
        assert every.code == 0, every
        assert jobs_with(since_last_start(read_events(out)), "submit_intent") == {"long0"}
        assert emu.stats()["submits"] == submits + 5
        assert failed_causes(out) == {}
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])

        again = await clis.run(*args, "--retry-failed", emu=emu)  # nothing failed: nothing to do
        assert again.code == 0, again
        assert emu.stats()["submits"] == submits + 5

        unknown = await clis.run(*args, "--retry-failed=moderation,bogus", emu=emu)
        assert unknown.code == 2, unknown
        assert "bogus" in unknown.stderr
        assert "moderation" in unknown.stderr


async def test_fresh_moves_the_ledger_aside_and_starts_over(tmp_path: Path, clis: Clis) -> None:
    jobs = plain_jobs(3)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    args = ("run", manifest, "--out", out, "--no-report")
    async with Emulator(EmulatorConfig(latency_mean=0.05, latency_sd=0.01)) as emu:
        first = await clis.run(*args, emu=emu)
        assert first.code == 0, first
        old = (out / "ledger.jsonl").read_bytes()
        old_requests = {e["request_id"] for e in read_events(out) if e["event"] == "submitted"}

        fresh = await clis.run(*args, "--fresh", emu=emu)
        assert fresh.code == 0, fresh
        assert emu.stats()["submits"] == 6  # everything again
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])

    moved = list(out.glob("ledger.*.jsonl"))
    assert len(moved) == 1
    assert moved[0].read_bytes() == old  # kept, untouched
    assert f"--fresh: moved the old ledger to {moved[0]}" in fresh.stderr
    events = read_events(out)
    assert [e["event"] for e in events].count("run_started") == 1  # the new ledger starts over
    new_requests = {e["request_id"] for e in events if e["event"] == "submitted"}
    assert len(new_requests) == 3
    assert new_requests.isdisjoint(old_requests)
    assert summary(out)["skipped"] == 0

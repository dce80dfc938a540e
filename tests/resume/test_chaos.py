"""Chaos (issue 5): ``kill -9`` a real ``batchflux run`` five times, resume until it exits 0; nothing is
lost, and nothing is paid twice: a submit whose answer was lost, to a drop or a kill, is found in
the request history (issue 13) instead of being paid again.

The emulator lives in the test's process and outlives every killed client. It drops 5 % of submit
connections after creating the request (a real ambiguous submit: billed, no answer) and breaks 5 % of
media downloads, so at any moment some intents are open and some results wait for a retried download;
with a 0.2 s latency and submits paced at 100/s, requests are always being polled too. Each kill
lands after a random number (seeded) of new ledger lines, so kills hit every phase whatever the
machine's speed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from runkit import (
    Clis,
    abandoned_requests,
    ambiguous_count,
    assert_images_match_emulator,
    count,
    kill_9_runs,
    plain_jobs,
    read_events,
    resume_until_done,
    summary,
    write_manifest,
)

from batchflux.emulator import Emulator, EmulatorConfig

SEED = 5
JOBS = 300
KILLS = 5


@pytest.mark.slow
async def test_five_kill_9s_then_resume_lose_nothing_and_pay_twice_only_when_ambiguous(
    tmp_path: Path, clis: Clis
) -> None:
    rng = random.Random(SEED)
    manifest = write_manifest(tmp_path / "m", plain_jobs(JOBS))
    out = tmp_path / "out"
    # The emulator's history records land at once: a short landing wait is enough.
    args = ("run", manifest, "--out", out, "--rate", "100/1s", "--no-progress", "--history-wait", "2")
    config = EmulatorConfig(
        latency_mean=0.2,
        latency_sd=0.05,
        faults={"drop": 0.05, "truncate": 0.05},
        fault_endpoints=frozenset({"submit", "media"}),
        seed=SEED,
    )
    async with Emulator(config) as emu:
        # Sum of targets <= 1000 lines; finishing all 300 jobs takes at least 1200 (intent,
        # submitted, result, downloaded each): no run can finish before its kill.
        at_kill = await kill_9_runs(clis, args, emu, out, rng, KILLS)
        finals = await resume_until_done(clis, args, emu)

        events = read_events(out)
        stats = emu.stats()
        job_ids = [f"job{i:04d}" for i in range(JOBS)]
        assert_images_match_emulator(emu, out, job_ids)
        ambiguous = ambiguous_count(events)
        assert stats["submits"] == JOBS, (stats["submits"], ambiguous)  # no extra paid submit
        assert stats["duplicate_submits"] == 0
        recovered = [e for e in events if e["event"] == "submitted" and e.get("recovered")]
        assert recovered, "drops and kills left submits without an answer: some were found"
        assert abandoned_requests(events) == []
        assert count(events, "expired") == 0  # nothing came near the 1 h retention
        assert count(events, "failed") == 0
        assert count(events, "run_started") == KILLS + len(finals)
        assert stats["media_with_key"] == 0
        # What the user is told matches the ledger: the final summary and `batchflux status`.
        assert summary(out)["possible_duplicates"] == ambiguous
        status = await clis.run("status", out, "--json")
        assert status.code == 0, status
        assert json.loads(status.stdout)["possible_duplicates"] == ambiguous
        assert json.loads(status.stdout)["by_state"]["downloaded"] == JOBS

    # The kills really interrupted every phase: an unanswered submit, a request being polled, a
    # result waiting for its download.
    assert sum(p.open_intents for p in at_kill) > 0, at_kill
    assert sum(p.polling for p in at_kill) > 0, at_kill
    assert sum(p.downloading for p in at_kill) > 0, at_kill
    assert all(p.done < JOBS for p in at_kill)
    print(f"\nchaos: kills at {at_kill}; final runs {finals}; emulator submits {stats['submits']}, "
          f"duplicates {stats['duplicate_submits']}, ambiguous in ledger {ambiguous}")  # fmt: skip

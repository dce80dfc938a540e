"""Never paid twice when a submit waited before its POST (issue 22).

A submit that meets a 429 keeps its ``submit_intent`` and POSTs once its window opens, long after
the intent. If the server accepts that POST and its answer is lost, the request history is asked;
the "not found" may be trusted only once the record can have landed: a landing wait counted from
when the answer was lost (or, at resume, from when the POST can last have left), never from the
intent. Here every submit's answer is dropped after the server created the request, records land
late, and the quota makes submits wait longer than ``--history-wait``: every request is adopted,
none is paid twice.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from runkit import (
    Clis,
    abandoned_requests,
    assert_images_match_emulator,
    kill_9_runs,
    plain_jobs,
    read_events,
    resume_until_done,
    summary,
    write_manifest,
)

from batchflux.emulator import Emulator, EmulatorConfig

# A quota of 4 submits a 3 s window: a submit that meets a 429 waits up to 3 s for its POST, longer
# than the 1 s landing wait; records land 0.5 s after their request is created.
QUOTA = {"rpm": 4, "window_s": 3.0}
LATE = {"history_delay_s": 0.5}
DROPPED = {"faults": {"drop": 1.0}, "fault_endpoints": frozenset({"submit"})}
FAST = {"latency_mean": 0.1, "latency_sd": 0.02}


def recovered_late(emu: Emulator, events: list[dict[str, Any]]) -> list[float]:
    """For each request adopted from the history: how long after its intent the server created it."""
    intent_at: dict[str, float] = {}
    gaps = []
    for e in events:
        if e["event"] == "submit_intent":
            intent_at[e["job"]] = e["ts"]
        elif e["event"] == "submitted" and e.get("recovered"):
            info = emu.request_info(e["request_id"])
            assert info is not None
            gaps.append(info["submitted_at"] - intent_at[e["job"]])
    return gaps


async def test_submits_that_waited_for_the_quota_are_found_not_paid_twice(tmp_path: Path, clis: Clis) -> None:
    jobs = plain_jobs(12)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    config = EmulatorConfig(**FAST, **QUOTA, **LATE, **DROPPED)
    args = ("run", manifest, "--out", out, "--no-progress", "--no-report", "--history-wait", "1")
    async with Emulator(config) as emu:
        done = await clis.run(*args, emu=emu, within=120)
        stats = emu.stats()
        assert done.code == 0, done
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
        events = read_events(out)
        late = recovered_late(emu, events)
    intents = [e for e in events if e["event"] == "submit_intent"]
    recovered = [e for e in events if e["event"] == "submitted" and e.get("recovered")]
    assert stats["rate_limited"] > 0  # submits did wait for the quota
    assert stats["faults"]["drop"] == len(jobs)  # every answer was lost…
    assert (stats["submits"], stats["duplicate_submits"]) == (len(jobs), 0)  # …and nothing paid twice
    assert len(recovered) == len(intents) == len(jobs)
    assert max(late) > 1.0  # some were created longer than --history-wait after their intent
    assert summary(out)["possible_duplicates"] == 0


@pytest.mark.slow
async def test_a_plain_run_with_every_default_pays_once_when_429s_hold_its_submits_past_the_wait(
    tmp_path: Path, clis: Clis
) -> None:
    """The same with every batchflux flag at its default (``--history-wait 30``, no ``--rate``): a
    quota of 2 submits per 42 s window, so the second pair of submits POSTs when the next window
    opens — longer than the landing wait — after its intent. About 75 s: the window and a landing
    wait of 30 s."""
    jobs = plain_jobs(4)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    # The windows are counted from the emulator's start, the intents from the CLI's: the gap is the
    # window less the CLI's start-up (~1.5 s on an idle machine, 6.1 s measured with the suite in 4
    # workers on 2 busy cores, when a 36 s window left a 29.9 s gap). 42 s leaves room for 12 s.
    config = EmulatorConfig(**FAST, rpm=2, window_s=42.0, history_delay_s=1.0, **DROPPED)
    async with Emulator(config) as emu:
        done = await clis.run("run", manifest, "--out", out, emu=emu, within=110)
        stats = emu.stats()
        assert done.code == 0, done
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
    intents = [e["ts"] for e in read_events(out) if e["event"] == "submit_intent"]
    assert (stats["submits"], stats["duplicate_submits"], stats["faults"]["drop"]) == (4, 0, 4)
    assert len(intents) == 4
    assert stats["rate_limited"] > 0
    assert max(stats["submit_times"]) - max(intents) > 30  # a POST left a window after its intent
    assert summary(out)["recovered_submits"] == 4


@pytest.mark.slow
async def test_killed_and_resumed_while_submits_wait_for_the_quota_nothing_is_paid_twice(
    tmp_path: Path, clis: Clis
) -> None:
    """The same, with ``kill -9``s: a killed run leaves open intents whose POST left a window after
    the intent, or just before the kill, its answer still held; the resumed run waits for their
    records from its own start, adopts every request the server made, and pays for none twice."""
    jobs = plain_jobs(40)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    # Answers held 0.3 s after their request is made: a kill often lands between the two.
    lost = {"faults": {"drop": 0.3}, "fault_endpoints": frozenset({"submit"}), "submit_hold_s": 0.3}
    config = EmulatorConfig(**FAST, **QUOTA, **LATE, **lost, seed=22)
    args = ("run", manifest, "--out", out, "--no-progress", "--no-report", "--history-wait", "1")
    async with Emulator(config) as emu:
        # 40 jobs make at least 160 ledger lines: three kills after 10 to 40 new lines each cannot
        # come after the end.
        at_kill = await kill_9_runs(clis, args, emu, out, random.Random(22), 3, lines=(10, 40))
        await resume_until_done(clis, args, emu, within=120)
        stats = emu.stats()
        assert_images_match_emulator(emu, out, [j["id"] for j in jobs])
        events = read_events(out)
        late = recovered_late(emu, events)
    recovered = [e for e in events if e["event"] == "submitted" and e.get("recovered")]
    assert stats["rate_limited"] > 0
    assert stats["faults"]["drop"] > 0
    assert sum(p.open_intents for p in at_kill) > 0, at_kill  # kills left intents open
    assert (stats["submits"], stats["duplicate_submits"]) == (len(jobs), 0)  # none paid twice…
    assert abandoned_requests(events) == []  # …and every request made is a job's
    assert len(recovered) >= stats["faults"]["drop"]  # each lost answer's request adopted
    assert max(late) > 1.0  # some were created longer than --history-wait after their intent

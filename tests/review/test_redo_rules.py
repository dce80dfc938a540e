"""--redo-rejected's rules (pure): which jobs are redone, with which seed; and keeping the image."""

from __future__ import annotations

import hashlib
from pathlib import Path

from batchflux.ledger import Event, EventType, replay_lines
from batchflux.ledger.records import JobRecord
from batchflux.ledger.redo import SEED_MAX, carry_redos, derive_seed, kept_name, plan_redo
from batchflux.ledger.resume import Action, Decision, ResumePlan
from batchflux.manifest.job import Job
from batchflux.run.redo import keep_rejected


def job(job_id: str, seed: int = 7) -> Job:
    params = {"prompt": "p", "seed": seed}
    return Job(id=job_id, index=0, model="flux-kontext-max", params=params, output=f"{job_id}.png",
               fingerprint=f"fp-{job_id}")  # fmt: skip


def record(job_id: str, verdict: str | None, redo: int = 0, image: bytes = b"img") -> JobRecord:
    digest = hashlib.sha256(image).hexdigest()
    lines = [
        Event(EventType.SUBMIT_INTENT, job_id, {"fingerprint": f"fp-{job_id}", "params": {"seed": 99},
              "output": f"{job_id}.png", **({"redo": redo} if redo else {})}, ts=1.0),
        Event(EventType.SUBMITTED, job_id, {"request_id": "r1", "status_url": "s"}, ts=2.0),
        Event(EventType.RESULT, job_id, {"request_id": "r1", "output_url": "u"}, ts=3.0),
        Event(EventType.DOWNLOADED, job_id, {"request_id": "r1", "path": f"{job_id}.png",
              "size": len(image), "sha256": digest}, ts=4.0),
    ]  # fmt: skip
    if verdict:
        lines.append(Event(EventType.REVIEWED, job_id, {"request_id": "r1", "verdict": verdict}, ts=5.0))
    return replay_lines(e.encode() + "\n" for e in lines).jobs[job_id]


def plan(*decisions: Decision) -> ResumePlan:
    return ResumePlan(decisions, (), 0)


def test_derived_seeds_are_stable_new_for_every_redo_and_in_range() -> None:
    seeds = {derive_seed("fp", n) for n in range(1, 200)}
    assert len(seeds) == 199
    assert all(0 <= s <= SEED_MAX for s in seeds)
    assert derive_seed("fp", 1) == derive_seed("fp", 1)
    assert derive_seed("fp", 1) != derive_seed("fq", 1)


def test_kept_names() -> None:
    assert kept_name("a.png", 1) == "a.rejected-1.png"
    assert kept_name("shoes/red.v2.jpg", 3) == "shoes/red.v2.rejected-3.jpg"


def test_only_rejected_images_are_redone_each_with_its_next_seed() -> None:
    rejected, approved = record("a", "rejected", redo=1), record("b", "approved")
    unreviewed = record("c", None)
    out, keep = plan_redo(plan(
        Decision(job("a"), Action.SKIP, "intact", rejected),
        Decision(job("b"), Action.SKIP, "intact", approved),
        Decision(job("c"), Action.SKIP, "intact", unreviewed),
    ))  # fmt: skip
    a, b, c = out.decisions
    assert (a.action, a.reason, a.job.redo) == (Action.SUBMIT, "rejected", 2)
    assert a.job.params["seed"] == derive_seed("fp-a", 2)
    assert a.job.fingerprint == "fp-a", "the manifest's job, so a later plain run skips the redone image"
    assert (b.action, c.action) == (Action.SKIP, Action.SKIP)
    assert keep == (a,)
    assert out.counts()["rejected"] == 1


def test_a_job_the_manifest_changed_is_submitted_as_changed_and_its_image_kept() -> None:
    changed = Decision(job("a", seed=5), Action.SUBMIT, "changed", record("a", "rejected"))
    out, keep = plan_redo(plan(changed))
    assert out.decisions == (changed,)
    assert keep == (changed,)


def test_a_redo_cut_short_is_resumed_with_its_own_seed() -> None:
    rec = record("a", None, redo=1)
    expired = Decision(job("a"), Action.SUBMIT, "expired", rec)
    (d,) = carry_redos(plan(expired)).decisions
    assert (d.job.params["seed"], d.job.redo) == (99, 1)
    changed = Decision(job("a", seed=5), Action.SUBMIT, "changed", rec)
    assert carry_redos(plan(changed)).decisions == (changed,)


def test_keeping_a_rejected_image_is_safe_to_repeat(tmp_path: Path) -> None:
    rec = record("a", "rejected", image=b"first")
    (tmp_path / "a.png").write_bytes(b"first")
    (tmp_path / "a.rejected-1.png").write_bytes(b"someone else's")
    assert keep_rejected(tmp_path, rec) == "a.rejected-2.png"
    assert keep_rejected(tmp_path, rec) == "a.rejected-2.png", "kept once, found again"
    assert (tmp_path / "a.rejected-2.png").read_bytes() == b"first"
    (tmp_path / "a.png").write_bytes(b"the redo, written in place")
    assert (tmp_path / "a.rejected-2.png").read_bytes() == b"first", "a copy: nothing reaches it"
    gone = record("b", "rejected")
    assert keep_rejected(tmp_path, gone) is None, "no image, nothing to keep"

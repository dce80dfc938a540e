"""Redo the rejected images (``batchflux run --redo-rejected``): which jobs, with which seed (pure).

A job whose image a reviewer rejected (:attr:`~.records.JobRecord.verdict`) and that the resume
plan would skip (done, file intact, the manifest unchanged) is submitted again with a seed derived
from its fingerprint and the redo's number — new for every redo, the same on every machine, so a
redo cut short and resumed sends what it first sent. The job keeps its fingerprint: the manifest
still says what it said, and a later plain run skips the redone image. Its ``submit_intent``
records ``redo`` (the number) and the seed in its params.

A job the manifest changed anyway is submitted as changed, with the manifest's parameters (no seed
of ours). Either way the rejected image is kept aside first (``<stem>.rejected-N.<ext>``, see
:func:`kept_name`; the runner does the file work).

A redo that did not finish (in flight, expired, failed by an accident) is resumed by any later run
with the redo's seed (:func:`carry_redos`), not the manifest's.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import PurePosixPath

from batchflux.ledger.records import JobRecord
from batchflux.ledger.resume import Action, Decision, ResumePlan

SEED_MAX = 2**31 - 1  # the model's seed is a signed 32-bit integer; redo seeds are its non-negative half
REDO_REASON = "rejected"


def derive_seed(fingerprint: str, redo: int) -> int:
    """The seed of a job's ``redo``-th redo: a hash of its fingerprint and the number."""
    digest = hashlib.sha256(f"{fingerprint}\nredo {redo}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (SEED_MAX + 1)


def kept_name(output: str, n: int) -> str:
    """``photo.png`` -> ``photo.rejected-1.png`` (relative paths keep their folder)."""
    path = PurePosixPath(output)
    return str(path.with_name(f"{path.stem}.rejected-{n}{path.suffix}"))


def rejected(rec: JobRecord | None) -> bool:
    verdict = rec.verdict if rec is not None else None
    return verdict is not None and verdict.verdict == "rejected"


def plan_redo(plan: ResumePlan) -> tuple[ResumePlan, tuple[Decision, ...]]:
    """The plan with every rejected job submitted again; and the decisions whose rejected image
    must be kept aside before anything is submitted (the redone and the changed ones)."""
    decisions: list[Decision] = []
    keep: list[Decision] = []
    for d in plan.decisions:
        rec = d.record
        if rec is None or not rejected(rec):
            decisions.append(d)
        elif d.action is Action.SKIP:
            number = rec.redo + 1
            params = {**d.job.params, "seed": derive_seed(d.job.fingerprint, number)}
            redo = Decision(replace(d.job, params=params, redo=number), Action.SUBMIT, REDO_REASON, rec)
            decisions.append(redo)
            keep.append(redo)
        elif d.action is Action.SUBMIT and d.reason == "changed":
            decisions.append(d)
            keep.append(d)
        else:
            decisions.append(d)
    return replace(plan, decisions=tuple(decisions)), tuple(keep)


def carry_redos(plan: ResumePlan) -> ResumePlan:
    """A redo submitted again for any reason but a changed manifest (it expired, its answer was
    lost, it failed by accident) goes out with the redo's seed and number, as first sent."""
    decisions: list[Decision] = []
    for d in plan.decisions:
        rec = d.record
        if (
            d.action is Action.SUBMIT
            and rec is not None
            and rec.redo
            and d.reason not in ("changed", "new", REDO_REASON)
            and "seed" in rec.params
        ):
            params = {**d.job.params, "seed": rec.params["seed"]}
            d = replace(d, job=replace(d.job, params=params, redo=rec.redo))
        decisions.append(d)
    return replace(plan, decisions=tuple(decisions))

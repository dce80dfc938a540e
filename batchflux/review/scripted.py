"""Verdicts from a script: ``batchflux review OUT --approve-all-unreviewed`` and ``--reject ID…``.

The same ``reviewed`` events the page writes, for the images the jobs have now, appended to each
directory's review log in one write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batchflux.ledger import Event, JobState
from batchflux.ledger.reviews import append_reviews, review_event
from batchflux.report.build import read_run_dir


@dataclass(slots=True)
class Scripted:
    approved: int = 0
    rejected: int = 0
    unknown: list[str] = field(default_factory=list)  # ids no directory knows
    no_image: list[str] = field(default_factory=list)  # ids without an image to review


def give_verdicts(
    out_dirs: Sequence[Path], *, approve_unreviewed: bool, reject: Sequence[str], note: str = ""
) -> Scripted:
    """Reject the jobs ``reject`` names (a job id, or ``DIR/id`` when merged directories share one)
    and, with ``approve_unreviewed``, approve every other image without a verdict. Nothing is
    written when an id is unknown or has no image: the caller says which."""
    dirs = [read_run_dir(Path(d)) for d in out_dirs]
    wanted = set(reject)
    found: set[str] = set()
    out = Scripted()
    plans: list[tuple[Path, list[Event]]] = []
    for rd in dirs:
        events: list[Event] = []
        for rec in rd.replay.jobs.values():
            names = {rec.job_id, f"{rd.path.name}/{rec.job_id}"} & wanted
            image = rec.state is JobState.DOWNLOADED and rec.request_id is not None
            if names:
                found |= names
                if not image:
                    out.no_image.append(rec.job_id)
                    continue
                events.append(review_event(rec.job_id, rec.request_id, "rejected", note))
                out.rejected += 1
            elif approve_unreviewed and image and rec.verdict is None:
                events.append(review_event(rec.job_id, rec.request_id, "approved", note))
                out.approved += 1
        plans.append((rd.path, events))
    out.unknown = sorted(wanted - found)
    if out.unknown or out.no_image:
        return out
    for path, events in plans:
        append_reviews(path, events)
    return out

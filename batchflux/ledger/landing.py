"""When a "not found" in the request history may be trusted (pure).

A request's history record lands some time after the request is created (how long, Segmind does
not say: ``--history-wait`` is batchflux's allowance). Until it has landed, a search finds nothing,
and resubmitting on that nothing pays twice. So a "not found" is final only from the moment the
record can have landed: the landing wait counted from the **latest moment the request can have
been created** — never from the ``submit_intent``, which may precede its POST by a whole quota
window (a submit that meets a 429 or a 5xx keeps its intent and POSTs again when its slot comes;
nothing was created meanwhile, and the intent still precedes every byte of every try).

- **In a run**, a submit whose answer was lost: the server, if it created a request at all, did
  so before the client gave up on the answer. Anchor: when the answer was lost.
- **At resume**, an open intent: when its POST left is not recorded. If the run that wrote the
  intent stopped cleanly (its ``run_finished`` came after the intent), no POST of it was on the wire
  after that: anchor on that ``run_finished``. A run that was killed may have sent the POST at any
  moment until it died, and nothing records when that was; this run started after it died, so the
  anchor is this run's start (``now``): the intent waits one landing wait before its "not found" is
  trusted, which costs that job a wait, never a second payment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from batchflux.ledger.records import RunRecord


@dataclass(frozen=True, slots=True)
class Landing:
    """The latest moment (unix) an intent's request can have been created, and why."""

    sent_by: float
    basis: str  # for a log line: "its answer was lost", "its run stopped", "its run was killed"

    def trusted_from(self, wait_s: float) -> float:
        """From when a search that finds no request for the intent may be believed."""
        return self.sent_by + wait_s

    def final(self, began: float, wait_s: float) -> bool:
        """A search that began at ``began`` and found nothing: is that final? Only if it began
        once the record can have landed — when it ended does not matter: a scan of many pages
        ends late, but its first page, where the newest requests are, was read when it began."""
        return began >= self.trusted_from(wait_s)


def answer_lost(at: float) -> Landing:
    """A submit of this run whose answer was lost at ``at``."""
    return Landing(at, "its answer was lost")


def at_resume(intent_at: float, runs: Sequence[RunRecord], now: float) -> Landing:
    """An open intent written at ``intent_at``, seen by a run starting at ``now``; ``runs`` are the
    ledger's runs, oldest first (one ledger is written by one run at a time: the lock)."""
    writer = None
    for run in runs:
        if run.started_at <= intent_at:
            writer = run
    if writer is not None and writer.finished_at is not None and writer.finished_at >= intent_at:
        return Landing(min(writer.finished_at, now), "its run stopped")
    return Landing(max(intent_at, now), "its run was killed")

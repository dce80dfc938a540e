"""What a run did, counted as it goes: the raw material of summary.json, metrics and the bars."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FailedJob:
    """A job that failed permanently: why (``cause``, one of the ledger's FAILURE_CAUSES) and the error."""

    id: str
    cause: str
    error: str
    http_status: int | None = None
    request_id: str | None = None
    run_id: str | None = None  # the run it failed in (None where the ledger cannot tell)


@dataclass(slots=True)
class EngineStats:
    total: int = 0  # jobs this run is responsible for (the manifest, or this shard of it)
    skipped: int = 0  # already done before this run (image on disk, intact)
    kept_failed: int = 0  # failed in an earlier run and not retried
    submitted: int = 0  # accepted submits this run
    resubmitted_expired: int = 0  # submits of jobs whose earlier request expired unfetched
    ambiguous: int = 0  # submits this run that got no answer (possible duplicate charges)
    downloaded: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # by cause, this run
    failures: list[FailedJob] = field(default_factory=list)
    rate_limited: int = 0  # 429s received
    retries: Counter[str] = field(default_factory=Counter)  # by kind of call
    peak_in_flight: int = 0  # most requests submitted and not yet resolved at once
    server_failed: int = 0  # jobs the server FAILED (not billed)
    # The request history (see engine/history.py):
    recovered_submits: int = 0  # ambiguous submits whose request was found there: not paid again
    recovered_resumed: int = 0  # ... of them, intents left open by an earlier run
    recovered_results: int = 0  # requests past their hour fetched from their record, not resubmitted
    history_fallbacks: int = 0  # lookups the history could not answer: done as without it
    history_cost_usd: float = 0.0  # what the history said the requests it was asked about cost
    history_cost_requests: int = 0

    @property
    def done(self) -> int:
        return self.skipped + self.downloaded

    @property
    def failed_total(self) -> int:
        return self.kept_failed + sum(self.failed.values())

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed_total

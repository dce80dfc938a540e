"""What a run did, counted as it goes: the raw material of summary.json, metrics and the bars."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class EngineStats:
    total: int = 0  # jobs this run is responsible for (the manifest, or this shard of it)
    skipped: int = 0  # already done before this run (image on disk, intact)
    kept_failed: int = 0  # failed in an earlier run and not retried
    submitted: int = 0  # accepted submits this run
    resubmitted_expired: int = 0  # submits of jobs whose earlier request expired unfetched
    resubmitted_ambiguous: int = 0  # submits of jobs whose earlier submit got no answer
    ambiguous: int = 0  # submits this run that got no answer (possible duplicate charges)
    repolled: int = 0  # requests from an earlier run polled again
    redownloaded: int = 0  # results from an earlier run downloaded again
    downloaded: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # by cause, this run
    failures: list[dict[str, object]] = field(default_factory=list)  # {"job","cause","error","request_id"}
    unsubmitted: int = 0  # taken up but certainly not submitted (stopping, credits, fatal)
    unresolved: int = 0  # submits left without an answer after retries: resubmitted on resume
    expired: int = 0  # requests that expired before their result was fetched, this run
    rate_limited: int = 0  # 429s received
    retries: Counter[str] = field(default_factory=Counter)  # by kind of call
    status_calls: int = 0
    peak_in_flight: int = 0  # most requests submitted and not yet resolved at once
    server_failed: int = 0  # jobs the server FAILED (not billed)
    latencies: list[float] = field(default_factory=list)  # seconds, submit → completion seen

    @property
    def done(self) -> int:
        return self.skipped + self.downloaded

    @property
    def failed_total(self) -> int:
        return self.kept_failed + sum(self.failed.values())

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed_total

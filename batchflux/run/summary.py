"""``<out>/summary.json``: the machine-readable answer every run leaves behind, interrupted ones too.

The engine builds one :class:`RunSummary` at the end of a run and calls :func:`write_summary`;
monitoring, ``report`` and ``status`` read it back with :func:`read_summary`. The file is
replaced atomically, so a reader never sees half of it. Schema (``"schema": 1``) in
docs/reference/summary-json.md; keys are only ever added, and readers ignore keys they do not know.

``counts`` holds every job of the manifest (of this shard) by outcome — :data:`OUTCOMES` —
after the run: ``done`` (image on disk, this run or an earlier one), ``failed`` (permanently,
see ``failed_jobs``, which like ``failures_by_cause`` lists every job failed after the run, in this
run or an earlier one, each with the ``run_id`` it failed in), ``in_flight`` (submitted, no
outcome yet: a later run polls it again), ``pending`` (not submitted yet: stopped by a cap, a
signal, an outage or a full disk).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchflux import __version__
from batchflux.engine.stats import FailedJob
from batchflux.files.durable import atomic_write_text
from batchflux.files.layout import SUMMARY_FILENAME

SUMMARY_SCHEMA = 1
OUTCOMES: tuple[str, ...] = ("done", "failed", "in_flight", "pending")
API_CALL_KINDS: tuple[str, ...] = (
    "submit", "status", "result", "upload", "credits", "download", "history", "history_record"
)  # fmt: skip


def iso_utc(ts: float) -> str:
    """Unix seconds → ``2026-11-25T10:00:00Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    """``2026-11-25T10:00:00Z`` (or any ISO 8601 with an offset) → unix seconds. Naive means UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What one run did and where it left the run directory. See the module docstring."""

    run_id: str
    manifest: str  # the manifest path as given
    out_dir: str
    started_at: str  # ISO 8601 UTC
    finished_at: str  # ISO 8601 UTC
    wall_s: float
    exit_code: int
    jobs: int = 0  # jobs in the manifest (this shard's part of it)
    counts: dict[str, int] = field(default_factory=dict, hash=False)  # by outcome, see OUTCOMES
    skipped: int = 0  # already done before this run started (resume)
    api_calls: dict[str, int] = field(default_factory=dict, hash=False)  # by kind, see API_CALL_KINDS
    rate_limited: int = 0  # 429 answers received
    retries: int = 0  # calls repeated after a 429, 5xx or transport error
    possible_duplicates: int = 0  # resubmits after an ambiguous submit: may have been paid twice
    expired_resubmits: int = 0  # resubmits of requests that expired before their result was fetched
    estimated_spend_usd: float = 0.0  # submits this run × price per image
    recovered_submits: int = 0  # ambiguous submits whose request the history showed: not paid again
    recovered_results: int = 0  # requests past their hour fetched from their history record
    # What Segmind's request history said the requests it was asked about this run cost (recovered
    # submits, expired requests), whichever run paid for them: the real figure beside the estimate.
    history_cost_usd: float = 0.0
    history_cost_requests: int = 0  # how many requests that sum covers
    failed_jobs: tuple[FailedJob, ...] = ()
    interrupted: bool = False  # a signal stopped the run
    stop_reason: str | None = None  # why submitting stopped early: "interrupted", "budget", "credits", …
    shard: str | None = None  # "K/N" when sharded
    learned_rate: str | None = None  # "N/Ps": the quota learned from the 429s (no --rate given)
    # Images by verdict when the run ended (approved, rejected, unreviewed; batchflux review), and
    # the rejected jobs this run submitted again (--redo-rejected).
    reviews: dict[str, int] = field(default_factory=dict, hash=False)
    redone: int = 0
    version: str = __version__
    schema: int = SUMMARY_SCHEMA

    def __post_init__(self) -> None:
        # Every outcome is always present (0 when none), so readers and alerts need no defaults.
        object.__setattr__(self, "counts", {**dict.fromkeys(OUTCOMES, 0), **self.counts})
        # No float noise (0.30000000000000004) in a file people read.
        object.__setattr__(self, "wall_s", round(self.wall_s, 3))
        object.__setattr__(self, "estimated_spend_usd", round(self.estimated_spend_usd, 6))
        object.__setattr__(self, "history_cost_usd", round(self.history_cost_usd, 6))

    @property
    def started_ts(self) -> float:
        return parse_iso(self.started_at)

    @property
    def finished_ts(self) -> float:
        return parse_iso(self.finished_at)

    def failures_by_cause(self) -> dict[str, int]:
        return dict(sorted(Counter(job.cause for job in self.failed_jobs).items()))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures_by_cause"] = self.failures_by_cause()
        data["failed_jobs"] = [asdict(job) for job in self.failed_jobs]
        # Readers look at the schema first; the failure list, possibly long, goes last.
        ordered = {"schema": data.pop("schema")}
        ordered.update((k, v) for k, v in data.items() if k != "failed_jobs")
        ordered["failed_jobs"] = data["failed_jobs"]
        return ordered

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        """The inverse of :meth:`to_dict`; unknown keys (from a newer batchflux) are ignored."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["failed_jobs"] = tuple(
            FailedJob(**{k: v for k, v in job.items() if k in FailedJob.__dataclass_fields__})
            for job in data.get("failed_jobs", ())
        )
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValueError(f"not a batchflux summary: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> RunSummary:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a batchflux summary: not a JSON object")
        return cls.from_dict(data)


def write_summary(out_dir: Path, summary: RunSummary) -> Path:
    """Replace ``<out_dir>/summary.json`` atomically; returns its path."""
    path = out_dir / SUMMARY_FILENAME
    atomic_write_text(path, summary.to_json())
    return path


def read_summary(out_dir: Path) -> RunSummary | None:
    """The last run's summary, or ``None`` when there is none yet. ``ValueError`` if unreadable."""
    try:
        text = (out_dir / SUMMARY_FILENAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return RunSummary.from_json(text)

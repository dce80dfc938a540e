"""What one run directory — or several, the shards of one batch — holds right now, folded from their
ledgers: counts by state, failures by cause, requests in flight and when they expire, possible
duplicate charges, and each directory's last run. :func:`summarize` is pure; :func:`load_status`
reads the ledgers. ``batchflux status`` prints the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchflux.files.layout import LEDGER_FILENAME
from batchflux.ledger.replay import JobRecord, JobState, Replay
from batchflux.ledger.requests import read_costs
from batchflux.ledger.resume import RETENTION_S
from batchflux.ledger.reviews import count_verdicts, merge_reviews


class NoLedger(Exception):
    """The directory has no ledger: not a run directory, or nothing ran there yet."""

    def __init__(self, path: Path) -> None:
        where = path.parent
        why = (
            "no such directory" if not where.exists() else "not a run directory, or nothing has run there yet"
        )
        super().__init__(f"no ledger at {path} ({why})")
        self.path = path


@dataclass(frozen=True, slots=True)
class InFlight:
    job_id: str
    request_id: str
    status: str | None  # last status seen: QUEUED / PROCESSING
    submitted_at: float
    expires_at: float
    out_dir: str

    def seconds_left(self, now: float) -> float:
        return self.expires_at - now


@dataclass(frozen=True, slots=True)
class FailureGroup:
    cause: str
    count: int
    example_job: str
    example_error: str


@dataclass(frozen=True, slots=True)
class LastRun:
    out_dir: str
    runs: int  # run_started events in this directory
    run_id: str
    started_at: float
    finished_at: float | None  # None: still running, or killed before run_finished
    exit_code: int | None
    pid: int | None
    host: str | None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


@dataclass(frozen=True, slots=True)
class RunStatus:
    out_dirs: tuple[str, ...]
    now: float
    retention_s: float
    jobs: int
    by_state: dict[str, int] = field(hash=False)  # every JobState value, zeros included
    failures: tuple[FailureGroup, ...]  # most frequent cause first
    in_flight: tuple[InFlight, ...]  # soonest expiry first
    past_retention: int  # submitted, no result, retention over: the next run resubmits them
    possible_duplicates: int  # ambiguous submits: the POST may have been charged without an answer
    expirations: int  # requests whose record expired before their result was fetched
    last_runs: tuple[LastRun, ...]  # one per directory with a run
    torn_tails: tuple[str, ...]
    duplicate_ids: int  # job ids found in more than one directory (the latest record counts)
    # What Segmind's request history said the ledgers' requests cost, where a run asked it (a
    # recovered submit, an expired request's record): ``credits_deduction`` recorded in the ledger.
    actual_spend_usd: float = 0.0
    actual_spend_requests: int = 0  # how many requests that sum covers
    # Images by verdict (approved, rejected, unreviewed): the review logs merged, see batchflux review.
    reviews: dict[str, int] = field(default_factory=dict, hash=False)

    def to_json(self, limit: int | None = None) -> dict[str, Any]:
        shown = self.in_flight if limit is None else self.in_flight[:limit]
        return {
            "out_dirs": list(self.out_dirs),
            "now": self.now,
            "retention_s": self.retention_s,
            "jobs": self.jobs,
            "by_state": dict(self.by_state),
            "failures": [
                {
                    "cause": f.cause,
                    "count": f.count,
                    "example_job": f.example_job,
                    "example_error": f.example_error,
                }
                for f in self.failures
            ],
            "in_flight": {
                "count": len(self.in_flight),
                "shown": [
                    {
                        "job": r.job_id,
                        "request_id": r.request_id,
                        "status": r.status,
                        "submitted_at": r.submitted_at,
                        "expires_at": r.expires_at,
                        "seconds_left": round(r.seconds_left(self.now), 3),
                        "out_dir": r.out_dir,
                    }
                    for r in shown
                ],
            },
            "past_retention": self.past_retention,
            "possible_duplicates": self.possible_duplicates,
            "expirations": self.expirations,
            "last_runs": [
                {
                    "out_dir": r.out_dir,
                    "runs": r.runs,
                    "run_id": r.run_id,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "exit_code": r.exit_code,
                    "state": "finished" if r.finished else "running_or_killed",
                    "pid": r.pid,
                    "host": r.host,
                }
                for r in self.last_runs
            ],
            "torn_tails": list(self.torn_tails),
            "duplicate_ids": self.duplicate_ids,
            "actual_spend_usd": round(self.actual_spend_usd, 6),
            "actual_spend_requests": self.actual_spend_requests,
            "reviews": dict(self.reviews),
        }


def summarize(
    ledgers: Sequence[tuple[str, Replay]],
    *,
    now: float,
    retention_s: float = RETENTION_S,
    costs: Mapping[str, float] | None = None,
) -> RunStatus:
    """Fold replays (each named by its directory) into one status. ``now`` is unix time; ``costs``
    what the ledgers recorded their requests cost (request id -> USD, see
    :func:`~batchflux.ledger.requests.read_costs`)."""
    records: dict[str, tuple[str, JobRecord]] = {}
    duplicate_ids = 0
    last_runs: list[LastRun] = []
    for out_dir, rep in ledgers:
        for job_id, rec in rep.jobs.items():
            seen = records.get(job_id)
            if seen is not None:
                duplicate_ids += 1
                if seen[1].last_ts > rec.last_ts:
                    continue
            records[job_id] = (out_dir, rec)
        if rep.runs:
            last_runs.append(_last_run(out_dir, rep))

    by_state = {s.value: 0 for s in JobState}
    failures: dict[str, list[JobRecord]] = {}
    in_flight: list[InFlight] = []
    past_retention = duplicates = expirations = 0
    for out_dir, rec in records.values():
        by_state[rec.state.value] += 1
        duplicates += rec.possible_duplicates
        expirations += rec.expirations
        if rec.state is JobState.FAILED:
            failures.setdefault(rec.cause or "unknown", []).append(rec)
        elif rec.state is JobState.SUBMITTED and rec.submitted_at is not None:
            expires_at = rec.submitted_at + retention_s
            if expires_at > now:
                in_flight.append(
                    InFlight(
                        rec.job_id,
                        rec.request_id or "",
                        rec.last_status,
                        rec.submitted_at,
                        expires_at,
                        out_dir,
                    )
                )
            else:
                past_retention += 1
    in_flight.sort(key=lambda r: (r.expires_at, r.job_id))
    groups = [
        FailureGroup(cause, len(recs), recs[0].job_id, recs[0].error or "")
        for cause, recs in sorted(failures.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]
    return RunStatus(
        out_dirs=tuple(name for name, _ in ledgers),
        now=now,
        retention_s=retention_s,
        jobs=len(records),
        by_state=by_state,
        failures=tuple(groups),
        in_flight=tuple(in_flight),
        past_retention=past_retention,
        possible_duplicates=duplicates,
        expirations=expirations,
        last_runs=tuple(last_runs),
        torn_tails=tuple(rep.torn_tail for _, rep in ledgers if rep.torn_tail),
        duplicate_ids=duplicate_ids,
        actual_spend_usd=sum((costs or {}).values()),
        actual_spend_requests=len(costs or {}),
        reviews=count_verdicts(rec for _, rec in records.values()),
    )


def _last_run(out_dir: str, rep: Replay) -> LastRun:
    run = rep.runs[-1]
    pid, host = run.data.get("pid"), run.data.get("host")
    return LastRun(
        out_dir=out_dir,
        runs=len(rep.runs),
        run_id=run.run_id,
        started_at=run.started_at,
        finished_at=run.finished_at,
        exit_code=run.exit_code,
        pid=pid if type(pid) is int else None,
        host=host if isinstance(host, str) else None,
    )


def load_status(out_dirs: Sequence[Path], *, now: float, retention_s: float | None = None) -> RunStatus:
    """Replay each directory's ledger and summarize them together. ``retention_s``: how long the
    server keeps a request; None: what the latest run said (its ``run_started``), else 3600 s.
    Raises :class:`NoLedger` for a directory without one and
    :class:`~batchflux.ledger.LedgerCorrupt` for an unreadable one."""
    ledgers = []
    costs: dict[str, float] = {}
    for out_dir in out_dirs:
        path = out_dir / LEDGER_FILENAME
        if not path.is_file():
            raise NoLedger(path)
        replay, found = read_costs(path)
        merge_reviews(replay, out_dir)
        ledgers.append((str(out_dir), replay))
        costs.update(found)
    if retention_s is None:
        retention_s = recorded_retention([rep for _, rep in ledgers])
    return summarize(ledgers, now=now, retention_s=retention_s, costs=costs)


def recorded_retention(replays: Sequence[Replay]) -> float:
    """The retention the latest run of these ledgers was told (``--retention``), else 3600 s."""
    runs = sorted((run for rep in replays for run in rep.runs), key=lambda run: run.started_at)
    for run in reversed(runs):
        value = run.data.get("retention_s")
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return RETENTION_S

"""Header figures: counts, wall time, quota use, spend, duplicates, timings (pure).

Computed from the ledger itself; ``summary.json`` (optional, the last run's own counts) adds what
only the engine saw: API calls by kind, 429s and retries. Actual spend is what the ledgers recorded
of the request history's ``credits_deduction``: the requests a run asked it about.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from batchflux.ledger import JobState
from batchflux.manifest.schema import price_for
from batchflux.report.rows import JobRow, RunDir

# Outcome labels, in the order the header and the filter list them.
STATUS_LABELS: dict[JobState, str] = {
    JobState.DOWNLOADED: "done",
    JobState.FAILED: "failed",
    JobState.EXPIRED: "expired",
    JobState.COMPLETED: "not downloaded",
    JobState.SUBMITTED: "in flight",
    JobState.INTENT: "unconfirmed",
    JobState.PENDING: "not submitted",  # an intent closed as NOT_SUBMITTED: the next run submits it
}
STATUS_ORDER: tuple[str, ...] = tuple(STATUS_LABELS.values())
REVIEW_LABELS: tuple[str, ...] = ("approved", "rejected", "unreviewed")


@dataclass(frozen=True, slots=True)
class Figures:
    total: int
    counts: tuple[tuple[str, int], ...]  # (status, count) in STATUS_ORDER, zero counts left out
    failures_by_cause: tuple[tuple[str, int], ...]
    runs: int
    wall_s: float | None
    submits: int  # submit attempts recorded (intents)
    peak_submits_60s: int  # most submits in any sliding 60 s window: the quota actually used
    submit_rate_per_min: float | None  # from first to last submit, when that spans a minute or more
    rpm: float | None  # the configured quota, when summary.json says
    learned_rate: (
        str | None
    )  # "N/Ps": the quota learned from the 429s (no --rpm given), when summary.json says
    api_calls: int | None
    api_calls_by_kind: tuple[tuple[str, int], ...]  # (kind, count), most first, when summary.json says
    rate_limited: int | None
    spend_usd: float  # billed requests as the ledger sees them, every run
    spend_summary_usd: float | None  # the last run's own estimate (summary.json), when every dir has one
    actual_spend_usd: float  # what the request history said requests cost, as the ledgers recorded it
    actual_spend_requests: int  # how many requests that covers (0: the ledgers recorded no cost)
    retries: int | None
    stopped: tuple[str, ...]  # why the last run of a directory stopped early ("credits", "interrupted", …)
    possible_duplicates: int
    inference_median_s: float | None
    inference_p95_s: float | None
    turnaround_median_s: float | None  # submitted -> result seen
    notes: tuple[str, ...]  # torn ledger tails and the like
    reviews: tuple[tuple[str, int], ...] = ()  # (approved/rejected/unreviewed, count) once any verdict


def compute_figures(dirs: Sequence[RunDir], rows: Sequence[JobRow]) -> Figures:
    counts = Counter(r.status for r in rows)
    causes = Counter(r.cause or "unknown" for r in rows if r.status == "failed")
    submits = sorted(r.submitted_s for r in rows if r.submitted_s is not None)
    inference = sorted(r.inference_s for r in rows if r.inference_s is not None)
    turnaround = sorted(
        r.completed_s - r.submitted_s for r in rows if r.completed_s is not None and r.submitted_s is not None
    )
    summaries = [rd.summary for rd in dirs if rd.summary is not None]
    all_summaries = len(summaries) == len(dirs) and bool(summaries)
    spend_summary = _sum_key(summaries, "estimated_spend_usd") if all_summaries else None
    dup_summary = _sum_key(summaries, "possible_duplicates") if all_summaries else None
    notes = tuple(f"{rd.path.name}: {rd.replay.torn_tail}" for rd in dirs if rd.replay.torn_tail is not None)
    actual = {rid: cost for rd in dirs for rid, cost in rd.costs.items()}
    span = submits[-1] - submits[0] if len(submits) > 1 else 0.0
    return Figures(
        total=len(rows),
        counts=tuple((s, counts[s]) for s in STATUS_ORDER if counts[s]),
        failures_by_cause=tuple(sorted(causes.items(), key=lambda kv: (-kv[1], kv[0]))),
        runs=sum(len(rd.replay.runs) for rd in dirs),
        wall_s=_wall(dirs),
        submits=sum(rec.attempts for rd in dirs for rec in rd.replay.jobs.values()),
        peak_submits_60s=peak_in_window(submits, 60.0),
        submit_rate_per_min=(len(submits) - 1) / span * 60.0 if span >= 60.0 else None,
        rpm=_first_number(summaries, "rpm"),
        learned_rate=next((r for s in summaries if isinstance(r := s.get("learned_rate"), str) and r), None),
        api_calls=_api_calls(summaries) if summaries else None,
        api_calls_by_kind=_api_calls_by_kind(summaries),
        rate_limited=_int_or_none(_sum_key(summaries, "rate_limited")) if summaries else None,
        spend_usd=_ledger_spend(dirs),
        spend_summary_usd=spend_summary,
        actual_spend_usd=sum(actual.values()),
        actual_spend_requests=len(actual),
        retries=_int_or_none(_sum_key(summaries, "retries")) if summaries else None,
        stopped=tuple(
            f"{rd.path.name}: {reason}" if len(dirs) > 1 else reason
            for rd in dirs
            if rd.summary is not None and isinstance(reason := rd.summary.get("stop_reason"), str) and reason
        ),
        possible_duplicates=max(int(dup_summary or 0), sum(rd.replay.possible_duplicates for rd in dirs)),
        inference_median_s=statistics.median(inference) if inference else None,
        inference_p95_s=_percentile(inference, 0.95),
        turnaround_median_s=statistics.median(turnaround) if turnaround else None,
        notes=notes,
        reviews=_reviews(rows),
    )


def _reviews(rows: Sequence[JobRow]) -> tuple[tuple[str, int], ...]:
    """Images by verdict, once anyone has reviewed any (``batchflux review``); else nothing."""
    verdicts = Counter(r.review for r in rows if r.status == "done")
    if not (verdicts["approved"] or verdicts["rejected"]):
        return ()
    return tuple((name, verdicts[name if name != "unreviewed" else None]) for name in REVIEW_LABELS)


def peak_in_window(times: Sequence[float], window_s: float) -> int:
    """Most events in any half-open window [t, t + window_s) of sorted ``times``."""
    best = lo = 0
    for hi, t in enumerate(times):
        while times[lo] + window_s <= t:  # not t - window_s: the subtraction rounds (60.3 - 60 < 0.3)
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _wall(dirs: Sequence[RunDir]) -> float | None:
    """Each directory's runs added up (resumes run one after another); shards run side by side,
    so merged directories take the longest."""
    walls: list[float] = []
    for rd in dirs:
        runs = rd.replay.runs
        if not runs:
            wall = rd.summary.get("wall_s") if rd.summary else None
            if is_number(wall):
                walls.append(float(wall))
            continue
        last_event = max((rec.last_ts for rec in rd.replay.jobs.values()), default=0.0)
        total = 0.0
        for i, run in enumerate(runs):
            recorded = run.finish.get("wall_s")
            if is_number(recorded):
                total += float(recorded)
            elif run.finished_at is not None:
                total += run.finished_at - run.started_at
            else:  # crashed or still running: up to the next run's start or the last event seen
                end = runs[i + 1].started_at if i + 1 < len(runs) else last_event
                total += max(0.0, end - run.started_at)
        walls.append(total)
    return max(walls) if walls else None


def _ledger_spend(dirs: Sequence[RunDir]) -> float:
    """Billed requests as the ledger sees them: results, expired requests (they ran) and ambiguous
    submits (they may have). Failed jobs are not billed."""
    total = 0.0
    for rd in dirs:
        for rec in rd.replay.jobs.values():
            billed = rec.expirations + rec.possible_duplicates
            if rec.state in (JobState.COMPLETED, JobState.DOWNLOADED):
                billed += 1
            if billed:
                total += billed * price_for(rec.model or "flux-kontext-max")
    return total


def _api_calls(summaries: Sequence[Mapping[str, Any]]) -> int | None:
    total: int | None = None
    for s in summaries:
        calls = s.get("api_calls")
        if isinstance(calls, Mapping):
            calls = sum(v for v in calls.values() if is_number(v))
        if is_number(calls):
            total = (total or 0) + int(calls)
    return total


def _api_calls_by_kind(summaries: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, int], ...]:
    kinds: Counter[str] = Counter()
    for s in summaries:
        calls = s.get("api_calls")
        if isinstance(calls, Mapping):
            kinds.update({str(k): int(v) for k, v in calls.items() if is_number(v)})
    return tuple(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))


def _sum_key(summaries: Sequence[Mapping[str, Any]], key: str) -> float | None:
    values = [float(v) for s in summaries if is_number(v := s.get(key))]
    return sum(values) if values else None


def _first_number(summaries: Sequence[Mapping[str, Any]], key: str) -> float | None:
    for s in summaries:
        value = s.get(key)
        if is_number(value):
            return float(value)
    return None


def _int_or_none(value: float | None) -> int | None:
    return int(value) if value is not None else None


def _percentile(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


def is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

"""What the report shows, folded from ledgers and summaries (pure: values in, values out).

One :class:`RunDir` per output directory (several = shards of one batch, merged). Each job
becomes a :class:`JobRow`; the header figures are computed from the ledger itself, with
``summary.json`` (optional) filling in what only the engine counted: API calls and 429s.
Local file paths are resolved here but never checked: the caller decides what exists.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from batchflux.ledger import JobRecord, JobState, Replay
from batchflux.schema import price_for

# Outcome labels, in the order the header and the filter list them.
STATUS_LABELS: dict[JobState, str] = {
    JobState.DOWNLOADED: "done",
    JobState.FAILED: "failed",
    JobState.EXPIRED: "expired",
    JobState.COMPLETED: "not downloaded",
    JobState.SUBMITTED: "in flight",
    JobState.INTENT: "unconfirmed",
}
STATUS_ORDER: tuple[str, ...] = tuple(STATUS_LABELS.values())

MAX_TEXT = 2000  # longest prompt/error shown in full; longer ones are cut with a note
MAX_PARAM = 200  # longest parameter value shown


@dataclass(frozen=True, slots=True)
class RunDir:
    """One output directory as read from disk: its ledger's replay and its summary.json, if any."""

    path: Path
    replay: Replay
    summary: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class JobRow:
    key: str  # unique within the report ("job" or "shard/job" when merged)
    job_id: str
    shard: str  # the output directory's name when several are merged, else ""
    out_dir: Path
    status: str  # one of STATUS_ORDER
    prompt: str
    params: tuple[tuple[str, str], ...]  # display form, prompt excluded, inline data cut short
    input_path: Path | None  # local input image (absolute when the ledger says so)
    input_url: str | None  # remote input (http/https), linked but never loaded by the page
    output_path: Path | None  # where the output image is (or would be)
    inference_s: float | None
    submitted_s: float | None  # seconds since the report's time origin
    completed_s: float | None
    attempts: int
    possible_duplicates: int
    request_id: str | None
    cause: str | None
    error: str | None
    http_status: int | None
    model: str


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
    api_calls: int | None
    api_calls_by_kind: tuple[tuple[str, int], ...]  # (kind, count), most first, when summary.json says
    rate_limited: int | None
    spend_usd: float  # billed requests as the ledger sees them, every run
    spend_summary_usd: float | None  # the last run's own estimate (summary.json), when every dir has one
    retries: int | None
    stopped: tuple[str, ...]  # why the last run of a directory stopped early ("credits", "interrupted", …)
    possible_duplicates: int
    inference_median_s: float | None
    inference_p95_s: float | None
    turnaround_median_s: float | None  # submitted -> result seen
    notes: tuple[str, ...]  # torn ledger tails and the like


@dataclass(frozen=True, slots=True)
class Timeline:
    """Event times in seconds since ``origin`` (unix), each sorted."""

    origin: float
    span_s: float
    submits: tuple[float, ...]
    completions: tuple[float, ...]
    failures: tuple[float, ...]
    run_starts: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ReportModel:
    title: str
    out_dirs: tuple[Path, ...]
    rows: tuple[JobRow, ...]
    figures: Figures
    timeline: Timeline
    manifests: tuple[str, ...] = field(default=())


def build_model(dirs: Sequence[RunDir]) -> ReportModel:
    merged = len(dirs) > 1
    origin = _origin(dirs)
    rows: list[JobRow] = []
    for rd in dirs:
        manifest_dir = _manifest_dir(rd.replay)
        for rec in sorted(rd.replay.jobs.values(), key=lambda r: (r.first_ts, r.job_id)):
            rows.append(_row(rec, rd, merged, origin, manifest_dir))
    manifests = tuple(dict.fromkeys(m for rd in dirs for m in _manifests(rd.replay)))
    title = ", ".join(Path(m).name for m in manifests) or ", ".join(rd.path.name for rd in dirs)
    return ReportModel(
        title=title,
        out_dirs=tuple(rd.path for rd in dirs),
        rows=tuple(rows),
        figures=_figures(dirs, rows),
        timeline=_timeline(dirs, rows, origin),
        manifests=manifests,
    )


def _row(rec: JobRecord, rd: RunDir, merged: bool, origin: float, manifest_dir: Path | None) -> JobRow:
    shard = rd.path.name if merged else ""
    prompt = rec.params.get("prompt")
    input_ref = rec.input if isinstance(rec.input, str) else rec.params.get("input_image")
    input_path: Path | None = None
    input_url: str | None = None
    if isinstance(input_ref, str) and input_ref:
        if input_ref.startswith(("http://", "https://")):
            input_url = input_ref
        elif not input_ref.startswith("data:"):
            p = Path(input_ref)
            input_path = p if p.is_absolute() or manifest_dir is None else manifest_dir / p
    rel_out = rec.path or rec.output
    inference = rec.metrics.get("inference_time")
    return JobRow(
        key=f"{shard}/{rec.job_id}" if merged else rec.job_id,
        job_id=rec.job_id,
        shard=shard,
        out_dir=rd.path,
        status=STATUS_LABELS.get(rec.state, str(rec.state)),
        prompt=_cut(prompt, MAX_TEXT) if isinstance(prompt, str) else "",
        params=tuple((k, display_value(v)) for k, v in rec.params.items() if k != "prompt"),
        input_path=input_path,
        input_url=input_url,
        output_path=rd.path / rel_out if rel_out else None,
        inference_s=float(inference) if _is_number(inference) else None,
        submitted_s=rec.submitted_at - origin if rec.submitted_at is not None else None,
        completed_s=rec.completed_at - origin if rec.completed_at is not None else None,
        attempts=rec.attempts,
        possible_duplicates=rec.possible_duplicates,
        request_id=rec.request_id,
        cause=rec.cause,
        error=_cut(rec.error, MAX_TEXT) if isinstance(rec.error, str) else None,
        http_status=rec.http_status,
        model=rec.model,
    )


def display_value(value: object) -> str:
    """A parameter as shown on a card: strings as they are, inline data and long text cut short."""
    if isinstance(value, str):
        if value.startswith("data:"):
            head = value.split(",", 1)[0]
            return f"{head[:60]},… ({len(value)} characters of inline data, not shown)"
        return _cut(value, MAX_PARAM)
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return _cut(text, MAX_PARAM)


def _figures(dirs: Sequence[RunDir], rows: Sequence[JobRow]) -> Figures:
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
        api_calls=_api_calls(summaries) if summaries else None,
        api_calls_by_kind=_api_calls_by_kind(summaries),
        rate_limited=_int_or_none(_sum_key(summaries, "rate_limited")) if summaries else None,
        spend_usd=_ledger_spend(dirs),
        spend_summary_usd=spend_summary,
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
    )


def _timeline(dirs: Sequence[RunDir], rows: Sequence[JobRow], origin: float) -> Timeline:
    submits = sorted(r.submitted_s for r in rows if r.submitted_s is not None)
    completions = sorted(r.completed_s for r in rows if r.completed_s is not None)
    failures = sorted(
        rec.last_ts - origin
        for rd in dirs
        for rec in rd.replay.jobs.values()
        if rec.state in (JobState.FAILED, JobState.EXPIRED)
    )
    starts = sorted(run.started_at - origin for rd in dirs for run in rd.replay.runs)
    ends = [run.finished_at - origin for rd in dirs for run in rd.replay.runs if run.finished_at is not None]
    last = [rec.last_ts - origin for rd in dirs for rec in rd.replay.jobs.values()]
    span = max([0.0, *submits, *completions, *failures, *ends, *last])
    return Timeline(origin, span, tuple(submits), tuple(completions), tuple(failures), tuple(starts))


def peak_in_window(times: Sequence[float], window_s: float) -> int:
    """Most events in any half-open window [t, t + window_s) of sorted ``times``."""
    best = lo = 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _origin(dirs: Sequence[RunDir]) -> float:
    candidates = [run.started_at for rd in dirs for run in rd.replay.runs]
    candidates += [rec.first_ts for rd in dirs for rec in rd.replay.jobs.values() if rec.first_ts]
    return min(candidates, default=0.0)


def _wall(dirs: Sequence[RunDir]) -> float | None:
    """Each directory's runs added up (resumes run one after another); shards run side by side,
    so merged directories take the longest."""
    walls: list[float] = []
    for rd in dirs:
        runs = rd.replay.runs
        if not runs:
            wall = rd.summary.get("wall_s") if rd.summary else None
            if _is_number(wall):
                walls.append(float(wall))
            continue
        last_event = max((rec.last_ts for rec in rd.replay.jobs.values()), default=0.0)
        total = 0.0
        for i, run in enumerate(runs):
            recorded = run.finish.get("wall_s")
            if _is_number(recorded):
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


def _manifests(replay: Replay) -> list[str]:
    return [str(m) for run in replay.runs if isinstance(m := run.data.get("manifest"), str) and m]


def _manifest_dir(replay: Replay) -> Path | None:
    manifests = _manifests(replay)
    if manifests and Path(manifests[-1]).is_absolute():
        return Path(manifests[-1]).parent
    return None


def _api_calls(summaries: Sequence[Mapping[str, Any]]) -> int | None:
    total: int | None = None
    for s in summaries:
        calls = s.get("api_calls")
        if isinstance(calls, Mapping):
            calls = sum(v for v in calls.values() if _is_number(v))
        if _is_number(calls):
            total = (total or 0) + int(calls)
    return total


def _api_calls_by_kind(summaries: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, int], ...]:
    kinds: Counter[str] = Counter()
    for s in summaries:
        calls = s.get("api_calls")
        if isinstance(calls, Mapping):
            kinds.update({str(k): int(v) for k, v in calls.items() if _is_number(v)})
    return tuple(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))


def _sum_key(summaries: Sequence[Mapping[str, Any]], key: str) -> float | None:
    values = [float(v) for s in summaries if _is_number(v := s.get(key))]
    return sum(values) if values else None


def _first_number(summaries: Sequence[Mapping[str, Any]], key: str) -> float | None:
    for s in summaries:
        value = s.get(key)
        if _is_number(value):
            return float(value)
    return None


def _int_or_none(value: float | None) -> int | None:
    return int(value) if value is not None else None


def _percentile(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"

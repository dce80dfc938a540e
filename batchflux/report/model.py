"""What the report shows, folded from ledgers and summaries (pure: values in, values out).

One :class:`RunDir` per output directory (several = shards of one batch, merged). Each job
becomes a :class:`JobRow`; the header figures are computed from the ledger itself, with
``summary.json`` (optional) filling in what only the engine counted: API calls and 429s.
Local file paths are resolved here but never checked: the caller decides what exists.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batchflux.ledger import JobRecord, JobState, Replay
from batchflux.report.figures import STATUS_LABELS, Figures, compute_figures, is_number
from batchflux.report.rows import JobRow, RunDir

MAX_TEXT = 2000  # longest prompt/error shown in full; longer ones are cut with a note
MAX_PARAM = 200  # longest parameter value shown


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
        figures=compute_figures(dirs, rows),
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
        status=STATUS_LABELS[rec.state],
        prompt=_cut(prompt, MAX_TEXT) if isinstance(prompt, str) else "",
        params=tuple((k, display_value(v)) for k, v in rec.params.items() if k != "prompt"),
        input_path=input_path,
        input_url=input_url,
        output_path=rd.path / rel_out if rel_out else None,
        inference_s=float(inference) if is_number(inference) else None,
        submitted_s=rec.submitted_at - origin if rec.submitted_at is not None else None,
        completed_s=rec.completed_at - origin if rec.completed_at is not None else None,
        attempts=rec.attempts,
        possible_duplicates=rec.possible_duplicates,
        request_id=rec.request_id,
        cause=rec.cause,
        error=_cut(rec.error, MAX_TEXT) if isinstance(rec.error, str) else None,
        http_status=rec.http_status,
        model=rec.model,
        review=verdict.verdict if (verdict := rec.verdict) is not None else None,
        review_note=current.note if (current := rec.current_review) is not None else "",
        output_sha256=rec.sha256 if rec.path else None,
        output_size=rec.size if rec.path else None,
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


def _origin(dirs: Sequence[RunDir]) -> float:
    candidates = [run.started_at for rd in dirs for run in rd.replay.runs]
    candidates += [rec.first_ts for rd in dirs for rec in rd.replay.jobs.values() if rec.first_ts]
    return min(candidates, default=0.0)


def _manifests(replay: Replay) -> list[str]:
    return [str(m) for run in replay.runs if isinstance(m := run.data.get("manifest"), str) and m]


def _manifest_dir(replay: Replay) -> Path | None:
    manifests = _manifests(replay)
    if manifests and Path(manifests[-1]).is_absolute():
        return Path(manifests[-1]).parent
    return None


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"

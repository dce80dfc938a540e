"""Replay: fold ledger lines into one :class:`JobRecord` per job id (pure, no I/O but the read).

A torn last line — the crash case, a write cut short — is reported and ignored. A line that
does not parse anywhere else is corruption: :class:`LedgerCorrupt` names its line number and
nothing is rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from batchflux.ledger.events import Event, EventType, UnknownEvent


class JobState(StrEnum):
    INTENT = "intent"  # submit_intent written, no submitted: the POST may or may not have reached the server
    SUBMITTED = "submitted"  # request_id known, no terminal outcome yet
    COMPLETED = "completed"  # result known (output URL), image not yet on disk
    DOWNLOADED = "downloaded"  # image on disk, size and sha256 recorded
    FAILED = "failed"  # permanently failed (cause, error)
    EXPIRED = "expired"  # the request's record expired before its result was fetched


class LedgerCorrupt(Exception):
    """A line other than the last could not be read. ``line`` is 1-based."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: corrupt ledger line ({reason}); the ledger was not modified")
        self.path = path
        self.line = line
        self.reason = reason


@dataclass(slots=True)
class JobRecord:
    """Everything the ledger knows about one job, latest attempt first-class."""

    job_id: str
    state: JobState = JobState.INTENT
    fingerprint: str = ""
    model: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    input: str | None = None
    output: str = ""
    attempts: int = 0  # submit_intent events
    ambiguous: int = 0  # intents never followed by 'submitted': possible duplicate charges
    expirations: int = 0  # 'expired' events
    request_id: str | None = None
    status_url: str | None = None
    response_url: str | None = None
    submitted_at: float | None = None
    last_status: str | None = None
    output_url: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    completed_at: float | None = None
    path: str | None = None
    size: int | None = None
    sha256: str | None = None
    cause: str | None = None
    error: str | None = None
    http_status: int | None = None
    first_ts: float = 0.0
    last_ts: float = 0.0

    def apply(self, ev: Event) -> None:
        d = ev.data
        if not self.first_ts:
            self.first_ts = ev.ts
        self.last_ts = ev.ts
        kind = ev.event
        if kind is EventType.SUBMIT_INTENT:
            if self.state is JobState.INTENT and self.attempts:
                self.ambiguous += 1  # the previous intent never got its 'submitted'
            self.state = JobState.INTENT
            self.attempts += 1
            self.fingerprint = str(d.get("fingerprint", ""))
            self.model = str(d.get("model", ""))
            params = d.get("params")
            self.params = params if isinstance(params, dict) else {}
            self.input = d.get("input")
            self.output = str(d.get("output", ""))
            self.request_id = self.status_url = self.response_url = None
            self.submitted_at = None
            self.last_status = self.output_url = None
            self.metrics = {}
            self.completed_at = None
            self.path = self.sha256 = None
            self.size = None
            self.cause = self.error = None
            self.http_status = None
        elif kind is EventType.SUBMITTED:
            self.state = JobState.SUBMITTED
            self.request_id = d.get("request_id")
            self.status_url = d.get("status_url")
            self.response_url = d.get("response_url")
            self.submitted_at = _float(d.get("submitted_at"), ev.ts)
            self.last_status = "QUEUED"
        elif kind is EventType.STATE:
            if self.state is JobState.SUBMITTED:
                self.last_status = d.get("status")
        elif kind is EventType.RESULT:
            self.state = JobState.COMPLETED
            self.output_url = d.get("output_url")
            metrics = d.get("metrics")
            self.metrics = metrics if isinstance(metrics, dict) else {}
            self.completed_at = _float(d.get("completed_at"), ev.ts)
            self.last_status = "COMPLETED"
        elif kind is EventType.DOWNLOADED:
            self.state = JobState.DOWNLOADED
            self.path = d.get("path")
            size = d.get("size")
            self.size = size if isinstance(size, int) else None
            self.sha256 = d.get("sha256")
        elif kind is EventType.FAILED:
            self.state = JobState.FAILED
            self.cause = d.get("cause")
            self.error = d.get("error")
            status = d.get("http_status")
            self.http_status = status if isinstance(status, int) else None
            self.last_status = "FAILED"
        elif kind is EventType.EXPIRED:
            self.state = JobState.EXPIRED
            self.expirations += 1

    @property
    def open_intent(self) -> bool:
        """The last submit may have reached the server without us learning its request_id."""
        return self.state is JobState.INTENT and self.attempts > 0

    @property
    def possible_duplicates(self) -> int:
        """Ambiguous submits: earlier ones plus a still-open last one."""
        return self.ambiguous + (1 if self.open_intent else 0)


@dataclass(slots=True)
class RunRecord:
    run_id: str
    started_at: float
    data: dict[str, Any] = field(default_factory=dict)
    finished_at: float | None = None
    exit_code: int | None = None
    finish: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Replay:
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    runs: list[RunRecord] = field(default_factory=list)
    lines: int = 0
    torn_tail: str | None = None  # the torn last line's problem, when there was one

    def apply(self, ev: Event) -> None:
        if ev.job is not None:
            rec = self.jobs.get(ev.job)
            if rec is None:
                rec = self.jobs[ev.job] = JobRecord(job_id=ev.job)
            rec.apply(ev)
        elif ev.event is EventType.RUN_STARTED:
            self.runs.append(RunRecord(run_id=str(ev.data.get("run_id", "")), started_at=ev.ts, data=ev.data))
        elif ev.event is EventType.RUN_FINISHED:
            run = self._run(str(ev.data.get("run_id", "")))
            if run is not None:
                run.finished_at = ev.ts
                code = ev.data.get("exit_code")
                run.exit_code = code if isinstance(code, int) else None
                run.finish = ev.data

    def _run(self, run_id: str) -> RunRecord | None:
        for run in reversed(self.runs):
            if run.run_id == run_id:
                return run
        return None

    @property
    def possible_duplicates(self) -> int:
        return sum(r.possible_duplicates for r in self.jobs.values())

    @property
    def last_run(self) -> RunRecord | None:
        return self.runs[-1] if self.runs else None


def replay_lines(lines: Iterable[str], path: str = "ledger.jsonl") -> Replay:
    """Fold lines (each with or without its newline) into a :class:`Replay`.

    The last line may be torn (no newline, or not parseable): it is ignored and reported in
    ``torn_tail``. Any other unreadable line raises :class:`LedgerCorrupt`; an event from a
    newer batchflux raises it too, with the reason.
    """
    result = Replay()
    pending: tuple[int, str] | None = None  # hold one line back: only the last may be torn
    for number, line in enumerate(lines, start=1):
        if pending is not None:
            _apply_line(result, path, *pending, last=False)
        pending = (number, line)
    if pending is not None:
        _apply_line(result, path, *pending, last=True)
    return result


def _apply_line(result: Replay, path: str, number: int, line: str, *, last: bool) -> None:
    result.lines = number
    text = line.rstrip("\n")
    if not text.strip():
        if last and not line.endswith("\n"):
            return
        raise LedgerCorrupt(path, number, "empty line")
    try:
        ev = Event.decode(text)
    except UnknownEvent as exc:
        raise LedgerCorrupt(path, number, str(exc)) from exc
    except (ValueError, json.JSONDecodeError) as exc:
        if last:
            result.torn_tail = f"{path}:{number}: ignored a torn last line ({exc})"
            return
        raise LedgerCorrupt(path, number, str(exc)) from exc
    if last and not line.endswith("\n"):
        # Parsed, but the newline never made it: the write was cut exactly at the end of the JSON.
        # The event is complete, so keep it; the writer starts the next run on a fresh line.
        pass
    result.apply(ev)


def replay_file(path: Path) -> Replay:
    """Replay ``path``; an absent ledger is an empty replay."""
    if not path.exists():
        return Replay()
    with path.open("r", encoding="utf-8", errors="surrogateescape") as fh:
        return replay_lines(fh, str(path))


def _float(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) else default

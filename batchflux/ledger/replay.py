"""Replay: fold ledger lines into one :class:`JobRecord` per job id (pure, no I/O but the read).

The last line may be torn — a write cut short by a crash or a power loss: it is reported in
:attr:`Replay.torn_tail` and ignored (the writer moves it aside before appending). A line that does
not parse anywhere else is corruption: :class:`LedgerCorrupt` names its line number, and nothing
is rewritten. An event from a newer batchflux raises :class:`LedgerTooNew`, wherever it is.

Speed: a million events replay in a few seconds (``tests/bench/bench_ledger.py``). Job events take a
fast path — one ``raw_decode`` and the record's :meth:`JobRecord.apply_fields` on the parsed dict;
anything unusual falls back to :meth:`Event.decode`, so both paths agree by construction.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from batchflux.ledger.events import LEDGER_VERSION, Event, EventType, UnknownEvent


class JobState(StrEnum):
    INTENT = "intent"  # submit_intent written, no submitted: the POST may or may not have reached the server
    SUBMITTED = "submitted"  # request_id known, no terminal outcome yet
    COMPLETED = "completed"  # result known (output URL), image not yet on disk
    DOWNLOADED = "downloaded"  # image on disk, size and sha256 recorded
    FAILED = "failed"  # permanently failed (cause, error)
    EXPIRED = "expired"  # the request's record expired before its result was fetched
    PENDING = "pending"  # an intent closed by state NOT_SUBMITTED: the POST certainly created nothing


# A `state` event with this status closes an intent: the submit certainly created no request.
NOT_SUBMITTED = "NOT_SUBMITTED"


class LedgerCorrupt(Exception):
    """A line other than the last could not be read. ``line`` is 1-based."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: corrupt ledger line ({reason}); the ledger was not modified")
        self.path = path
        self.line = line
        self.reason = reason


class LedgerTooNew(LedgerCorrupt):
    """A well-formed event of a newer ledger version or an unknown type: upgrade batchflux."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(path, line, reason)
        self.args = (
            f"{path}:{line}: {reason}: this ledger was written by a newer batchflux; upgrade to read it "
            "(the ledger was not modified)",
        )

    def __str__(self) -> str:
        return str(self.args[0])


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
    downloaded_at: float | None = None  # ts of the 'downloaded' event (the file was in place before it)

    def apply(self, ev: Event) -> None:
        self.apply_fields(ev.event, ev.ts, ev.data)

    def apply_fields(self, kind: EventType, ts: float, d: dict[str, Any]) -> None:
        """Fold one event given as its parts; ``d`` may also hold the envelope keys (ignored)."""
        if not self.first_ts:
            self.first_ts = ts
        self.last_ts = ts
        if kind is _SUBMIT_INTENT:
            if self.state is JobState.INTENT and self.attempts:
                self.ambiguous += 1  # the previous intent never got its 'submitted'
            self.state = JobState.INTENT
            self.attempts += 1
            self.fingerprint = _str(d.get("fingerprint")) or ""
            self.model = _intern(_str(d.get("model")) or "")
            self.params = _params(d.get("params"))
            self.input = _str(d.get("input"))
            if self.input is not None and self.input == self.params.get("input_image"):
                self.input = self.params["input_image"]  # one string object, not two
            self.output = _str(d.get("output")) or ""
            self.request_id = self.status_url = self.response_url = None
            self.submitted_at = None
            self.last_status = self.output_url = None
            self.metrics = {}
            self.completed_at = self.downloaded_at = None
            self.path = self.sha256 = None
            self.size = None
            self.cause = self.error = None
            self.http_status = None
        elif kind is _SUBMITTED:
            self.state = JobState.SUBMITTED
            self.request_id = _str(d.get("request_id"))
            self.status_url = _str(d.get("status_url"))
            self.response_url = _str(d.get("response_url"))
            self.submitted_at = _float(d.get("submitted_at"), ts)
            self.last_status = "QUEUED"
        elif kind is _STATE:
            status = _str(d.get("status"))
            if self.state is JobState.SUBMITTED:
                self.last_status = _intern(status) if status else status
            elif self.state is JobState.INTENT and status == NOT_SUBMITTED:
                self.state = JobState.PENDING
                self.last_status = NOT_SUBMITTED
        elif kind is _RESULT:
            self.state = JobState.COMPLETED
            self.output_url = _str(d.get("output_url"))
            metrics = d.get("metrics")
            self.metrics = {_intern(k): v for k, v in metrics.items()} if isinstance(metrics, dict) else {}
            self.completed_at = _float(d.get("completed_at"), ts)
            self.last_status = "COMPLETED"
        elif kind is _DOWNLOADED:
            self.state = JobState.DOWNLOADED
            path = _str(d.get("path"))
            self.path = self.output if path == self.output else path
            size = d.get("size")
            self.size = size if type(size) is int else None
            self.sha256 = _str(d.get("sha256"))
            self.downloaded_at = ts
        elif kind is _FAILED:
            self.state = JobState.FAILED  # also closes an open intent: the submit was answered
            cause = _str(d.get("cause"))
            self.cause = _intern(cause) if cause else cause
            self.error = _str(d.get("error"))
            status = d.get("http_status")
            self.http_status = status if type(status) is int else None
            self.last_status = "FAILED"
            if not self.fingerprint:  # a job that failed before any intent (e.g. an unreadable input)
                self.fingerprint = _str(d.get("fingerprint")) or ""
        elif kind is _EXPIRED:
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
            self.apply_job(ev.event, ev.job, ev.ts, ev.data)
        elif ev.event is EventType.RUN_STARTED:
            self.runs.append(RunRecord(run_id=str(ev.data.get("run_id", "")), started_at=ev.ts, data=ev.data))
        elif ev.event is EventType.RUN_FINISHED:
            run = self._run(str(ev.data.get("run_id", "")))
            if run is not None:
                run.finished_at = ev.ts
                code = ev.data.get("exit_code")
                run.exit_code = code if type(code) is int else None
                run.finish = ev.data

    def apply_job(self, kind: EventType, job: str, ts: float, data: dict[str, Any]) -> None:
        rec = self.jobs.get(job)
        if rec is None:
            rec = self.jobs[job] = JobRecord(job_id=job)
        rec.apply_fields(kind, ts, data)

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


def parse_line(line: str | bytes) -> Event:
    """Decode one ledger line (its newline optional). ``ValueError`` when it is not a complete event
    (torn or corrupt, including invalid UTF-8); :class:`UnknownEvent` (a ``ValueError`` too) for a
    complete event from a newer batchflux. The writer uses this to tell a torn tail."""
    text = line.decode("utf-8") if isinstance(line, bytes) else line
    text = text.removesuffix("\n")
    if not text.strip():
        raise ValueError("empty line")
    return Event.decode(text)


def replay_lines(lines: Iterable[str | bytes], path: str = "ledger.jsonl") -> Replay:
    """Fold lines (each with or without its newline; ``bytes`` are decoded as strict UTF-8) into a
    :class:`Replay`.

    Only the last line may be unreadable: it is ignored and reported in ``torn_tail``. Any other
    unreadable line raises :class:`LedgerCorrupt`; a complete event from a newer batchflux raises
    :class:`LedgerTooNew` wherever it is.
    """
    enabled = gc.isenabled()
    gc.disable()  # a bulk load of ~10 objects per job: generational GC passes would only cost time
    try:
        return _replay(lines, path)
    finally:
        if enabled:
            gc.enable()


def _replay(lines: Iterable[str | bytes], path: str) -> Replay:
    result = Replay()
    decode, kinds, version = _DECODE, _KINDS, LEDGER_VERSION
    apply_job = result.apply_job
    number = 0
    held: str | bytes | None = None  # hold one line back: only the last may be torn
    for line in lines:
        current, held = held, line
        if current is None:
            continue
        number += 1
        # Fast path: a job event as this batchflux writes it. Anything else takes the slow path.
        try:
            text = current.decode("utf-8") if isinstance(current, bytes) else current
            rec, end = decode(text)
        except ValueError:
            rec = end = None
        if type(rec) is dict and end == len(text) - 1:  # a line other than the last ends in "\n"
            name = rec.get("event")
            kind = kinds.get(name) if type(name) is str else None
            job, ts, v = rec.get("job"), rec.get("ts"), rec.get("v")
            if kind and type(job) is str and type(v) is int and v <= version and type(ts) is float:
                apply_job(kind, job, ts, rec)
                continue
        _apply_slow(result, path, number, current, last=False)
    if held is not None:
        number += 1
        _apply_slow(result, path, number, held, last=True)
    result.lines = number
    return result


def _apply_slow(result: Replay, path: str, number: int, line: str | bytes, *, last: bool) -> None:
    try:
        ev = parse_line(line)
    except UnknownEvent as exc:
        raise LedgerTooNew(path, number, str(exc)) from exc
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        if last:
            result.torn_tail = f"{path}:{number}: ignored a torn last line ({_short(exc)})"
            return
        raise LedgerCorrupt(path, number, _short(exc)) from exc
    result.apply(ev)


def replay_file(path: Path) -> Replay:
    """Replay ``path``; an absent ledger is an empty replay."""
    if not path.exists():
        return Replay()
    with path.open("rb") as fh:  # binary: lines end only at b"\n", and bad UTF-8 is located
        return replay_lines(fh, str(path))


_DECODE = json.JSONDecoder().raw_decode
_SUBMIT_INTENT = EventType.SUBMIT_INTENT
_SUBMITTED = EventType.SUBMITTED
_STATE = EventType.STATE
_RESULT = EventType.RESULT
_DOWNLOADED = EventType.DOWNLOADED
_FAILED = EventType.FAILED
_EXPIRED = EventType.EXPIRED
_KINDS: dict[str, EventType] = {e.value: e for e in EventType}


def _intern(value: str) -> str:
    """Share the many repeated short strings (param names, model, status, cause) across records."""
    return sys.intern(value) if len(value) <= 40 else value


def _params(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    return {_intern(k): _intern(v) if type(v) is str else v for k, v in value.items()}


def _str(value: object) -> str | None:
    return value if type(value) is str else None if value is None else str(value)


def _float(value: object, default: float) -> float:
    if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        try:
            return float(value)
        except OverflowError:
            return default
    return default


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 120 else text[:117] + "..."

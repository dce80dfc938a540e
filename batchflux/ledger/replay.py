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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchflux.ledger.events import LEDGER_VERSION, Event, EventType, UnknownEvent
from batchflux.ledger.records import NOT_SUBMITTED, JobRecord, JobState, RunRecord

__all__ = [
    "NOT_SUBMITTED",
    "JobRecord",
    "JobState",
    "LedgerCorrupt",
    "LedgerTooNew",
    "Replay",
    "RunRecord",
    "parse_line",
    "replay_file",
    "replay_lines",
]


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
class Replay:
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    runs: list[RunRecord] = field(default_factory=list)
    lines: int = 0
    torn_tail: str | None = None  # the torn last line's problem, when there was one
    pauses: dict[str, float] = field(default_factory=dict)  # kind of call -> latest announced end (unix)

    def apply(self, ev: Event) -> None:
        if ev.job is not None:
            self.apply_job(ev.event, ev.job, ev.ts, ev.data)
        elif ev.event is EventType.RUN_STARTED:
            self.runs.append(RunRecord(run_id=str(ev.data.get("run_id", "")), started_at=ev.ts, data=ev.data))
        elif ev.event is EventType.PAUSED:
            kind, until = ev.data.get("kind"), ev.data.get("until")
            if type(kind) is str and isinstance(until, int | float):
                self.pauses[kind] = max(float(until), self.pauses.get(kind, 0.0))
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

    def latencies(self, model: str, limit: int) -> list[float]:
        """The latencies of this model's last ``limit`` completed jobs, oldest first: the poll
        schedule's own estimates where the ledger has them, else submission to result."""
        seen = []
        for rec in self.jobs.values():
            if rec.model != model or rec.completed_at is None or rec.submitted_at is None:
                continue
            latency = rec.latency if rec.latency is not None else rec.completed_at - rec.submitted_at
            if latency >= 0:
                seen.append((rec.completed_at, latency))
        seen.sort()
        return [latency for _, latency in seen[-limit:]] if limit > 0 else []

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
    jobs = result.jobs
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
                record = jobs.get(job)
                if record is None:
                    record = jobs[job] = JobRecord(job)
                record.apply_fields(kind, ts, rec)
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
_KINDS: dict[str, EventType] = {e.value: e for e in EventType}


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 120 else text[:117] + "..."

"""The review log: people's verdicts on images, ``OUT/reviews.jsonl``, merged into the ledger's replay.

A ``reviewed`` event is a ledger event (:mod:`.events`), but ``batchflux review`` appends it to
this file beside ``ledger.jsonl`` rather than to the ledger itself: a review may be open while a
nightly run holds the directory's lock and appends to the ledger, and the two never write one
file. The run never writes here; reviewers only append here (each line in one ``write`` under an
exclusive ``flock``, so two review servers on one directory cannot interleave, then fsynced).
Readers replay the ledger, then :func:`merge_reviews` folds this file's events into the records
they name: the latest verdict a job got is its ``review``, and it counts only while the job still
has the image it was given for (:attr:`~.records.JobRecord.verdict`, by request id).

Like the ledger's, the last line may be torn (a reviewer's crash mid-write; a reader that raced
a write): it is ignored. Unlike the ledger, the log is a person's notes on the run, not its
record: any other unreadable line (a hand edit, a newer batchflux's event) is skipped with a
warning naming it, and the verdicts on the other lines still count — a run, a report or an
export never stops for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from batchflux.files.durable import WriteFailed, fsync_dir
from batchflux.files.layout import REVIEWS_FILENAME
from batchflux.ledger.events import Event, EventType, UnknownEvent
from batchflux.ledger.records import REVIEW_VERDICTS, JobRecord, JobState
from batchflux.ledger.replay import Replay, parse_line

log = logging.getLogger("batchflux.ledger")

__all__ = [
    "REVIEWS_FILENAME",
    "REVIEW_VERDICTS",
    "append_reviews",
    "count_verdicts",
    "merge_reviews",
    "review_event",
]


def review_event(job: str, request_id: str | None, verdict: str | None, note: str = "") -> Event:
    """A ``reviewed`` event; ``verdict`` None clears the job's verdict."""
    if verdict is not None and verdict not in REVIEW_VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(REVIEW_VERDICTS)} or None, not {verdict!r}")
    data = {"request_id": request_id, "verdict": verdict, "note": note}
    return Event(EventType.REVIEWED, job, data, ts=time.time())


def count_verdicts(records: Iterable[JobRecord]) -> dict[str, int]:
    """Images by verdict: ``approved``, ``rejected`` and ``unreviewed`` (downloaded, no verdict on
    the image it has now); jobs without an image are in none."""
    counts = dict.fromkeys(("approved", "rejected", "unreviewed"), 0)
    for rec in records:
        if rec.state is JobState.DOWNLOADED:
            verdict = rec.verdict
            counts[verdict.verdict if verdict is not None and verdict.verdict else "unreviewed"] += 1
    return counts


def merge_reviews(replay: Replay, out_dir: Path) -> int:
    """Fold ``out_dir``'s review log into ``replay``'s records, in the order it was written; a
    review of a job the ledger does not know is left out. Returns the number of reviews read.
    An unreadable log (permissions, I/O) is logged and read as empty."""
    path = out_dir / REVIEWS_FILENAME
    try:
        with path.open("rb") as fh:
            lines = fh.readlines()
    except FileNotFoundError:
        return 0
    except OSError as exc:
        log.warning("%s: cannot read the review log (%s); verdicts left out", path, exc.strerror or exc)
        return 0
    read = 0
    for number, line in enumerate(lines, start=1):
        try:
            ev = parse_line(line)
        except ValueError as exc:  # UnknownEvent too: a newer batchflux's
            if number == len(lines) and not isinstance(exc, UnknownEvent):  # torn: a write under way
                break
            log.warning("%s:%d: skipped an unreadable review line (%s)", path, number, str(exc)[:120])
            continue
        if ev.event is not EventType.REVIEWED or ev.job is None:
            continue
        rec = replay.jobs.get(ev.job)
        if rec is not None:
            rec.apply_fields(ev.event, ev.ts, ev.data)
            read += 1
    return read


def append_reviews(out_dir: Path, events: list[Event]) -> LogAppend | None:
    """Append ``events`` to ``out_dir``'s review log, durably, as one write under an exclusive lock;
    what the log was before and after (None for no events). Raises
    :class:`~batchflux.files.durable.WriteFailed`."""
    if not events:
        return None
    path = out_dir / REVIEWS_FILENAME
    data = "".join(ev.encode() + "\n" for ev in events).encode("utf-8")
    created = not path.exists()
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise WriteFailed(path, exc) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _repair_tail(fd)
        before = os.fstat(fd)
        size = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            after = os.fstat(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):  # leave no torn line for the next reviewer
                os.ftruncate(fd, size)
            raise WriteFailed(path, exc) from exc
    finally:
        os.close(fd)  # closing releases the lock
    if created:
        with contextlib.suppress(OSError):
            fsync_dir(out_dir)
    return LogAppend((before.st_size, before.st_mtime_ns), (after.st_size, after.st_mtime_ns))


@dataclass(frozen=True, slots=True)
class LogAppend:
    """The review log's (size, mtime_ns) just before and just after an append, both seen under
    its lock: a reader that knew ``before`` has seen every line but the ones just appended."""

    before: tuple[int, int]
    after: tuple[int, int]


def _repair_tail(fd: int) -> None:
    """A reviewer killed mid-write leaves a line without its newline: cut it off before appending,
    so that it stays the last line (ignored) rather than becoming a corrupt middle one."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = max(0, size - 65536)
    chunk = os.pread(fd, size - start, start)
    cut = start + chunk.rfind(b"\n") + 1 if b"\n" in chunk else 0
    os.ftruncate(fd, cut)

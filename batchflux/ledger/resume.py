"""Resume: what a rerun does with each manifest job, decided from the ledger (pure but for the
two small I/O helpers at the end).

The rules, in the order they are tried (DESIGN.md, "Resume rules"):

| ledger says about the job                               | action   | reason         |
|---------------------------------------------------------|----------|----------------|
| nothing                                                 | SUBMIT   | new            |
| fingerprint differs from the manifest's                 | SUBMIT   | changed        |
| downloaded, file intact (size, sha256)                  | SKIP     | intact         |
| downloaded, file gone / damaged; output URL still live  | DOWNLOAD | missing/damaged|
| downloaded, file gone / damaged; output URL past 7 days | SUBMIT   | missing/damaged|
| result known (output URL), not downloaded               | DOWNLOAD | missing        |
| submitted, younger than retention                       | POLL     | in_flight      |
| submitted, past retention; or an expired event          | SUBMIT   | expired        |
| submit_intent without submitted (the POST may have won) | SUBMIT   | ambiguous      |
| intent closed as NOT_SUBMITTED                          | SUBMIT   | new            |
| failed by an accident, fewer than ACCIDENT_RUNS times   | SUBMIT   | accident       |
|   (its output URL still live: download it)              | DOWNLOAD | accident       |
| failed, cause not selected by --retry-failed            | FAILED   | failed         |
| failed, selected; its output URL still live (download)  | DOWNLOAD | retry_failed   |
| failed, selected                                        | SUBMIT   | retry_failed   |
| (``--redo-rejected``, :mod:`.redo`) done, image rejected| SUBMIT   | rejected       |

Failure causes are verdicts or accidents (:data:`~batchflux.ledger.events.VERDICTS`,
:data:`~batchflux.ledger.events.ACCIDENTS`). A verdict (moderation, invalid, input) says the job
itself is at fault: it stays failed until ``--retry-failed``. An accident (server, transport,
download, expired) says nothing about the job, so the next run retries it by itself — until the
job has failed by accident :data:`ACCIDENT_RUNS` times, after which it stays failed too (the
resume line says how many gave up) and ``--retry-failed`` takes it again.

A job whose recorded output path differs but whose fingerprint is equal is the same job. Ledger
ids absent from the manifest are orphans: reported, left alone.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath

from batchflux.files.durable import fsync_dir
from batchflux.files.layout import LEDGER_FILENAME
from batchflux.ledger.events import ACCIDENTS
from batchflux.ledger.replay import JobRecord, JobState, Replay
from batchflux.manifest.job import Job

RETENTION_S = 3600.0  # a request's status and result live 1 h after submission
ACCIDENT_RUNS = 3  # failures by accident after which a job is no longer retried by itself
FILE_RETENTION_S = 7 * 86400.0  # the output file behind the URL lives 7 days


class Action(StrEnum):
    SKIP = "skip"
    DOWNLOAD = "download"
    POLL = "poll"
    SUBMIT = "submit"
    FAILED = "failed"


REASONS = (
    "new",
    "changed",
    "expired",
    "ambiguous",
    "retry_failed",
    "accident",
    "rejected",
    "intact",
    "missing",
    "damaged",
    "in_flight",
    "failed",
)


class FileCheck(StrEnum):
    """What :func:`check_file` found; ``file_ok`` may also answer a plain bool (False = missing)."""

    INTACT = "intact"
    MISSING = "missing"
    DAMAGED = "damaged"


@dataclass(frozen=True, slots=True)
class Decision:
    job: Job
    action: Action
    reason: str
    record: JobRecord | None  # None for a new job; for "changed", the superseded record


@dataclass(frozen=True, slots=True)
class ResumePlan:
    decisions: tuple[Decision, ...]
    orphans: tuple[str, ...]  # ledger job ids not in the manifest (sorted)
    possible_duplicates: int  # ambiguous submits in the ledger so far, over the manifest's jobs

    def select(self, action: Action) -> Iterator[Decision]:
        return (d for d in self.decisions if d.action is action)

    def counts(self) -> dict[str, int]:
        """Decisions by action (``skip`` … ``failed``) and by reason (``new`` … ``failed``; the
        ``failed`` key is both, and they agree), every key present, plus ``orphans``."""
        actions = Counter(d.action.value for d in self.decisions)
        reasons = Counter(d.reason for d in self.decisions)
        out = {a.value: actions[a.value] for a in Action}
        out.update({r: reasons[r] for r in REASONS})
        out["orphans"] = len(self.orphans)
        return out

    @property
    def resuming(self) -> bool:
        """The ledger knew something of this run (any job had a record, or there are orphans)."""
        return bool(self.orphans) or any(d.record is not None for d in self.decisions)

    def summary_line(self) -> str:
        """One line for the start of a run, e.g. ``resuming: 120 done, 30 re-polled, 4 re-downloaded,
        10 resubmitted (3 expired, 2 ambiguous: possible duplicate charges), 5 failed kept, 2 not in
        the manifest``."""
        by_action = Counter(d.action for d in self.decisions)
        if not self.resuming:
            return f"starting: {_n(len(self.decisions), 'job')}, none in the ledger yet"
        resubmits = Counter(
            d.reason for d in self.decisions if d.action is Action.SUBMIT and d.reason != "new"
        )
        parts = [
            f"{by_action[Action.SKIP]} done",
            f"{by_action[Action.POLL]} re-polled",
            f"{by_action[Action.DOWNLOAD]} re-downloaded",
        ]
        resubmitted = f"{sum(resubmits.values())} resubmitted"
        details = []
        for reason in (
            "expired", "ambiguous", "changed", "retry_failed", "accident", "rejected", "missing", "damaged",
        ):  # fmt: skip
            if resubmits[reason]:
                label = _RESUBMIT_LABELS[reason]
                details.append(f"{resubmits[reason]} {label}")
        if details:
            resubmitted += f" ({', '.join(details)})"
        parts.append(resubmitted)
        new = sum(1 for d in self.select(Action.SUBMIT) if d.reason == "new")
        if new:
            parts.append(f"{new} new")
        kept = f"{by_action[Action.FAILED]} failed kept"
        gave_up = sum(1 for d in self.select(Action.FAILED) if d.record is not None and gave_up_on(d.record))
        if gave_up:
            kept += f" ({gave_up} after {ACCIDENT_RUNS} accidental failures: --retry-failed to try again)"
        parts.append(kept)
        if self.orphans:
            parts.append(f"{len(self.orphans)} not in the manifest")
        line = "resuming: " + ", ".join(parts)
        open_now = resubmits["ambiguous"]
        if self.possible_duplicates > open_now:
            line += f"; {_n(self.possible_duplicates, 'possible duplicate charge')} in the ledger so far"
        return line


_RESUBMIT_LABELS = {
    "expired": "expired",
    "ambiguous": "ambiguous: possible duplicate charges",
    "changed": "changed",
    "retry_failed": "failed retried",
    "accident": "failed by accident, retried",
    "rejected": "rejected in review, redone with a new seed",
    "missing": "missing, output URL expired",
    "damaged": "damaged, output URL expired",
}


def plan_resume(
    jobs: Sequence[Job],
    replay: Replay,
    *,
    now: float,
    retention_s: float = RETENTION_S,
    retry_failed: frozenset[str] | None = None,
    file_ok: Callable[[JobRecord], bool | FileCheck],
    file_retention_s: float = FILE_RETENTION_S,
) -> ResumePlan:
    """Decide every job's fate from the ledger. ``now`` is unix time (the ledger's clock).

    ``retry_failed``: None keeps failed jobs failed; an empty set retries every failure; otherwise
    the failures whose cause is in the set. ``file_ok`` is asked only about downloaded records."""
    records = replay.jobs
    decisions = []
    duplicates = 0
    seen: set[str] = set()
    for job in jobs:
        seen.add(job.id)
        rec = records.get(job.id)
        if rec is not None:
            duplicates += rec.possible_duplicates
        action, reason = _decide(job, rec, now, retention_s, retry_failed, file_ok, file_retention_s)
        decisions.append(Decision(job, action, reason, rec))
    orphans = tuple(sorted(jid for jid in records if jid not in seen))
    return ResumePlan(tuple(decisions), orphans, duplicates)


def _decide(
    job: Job,
    rec: JobRecord | None,
    now: float,
    retention_s: float,
    retry_failed: frozenset[str] | None,
    file_ok: Callable[[JobRecord], bool | FileCheck],
    file_retention_s: float,
) -> tuple[Action, str]:
    if rec is None:
        return Action.SUBMIT, "new"
    if rec.fingerprint and rec.fingerprint != job.fingerprint:
        return Action.SUBMIT, "changed"
    state = rec.state
    if state is JobState.DOWNLOADED:
        found = file_ok(rec)
        reason = found.value if isinstance(found, FileCheck) else "intact" if found else "missing"
        if reason == "intact":
            return Action.SKIP, "intact"
        return (Action.DOWNLOAD if _url_live(rec, now, file_retention_s) else Action.SUBMIT), reason
    if state is JobState.COMPLETED:
        if _url_live(rec, now, file_retention_s):
            return Action.DOWNLOAD, "missing"
        return Action.SUBMIT, "missing"
    if state is JobState.SUBMITTED:
        if not rec.request_id or not rec.status_url or rec.submitted_at is None:
            return Action.SUBMIT, "ambiguous"  # submitted, but the ledger lost what polling needs
        if now - rec.submitted_at < retention_s:
            return Action.POLL, "in_flight"
        return Action.SUBMIT, "expired"
    if state is JobState.EXPIRED:
        return Action.SUBMIT, "expired"
    if state is JobState.FAILED:
        if retry_failed is not None and (not retry_failed or rec.cause in retry_failed):
            reason = "retry_failed"
        elif rec.cause in ACCIDENTS and not gave_up_on(rec):
            reason = "accident"
        else:
            return Action.FAILED, "failed"
        if rec.output_url and _url_live(rec, now, file_retention_s):
            return Action.DOWNLOAD, reason  # the image exists and is paid for: fetch it again
        return Action.SUBMIT, reason
    if rec.open_intent:
        return Action.SUBMIT, "ambiguous"
    return Action.SUBMIT, "new"  # PENDING (certainly not submitted), or a record with no intent


def gave_up_on(rec: JobRecord) -> bool:
    """The job failed by accident so often that it is no longer retried by itself."""
    return rec.cause in ACCIDENTS and rec.accidents >= ACCIDENT_RUNS


def _url_live(rec: JobRecord, now: float, file_retention_s: float) -> bool:
    if not rec.output_url:
        return False
    born = rec.completed_at or rec.submitted_at
    return born is None or now - born < file_retention_s


def check_file(out_dir: Path, *, quick: bool = False) -> Callable[[JobRecord], FileCheck]:
    """The real ``file_ok``: the recorded file exists inside ``out_dir`` with the recorded size and
    sha256. ``quick`` skips hashing a file of the right size not modified since its ``downloaded``
    event (a change after it would move its mtime); the default hashes every file."""
    root = out_dir.resolve()

    def check(rec: JobRecord) -> FileCheck:
        relative = PurePosixPath(rec.path or "")
        if not rec.path or relative.is_absolute() or ".." in relative.parts:
            return FileCheck.MISSING  # never read outside the run directory
        target = root / relative
        try:
            st = target.stat()
        except OSError:
            return FileCheck.MISSING
        if rec.size is not None and st.st_size != rec.size:
            return FileCheck.DAMAGED
        if not rec.sha256:
            return FileCheck.INTACT
        if quick and rec.downloaded_at is not None and st.st_mtime <= rec.downloaded_at:
            return FileCheck.INTACT
        try:
            with target.open("rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
        except OSError:
            return FileCheck.MISSING
        return FileCheck.INTACT if digest == rec.sha256 else FileCheck.DAMAGED

    return check


def move_ledger_aside(out_dir: Path) -> Path | None:
    """For ``--fresh``: rename ``ledger.jsonl`` (and its ``.torn`` companion) to
    ``ledger.<UTC timestamp>.jsonl``; never deletes. Returns the new path, None if there was none."""
    ledger = out_dir / LEDGER_FILENAME
    if not ledger.exists():
        return None
    stem = Path(LEDGER_FILENAME).stem
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(1000):
        name = f"{stem}.{stamp}{f'-{n}' if n else ''}.jsonl"
        target = out_dir / name
        torn, torn_target = ledger.with_name(ledger.name + ".torn"), target.with_name(name + ".torn")
        if target.exists() or torn_target.exists():
            continue
        if torn.exists():
            os.rename(torn, torn_target)
        os.rename(ledger, target)
        fsync_dir(out_dir)
        return target
    raise FileExistsError(f"could not find a free name to move {ledger} aside")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"

"""Ledger events: one JSON object per line, ``{"v":1,"ts":…,"event":…,"job":…, <fields>}``.

| event          | job  | fields                                                                        |
|----------------|------|-------------------------------------------------------------------------------|
| run_started    | null | run_id, manifest (as given), manifest_path (resolved), set (the --set values),|
|                |      | price_usd, jobs (count), shard ("K/N" or null), version, pid, host            |
| submit_intent  | id   | fingerprint, model, params (no inline image data), input (local path or URL), |
|                |      | output (relative path), attempt (1-based submit count for this job);          |
|                |      | redo (optional): the how-manieth redo of a rejected image this submit is,     |
|                |      | its params carrying the seed derived for it                                   |
|                |      | input_sent (optional): the input_image POSTed when not params' own — the URL  |
|                |      | a local file was uploaded to, or "sha256:<hex>" of an inline data URI         |
| submitted      | id   | request_id, status_url, response_url, submitted_at (unix s); recovered: true  |
|                |      | when the id was found in the request history instead of heard from the POST;  |
|                |      | credits_deduction (USD) when the history said what it cost                   |
| state          | id   | request_id, status ("QUEUED" / "PROCESSING"); or request_id null, status      |
|                |      | "NOT_SUBMITTED", reason: the submit certainly created nothing (closes intent) |
| result         | id   | request_id, output_url, metrics (dict), completed_at (unix s, first seen),    |
|                |      | latency (s, optional: how long the job took, the server's figure when given); |
|                |      | via: "history" and credits_deduction when read from the history's record      |
| downloaded     | id   | request_id, path (relative), size, sha256                                     |
| failed         | id   | request_id (or null), cause, error, http_status (or null); fingerprint when   |
|                |      | no submit_intent came first (optional); credits_deduction (optional)          |
| expired        | id   | request_id                                                                    |
| paused         | null | kind (submit / poll / upload / credits / history), until (unix s): a 429's    |
|                |      | announced pause of that kind of call, which a run starting inside it waits out |
| reviewed       | id   | request_id (the image's request), verdict ("approved" / "rejected" / null:   |
|                |      | cleared), note; ``ts`` is when it was given. Written to ``reviews.jsonl``, the |
|                |      | review log beside the ledger, which replay merges (:mod:`.reviews`)           |
| set_aside      | id   | path (the kept image, relative), from (where it was), request_id, sha256:      |
|                |      | a rejected image kept as ``<stem>.rejected-N.<ext>`` before its job is redone  |
| run_finished   | null | run_id, exit_code, counts (dict), wall_s                                      |

``cause`` is one of :data:`FAILURE_CAUSES`. Events never carry the API key or image bytes.
Optional fields are only ever added; a reader ignores fields it does not know.
A ``failed`` closes an open intent (the submit was answered); so does ``state`` NOT_SUBMITTED.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

LEDGER_VERSION = 1

# Why a job failed, as recorded in ``failed.cause``; ``--retry-failed=CAUSE,…`` selects by it.
FAILURE_CAUSES = (
    "moderation",  # FAILED by the server for content (blocked, NSFW, moderation)
    "invalid",  # rejected parameters: 400 at submit, or a FAILED that names bad input
    "server",  # FAILED by the worker for any other reason
    "expired",  # the request's record expired before its result was fetched, and no resubmit is allowed
    "download",  # the output file could not be downloaded or failed verification after retries
    "transport",  # gave up after bounded retries of 5xx/transport errors
    "input",  # the local input image could not be read or uploaded
)
# Verdicts: the job itself is at fault; it stays failed until ``--retry-failed`` (a person fixes it).
VERDICTS = frozenset({"moderation", "invalid", "input"})
# Accidents: nothing is wrong with the job; the next run retries it by itself, within a budget.
ACCIDENTS = frozenset({"server", "transport", "download", "expired"})


class EventType(StrEnum):
    RUN_STARTED = "run_started"
    SUBMIT_INTENT = "submit_intent"
    SUBMITTED = "submitted"
    STATE = "state"
    RESULT = "result"
    DOWNLOADED = "downloaded"
    FAILED = "failed"
    EXPIRED = "expired"
    PAUSED = "paused"
    REVIEWED = "reviewed"
    SET_ASIDE = "set_aside"
    RUN_FINISHED = "run_finished"


_KNOWN = frozenset(e.value for e in EventType)
# One encoder for every line: json.dumps with options builds a new encoder per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_ENVELOPE = frozenset({"v", "ts", "event", "job"})


class UnknownEvent(ValueError):
    """An event type or ledger version this batchflux does not know (written by a newer one)."""


@dataclass(frozen=True, slots=True)
class Event:
    event: EventType
    job: str | None = None
    data: dict[str, Any] = field(default_factory=dict, hash=False)
    ts: float = 0.0
    v: int = LEDGER_VERSION

    def encode(self) -> str:
        """One line of JSON, without the newline. ``ts`` of 0 means "now"."""
        if not _ENVELOPE.isdisjoint(self.data):
            raise ValueError(
                f"event data may not use the envelope keys {sorted(_ENVELOPE & self.data.keys())}"
            )
        record: dict[str, Any] = {
            "v": self.v,
            "ts": self.ts or time.time(),  # shortest repr: exact, and no costlier than rounding
            "event": self.event,  # a StrEnum member is its value to the encoder
            "job": self.job,
        }
        record.update(self.data)
        return _ENCODER.encode(record)

    @classmethod
    def decode(cls, line: str) -> Event:
        """Parse one line. ``ValueError`` for malformed JSON or shape; ``UnknownEvent`` for a
        well-formed event from a newer ledger version or of an unknown type."""
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        v = record.pop("v", None)
        name = record.pop("event", None)
        ts = record.pop("ts", None)
        job = record.pop("job", None)
        if not isinstance(v, int) or not isinstance(name, str) or not isinstance(ts, int | float):
            raise ValueError("missing or mistyped 'v', 'event' or 'ts'")
        if v > LEDGER_VERSION:
            raise UnknownEvent(f"ledger version {v} is newer than this batchflux reads ({LEDGER_VERSION})")
        if name not in _KNOWN:
            raise UnknownEvent(f"unknown event type {name!r}")
        if job is not None and not isinstance(job, str):
            raise ValueError("'job' must be a string or null")
        try:
            when = float(ts)
        except OverflowError as exc:
            raise ValueError(f"'ts' out of range: {exc}") from exc
        return cls(event=EventType(name), job=job, data=record, ts=when, v=v)

"""Per-job and per-run records folded from ledger events (pure): what the ledger knows of each job.

:class:`JobRecord` keeps the latest attempt first-class, with counters over all attempts (submits,
ambiguous submits, expirations). :mod:`.replay` builds them from a file; resume and status read them.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from batchflux.ledger.events import ACCIDENTS, EventType


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

# Module constants: a global lookup in the hot fold instead of an attribute lookup on the enum.
_SUBMIT_INTENT = EventType.SUBMIT_INTENT
_SUBMITTED = EventType.SUBMITTED
_STATE = EventType.STATE
_RESULT = EventType.RESULT
_DOWNLOADED = EventType.DOWNLOADED
_FAILED = EventType.FAILED
_EXPIRED = EventType.EXPIRED
_REVIEWED = EventType.REVIEWED
_SET_ASIDE = EventType.SET_ASIDE

REVIEW_VERDICTS = ("approved", "rejected")


@dataclass(frozen=True, slots=True)
class Review:
    """A person's verdict on one image: the request that made it, approved or rejected (None: the
    verdict was cleared), a note, and when (unix)."""

    request_id: str | None
    verdict: str | None
    note: str
    ts: float

    @classmethod
    def of(cls, ts: float, d: dict[str, Any]) -> Review:
        verdict = d.get("verdict")
        note = d.get("note")
        return cls(
            request_id=_str(d.get("request_id")),
            verdict=verdict if verdict in REVIEW_VERDICTS else None,
            note=note if isinstance(note, str) else "",
            ts=ts,
        )


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
    accidents: int = 0  # 'failed' events whose cause is an accident (the retry budget counts them)
    request_id: str | None = None
    status_url: str | None = None
    response_url: str | None = None
    submitted_at: float | None = None
    last_status: str | None = None
    output_url: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    completed_at: float | None = None
    latency: float | None = None  # the poll schedule's estimate when the result was seen
    path: str | None = None
    size: int | None = None
    sha256: str | None = None
    cause: str | None = None
    error: str | None = None
    http_status: int | None = None
    first_ts: float = 0.0
    last_ts: float = 0.0
    downloaded_at: float | None = None  # ts of the 'downloaded' event (the file was in place before it)
    intent_at: float | None = None  # ts of the latest 'submit_intent'
    input_sent: str | None = None  # the input_image POSTed, when not the recorded one (see events)
    superseded: str | None = None  # the request the latest intent replaced (its previous attempt's)
    recovered: bool = False  # the latest request_id was found in the request history, not answered
    result_via: str | None = None  # "history": the result came from the request history's record
    credits_deduction: float | None = None  # what Segmind charged for the latest request (USD), when known
    review: Review | None = None  # the latest `reviewed` event, whichever image it was given for
    redo: int = 0  # the latest submit's redo number (0: not a redo of a rejected image)
    set_aside: list[str] = field(default_factory=list)  # rejected images kept aside, oldest first

    def apply_fields(self, kind: EventType, ts: float, d: dict[str, Any]) -> None:
        """Fold one event given as its parts; ``d`` may also hold the envelope keys (ignored)."""
        if kind is _REVIEWED:  # a person's verdict: says nothing of the job's progress or its times
            self.review = Review.of(ts, d)
            return
        if not self.first_ts:
            self.first_ts = ts
        self.last_ts = ts
        if kind is _SUBMIT_INTENT:
            if self.state is JobState.INTENT and self.attempts:
                self.ambiguous += 1  # the previous intent never got its 'submitted'
            self.state = JobState.INTENT
            self.attempts += 1
            fingerprint = _str(d.get("fingerprint")) or ""
            if self.fingerprint and fingerprint != self.fingerprint:
                self.accidents = 0  # a changed job is a new job: its budget starts afresh
            self.fingerprint = fingerprint
            self.intent_at = ts
            self.input_sent = _str(d.get("input_sent"))
            self.superseded = self.request_id or self.superseded
            self.recovered = False
            self.result_via = None
            self.credits_deduction = None
            self.model = _intern(_str(d.get("model")) or "")
            self.params = _params(d.get("params"))
            self.input = _str(d.get("input"))
            if self.input is not None and self.input == self.params.get("input_image"):
                self.input = self.params["input_image"]  # one string object, not two
            self.output = _str(d.get("output")) or ""
            redo = d.get("redo")
            self.redo = redo if type(redo) is int and redo > 0 else 0
            self.request_id = self.status_url = self.response_url = None
            self.submitted_at = None
            self.last_status = self.output_url = None
            self.metrics = {}
            self.completed_at = self.downloaded_at = None
            self.latency = None
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
            self.recovered = d.get("recovered") is True
            self._credits(d)
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
            latency = d.get("latency")
            self.latency = float(latency) if isinstance(latency, int | float) else None
            self.last_status = "COMPLETED"
            self.result_via = _str(d.get("via"))
            self._credits(d)
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
            if cause in ACCIDENTS:
                self.accidents += 1
            self.error = _str(d.get("error"))
            status = d.get("http_status")
            self.http_status = status if type(status) is int else None
            self.last_status = "FAILED"
            self._credits(d)
            if not self.fingerprint:  # a job that failed before any intent (e.g. an unreadable input)
                self.fingerprint = _str(d.get("fingerprint")) or ""
        elif kind is _EXPIRED:
            self.state = JobState.EXPIRED
            self.expirations += 1
        elif kind is _SET_ASIDE:
            kept = _str(d.get("path"))
            if kept and kept not in self.set_aside:
                self.set_aside = [*self.set_aside, kept]  # a new list: a copied record keeps its own

    def _credits(self, d: dict[str, Any]) -> None:
        cost = usd(d.get("credits_deduction"))
        if cost is not None:
            self.credits_deduction = cost

    @property
    def current_review(self) -> Review | None:
        """The latest review, if it was given for the image the job has now (its current request,
        downloaded): a job whose image changed has none until reviewed again."""
        review = self.review
        if review is None or self.state is not JobState.DOWNLOADED or review.request_id != self.request_id:
            return None
        return review

    @property
    def verdict(self) -> Review | None:
        """:attr:`current_review` when it approved or rejected the image (not a cleared one)."""
        review = self.current_review
        return review if review is not None and review.verdict is not None else None

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


def usd(value: Any) -> float | None:
    """An amount of dollars as an event records it (``credits_deduction``, ``price_usd``): a finite
    number ≥ 0; anything else (a hand-edited or foreign ledger) is no amount."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return float(value)
    return None

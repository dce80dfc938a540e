"""Reconciling the ledger with Segmind's request history (pure): which history row is the request
an open ``submit_intent`` created, and what an expired request's record means. DESIGN.md,
"Resume rules": the history is an aid, never a dependency; when it cannot answer, the rules of
:mod:`.resume` apply unchanged (:func:`lookup_for` says which of its decisions ask it first).

Rows come from :mod:`batchflux.api.history`, which this wing may not import: anything with the
attributes of :class:`Row` will do. The engine does the calls; everything here is values in,
values out.

**An open intent's request.** A row is the intent's request when all of these hold:

1. it has landed: a ``request_id``, a status and the body as sent (``None`` fields mean the record
   has not landed yet: the caller looks again after the landing wait);
2. its ``model_name``, when given, contains the intent's model (the list is asked for that model);
3. it was created no earlier than the intent less :data:`CLOCK_SKEW_S`. A row without a readable
   creation time never matches: it could be an older request of the same body (a ``--fresh`` run);
4. its body carries exactly the intent's parameters: the same keys, equal values (numbers as
   numbers, ``true`` never ``1``), the input image aside;
5. its ``input_image`` is the one that was sent: the intent's URL; for a local file, the URL it
   was uploaded to, which the intent records as ``input_sent``; for an inline data URI, a data URI
   whose sha256 the intent records (``input_sent`` = ``sha256:<hex>``). An intent of a local file
   without ``input_sent`` (written before it was recorded) matches nothing: two jobs that differ
   only in their input image must never swap requests, and paying twice is the lesser harm;
6. its ``request_id`` is not held by a job of the ledger (:class:`Holdings`), not the request the
   intent superseded, and not taken by another intent of the same pass.

Among several, a row created at or after the intent beats one inside the skew before it, then the
nearest in time wins (then the smaller ``request_id``, so the choice is stable).

**An expired request's record** (:func:`expired_outcome`): COMPLETED with a ``generation_url``
younger than the file's 7 days → fetch it; FAILED → the job fails with the server's error;
anything else (PENDING, an unknown status, no record, the file gone) → resubmit, as without the
history.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Protocol, TypeVar

from batchflux.ledger.records import JobRecord
from batchflux.ledger.resume import Action, Decision
from batchflux.manifest.job import Job

CLOCK_SKEW_S: Final = 60.0  # our clock and Segmind's may disagree by this much
POST_MARGIN_S: Final = 3600.0  # a request is created at most this long after its intent
MAX_WINDOW_DAYS: Final = 31  # the list's widest date window, both ends inclusive
FILE_RETENTION_S: Final = 7 * 86400.0  # the output file behind a generation_url lives 7 days
SHA256_PREFIX: Final = "sha256:"


class Row(Protocol):
    """What matching reads of a history row (``batchflux.api.HistoryRow`` has it all)."""

    @property
    def request_id(self) -> str | None: ...
    @property
    def model_name(self) -> str | None: ...
    @property
    def model_status(self) -> str | None: ...
    @property
    def request_body(self) -> Mapping[str, Any] | None: ...
    @property
    def generation_url(self) -> str | None: ...
    @property
    def created_at(self) -> float | None: ...
    @property
    def updated_at(self) -> float | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def credits_deduction(self) -> float | None: ...


R = TypeVar("R", bound=Row)


# ---- what was sent ------------------------------------------------------------------------------


def input_sent(params: Mapping[str, Any], sent: Mapping[str, Any]) -> str | None:
    """The ``input_sent`` an intent records: the ``input_image`` actually POSTed when it is not the
    recorded parameter's value — an uploaded URL, or ``sha256:<hex>`` of an inline data URI (the
    ledger never holds image data). ``None`` when the value was sent as recorded."""
    value = sent.get("input_image")
    recorded = params.get("input_image")
    if not isinstance(value, str) or value == recorded:
        return None
    if value.startswith("data:") or (isinstance(recorded, str) and _in_bucket(recorded)):
        # Image data, or a signed URL (a credential for its object): kept as its hash only.
        return SHA256_PREFIX + hashlib.sha256(value.encode()).hexdigest()
    return value


def _in_bucket(url: str) -> bool:
    return url.split("://", 1)[0].lower() in ("s3", "gs", "az") and "://" in url


@dataclass(frozen=True, slots=True)
class Intent:
    """An open ``submit_intent``: what was (maybe) sent, and when."""

    job_id: str
    model: str
    params: Mapping[str, Any] = field(hash=False)  # as recorded: a local input is its manifest path
    local: bool  # the input_image was a local file (uploaded or inlined at submit time)
    input_sent: str | None  # see input_sent()
    at: float  # unix time of the intent
    superseded: str | None = None  # the request of the job's previous attempt

    @classmethod
    def of(cls, job: Job, rec: JobRecord) -> Intent:
        """The open intent ``rec`` records for ``job`` (the manifest says whether its input is local)."""
        return cls(
            job_id=job.id,
            model=rec.model or job.model,
            params=rec.params or job.params,
            local=job.local_input is not None,
            input_sent=rec.input_sent,
            at=rec.intent_at if rec.intent_at is not None else rec.last_ts,
            superseded=rec.superseded,
        )


# ---- who holds which request --------------------------------------------------------------------


def body_key(model: str, params: Mapping[str, Any]) -> int | str:
    """Equal for jobs whose submits send the same body (a local input by its path: one path, one upload)."""
    try:
        return hash((model, frozenset(params.items())))
    except TypeError:  # a parameter of an unknown model holding a list or an object
        return json.dumps([model, params], sort_keys=True, default=str)


@dataclass(slots=True)
class Holdings:
    """Request ids held by jobs of the ledger, kept only where a row could be taken for the wrong
    job: for bodies that more than one job sends. A row matches an intent only if its body is the
    intent's, so a job whose body no other job sends can only meet requests of its own."""

    shared_jobs: frozenset[str] = frozenset()  # job ids whose body another job sends too
    ids: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, jobs: Iterable[Job], records: Mapping[str, JobRecord]) -> Holdings:
        """From the manifest's jobs (the bodies they send now) and the ledger's records (the body
        behind each request held)."""
        bodies: dict[str, set[int | str]] = {job.id: {body_key(job.model, job.params)} for job in jobs}
        current = {job_id: next(iter(keys)) for job_id, keys in bodies.items()}
        for rec in records.values():
            if rec.request_id:
                bodies.setdefault(rec.job_id, set()).add(body_key(rec.model, rec.params))
        counts = Counter(key for keys in bodies.values() for key in keys)
        shared = {key for key, n in counts.items() if n > 1}
        held = {
            rec.request_id
            for rec in records.values()
            if rec.request_id and body_key(rec.model, rec.params) in shared
        }
        return cls(frozenset(j for j, key in current.items() if key in shared), held)

    def hold(self, job_id: str, request_id: str) -> None:
        """``job_id`` now holds ``request_id`` (a submit's answer, or a row adopted)."""
        if job_id in self.shared_jobs:
            self.ids.add(request_id)

    def taken(self, request_id: str) -> bool:
        return request_id in self.ids


# ---- matching -----------------------------------------------------------------------------------


def body_matches(intent: Intent, body: Mapping[str, Any]) -> bool:
    """Rules 4 and 5: ``body`` is what this intent sent."""
    expected = {k: v for k, v in intent.params.items() if k != "input_image"}
    got = {k: v for k, v in body.items() if k != "input_image"}
    if expected.keys() != got.keys() or not all(same_value(expected[k], got[k]) for k in expected):
        return False
    return _input_matches(intent, body.get("input_image"))


def _input_matches(intent: Intent, value: Any) -> bool:
    recorded = intent.params.get("input_image")
    if recorded is None:
        return value is None
    if not isinstance(value, str):
        return False
    if not intent.local:
        if intent.input_sent is None:
            return bool(value == recorded)
        if intent.input_sent.startswith(SHA256_PREFIX):
            return SHA256_PREFIX + hashlib.sha256(value.encode()).hexdigest() == intent.input_sent
        return value == intent.input_sent
    sent = intent.input_sent
    if sent is None:
        return False  # the upload's URL is unknown: see rule 5
    if sent.startswith(SHA256_PREFIX):
        return value.startswith("data:") and input_sent({}, {"input_image": value}) == sent
    return value == sent


def same_value(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (``2 == 2.0``), booleans only with booleans."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def candidate(intent: Intent, row: Row, *, skew_s: float = CLOCK_SKEW_S) -> bool:
    """Rules 1 to 5 (rule 6 needs the ledger: :func:`match_intents`)."""
    body = row.request_body
    if not row.request_id or row.model_status is None or body is None:
        return False
    if row.model_name is not None and intent.model.lower() not in row.model_name.lower():
        return False
    if row.created_at is None or row.created_at < intent.at - skew_s:
        return False
    return row.request_id != intent.superseded and body_matches(intent, body)


def rank(intent: Intent, row: Row) -> tuple[bool, float, str]:
    """How well ``row`` fits as ``intent``'s request, smaller first: created at or after the intent,
    then the nearest in time, then the smaller ``request_id``."""
    created = row.created_at if row.created_at is not None else -math.inf
    return (created < intent.at, abs(created - intent.at), row.request_id or "")


def match_intents(
    intents: Sequence[Intent],
    rows: Iterable[R],
    holdings: Holdings,
    *,
    skew_s: float = CLOCK_SKEW_S,
) -> dict[str, R]:
    """Job id → the row that is its intent's request, for the intents that have one. Intents are
    served oldest first; no row goes to two intents, nor to one whose request it is not (rule 6)."""
    by_prompt: dict[Any, list[R]] = {}
    for row in rows:
        body = row.request_body
        prompt = body.get("prompt") if body is not None else None
        by_prompt.setdefault(prompt if isinstance(prompt, str) else None, []).append(row)
    found: dict[str, R] = {}
    used: set[str] = set()
    for intent in sorted(intents, key=lambda i: (i.at, i.job_id)):
        prompt = intent.params.get("prompt")
        pool = by_prompt.get(prompt if isinstance(prompt, str) else None, ())
        fits = [
            r
            for r in pool
            if r.request_id not in used
            and candidate(intent, r, skew_s=skew_s)
            and not holdings.taken(r.request_id or "")
        ]
        if fits:
            best = min(fits, key=lambda r: rank(intent, r))
            found[intent.job_id] = best
            used.add(best.request_id or "")
    return found


# ---- where to look ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """One scan of the list: a date window the server accepts, and the oldest creation time that
    can matter (rows older than ``since`` are past every intent of the scan)."""

    from_date: date
    to_date: date
    since: float


def scan_windows(times: Iterable[float], now: float, *, skew_s: float = CLOCK_SKEW_S) -> list[Window]:
    """The fewest windows of at most 31 days that cover requests made for intents at ``times``
    (unix): from the day of the earliest intent less the skew to the day of the latest plus the
    time a POST can take, never past today."""
    ordered = sorted(times)
    today = _day(now + skew_s)
    windows: list[Window] = []
    i = 0
    while i < len(ordered):
        start = ordered[i]
        first = _day(start - skew_s)
        limit = first + timedelta(days=MAX_WINDOW_DAYS - 1)
        j = i
        while j + 1 < len(ordered) and _day(ordered[j + 1] + skew_s) <= limit:
            j += 1
        last = min(_day(ordered[j] + skew_s + POST_MARGIN_S), limit, max(today, first))
        windows.append(Window(first, last, start - skew_s))
        i = j + 1
    return windows


def scan_done(rows: Iterable[Row], since: float) -> bool:
    """Newest first: a row created before ``since`` means later pages hold nothing that matters."""
    return any(r.created_at is not None and r.created_at < since for r in rows)


def _day(unix: float) -> date:
    return datetime.fromtimestamp(unix, tz=UTC).date()


# ---- an expired request -------------------------------------------------------------------------


class Verdict(StrEnum):
    FETCH = "fetch"  # the request completed: download its generation_url
    FAIL = "fail"  # the request failed: so does the job, with the server's error
    RESUBMIT = "resubmit"  # nothing to fetch: submit again, counted as expired


@dataclass(frozen=True, slots=True)
class ExpiredOutcome:
    verdict: Verdict
    why: str  # for a log line: "completed", "pending", "no record", "file gone", …
    output_url: str | None = None
    error: str | None = None
    cost_usd: float | None = None


def expired_outcome(
    request_id: str, row: Row | None, *, now: float, file_retention_s: float = FILE_RETENTION_S
) -> ExpiredOutcome:
    """What to do with a request past its hour, given its history record (``None``: none)."""
    if row is None:
        return ExpiredOutcome(Verdict.RESUBMIT, "no record")
    if row.request_id is not None and row.request_id != request_id:
        return ExpiredOutcome(Verdict.RESUBMIT, "a record of another request")
    cost = row.credits_deduction
    status = row.model_status
    if status == "COMPLETED":
        url = row.generation_url
        if url is None:
            return ExpiredOutcome(Verdict.RESUBMIT, "completed without an output URL", cost_usd=cost)
        born = row.updated_at if row.updated_at is not None else row.created_at
        if born is not None and now - born >= file_retention_s:
            return ExpiredOutcome(Verdict.RESUBMIT, "file gone (past 7 days)", cost_usd=cost)
        return ExpiredOutcome(Verdict.FETCH, "completed", output_url=url, cost_usd=cost)
    if status == "FAILED":
        error = row.error or "FAILED without a reason"
        return ExpiredOutcome(Verdict.FAIL, "failed", error=error, cost_usd=cost)
    return ExpiredOutcome(Verdict.RESUBMIT, (status or "not landed").lower(), cost_usd=cost)


# ---- which resume decisions ask ----------------------------------------------------------------


class Lookup(StrEnum):
    INTENT = "intent"  # an open intent: search the list for the request it may have created
    EXPIRED = "expired"  # a request past its hour: read its record


def lookup_for(decision: Decision) -> Lookup | None:
    """Whether a resume decision asks the request history first, and what."""
    rec = decision.record
    if decision.action is not Action.SUBMIT or rec is None:
        return None
    if decision.reason == "ambiguous" and rec.open_intent:
        return Lookup.INTENT
    if decision.reason == "expired" and rec.request_id:
        return Lookup.EXPIRED
    return None

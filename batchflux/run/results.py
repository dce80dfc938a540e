"""One row per job for the next step of a pipeline (pure: records and jobs in, rows out).

The rows of ``OUT/results.jsonl`` and ``OUT/results.csv``, of ``batchflux export`` and of
``batchflux.stream()`` are all built here, so they agree. A row is a dict whose keys are
:func:`columns` in order (docs/reference/results.md):

- ``id``, ``status`` (:data:`STATUSES`), ``out_dir`` (the run directory whose ledger knows the job),
  ``output`` (the image, relative to ``out_dir``), ``sha256``, ``bytes``, ``width``, ``height``;
- the job's parameters, ``input_image`` and ``prompt`` first (as the manifest wrote them, defaults
  applied);
- ``request_id``, ``submits``, ``submitted_at``, ``completed_at``, ``inference_s``,
  ``turnaround_s``, ``cost_usd``, ``cost_source``, ``cause``, ``error``, ``http_status``;
- ``review`` (``approved``, ``rejected`` or null: the verdict on the image the job has now) and
  ``review_note``; ``redo`` (how many times a rejected image was redone, the ``seed`` column then
  holding the seed derived for the latest) and ``rejected_images`` (the rejected images kept aside,
  relative to ``out_dir``, oldest first).

What a status means: ``done`` the ledger recorded the image's download; ``failed`` permanently
failed (``cause``: a verdict stays failed, an accident is retried by the next run); ``in_flight``
submitted (or a submit whose answer was lost) with no outcome yet; ``pending`` not submitted yet,
or to be submitted again (a request that expired, a job changed since the ledger saw it);
``not_in_manifest`` the ledger knows a job the manifest no longer lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchflux.ledger import JobRecord, JobState, Replay
from batchflux.manifest.job import Job
from batchflux.manifest.schema import schema_for
from batchflux.run.summary import iso_utc

STATUSES: tuple[str, ...] = ("done", "failed", "in_flight", "pending", "not_in_manifest")
HEAD: tuple[str, ...] = ("id", "status", "out_dir", "output", "sha256", "bytes", "width", "height")
TAIL: tuple[str, ...] = (
    "request_id", "submits", "submitted_at", "completed_at", "inference_s", "turnaround_s",
    "cost_usd", "cost_source", "cause", "error", "http_status", "review", "review_note", "redo",
    "rejected_images",
)  # fmt: skip
REVIEW_STATUSES: tuple[str, ...] = ("approved", "rejected", "unreviewed")  # --status picks by verdict too
FIRST_PARAMS = ("input_image", "prompt")
# Failures the account is not charged for: the server FAILED the request or refused the submit.
UNBILLED_CAUSES = frozenset({"moderation", "invalid", "server", "input"})

Dimensions = Callable[[str, str], tuple[int, int] | None]  # (out_dir, output) → (width, height)


@dataclass(frozen=True, slots=True)
class Known:
    """What one run directory's ledger knows of a job, and the actual cost of its latest request
    when an event recorded one (``credits_deduction``)."""

    out_dir: str
    record: JobRecord
    cost_usd: float | None = None


def param_names(model: str, jobs: Iterable[Job] = (), records: Iterable[JobRecord] = ()) -> tuple[str, ...]:
    """The parameter columns: the model's schema (``input_image``, ``prompt`` first), then any other
    parameter a job or record has, sorted. Fixed before the first row, so a CSV header can be."""
    schema = schema_for(model)
    names = list(schema.params) if schema else []
    extra = {name for job in jobs for name in job.params} | {name for rec in records for name in rec.params}
    names.extend(sorted(extra - set(names)))
    return tuple([n for n in FIRST_PARAMS if n in names] + [n for n in names if n not in FIRST_PARAMS])


def param_column(name: str) -> str:
    """A parameter's column: its name, unless a fixed column has it (``param.NAME`` then)."""
    return f"param.{name}" if name in HEAD or name in TAIL else name


def columns(params: Sequence[str]) -> tuple[str, ...]:
    return (*HEAD, *(param_column(p) for p in params), *TAIL)


def status_of(rec: JobRecord | None) -> str:
    """A manifest job's status from its record (None: the ledger does not know it, or knew it
    with other parameters)."""
    if rec is None:
        return "pending"
    state = rec.state
    if state is JobState.DOWNLOADED:
        return "done"
    if state is JobState.FAILED:
        return "failed"
    if state in (JobState.SUBMITTED, JobState.COMPLETED) or rec.open_intent:
        return "in_flight"
    return "pending"  # certainly not submitted, or expired: the next run submits it


def current(job: Job, rec: JobRecord | None) -> JobRecord | None:
    """The record, unless it is of the job before its parameters changed (resume's "changed")."""
    if rec is not None and rec.fingerprint and rec.fingerprint != job.fingerprint:
        return None
    return rec


def cost_of(rec: JobRecord | None, price: float, actual: float | None) -> tuple[float | None, str | None]:
    """The charge for the record's latest request: ``(usd, "actual" | "estimated")``, or
    ``(None, None)`` when no request is known to exist."""
    if rec is None or not rec.request_id:
        return None, None
    if actual is not None:
        return actual, "actual"
    if rec.state is JobState.FAILED and rec.cause in UNBILLED_CAUSES:
        return 0.0, "estimated"
    return price, "estimated"


def build_row(
    job_id: str,
    status: str,
    params: Mapping[str, Any],
    known: Known | None,
    *,
    names: Sequence[str],
    price: float,
    dims: Dimensions,
) -> dict[str, Any]:
    """One row; ``known`` None for a job no ledger knows (its parameters only)."""
    rec = known.record if known is not None else None
    row: dict[str, Any] = dict.fromkeys(HEAD)
    row["id"], row["status"] = job_id, status
    done = rec is not None and rec.state is JobState.DOWNLOADED
    if known is not None and rec is not None:
        row["out_dir"] = known.out_dir
        if done and rec.path:
            row["output"], row["sha256"], row["bytes"] = rec.path, rec.sha256, rec.size
            size = dims(known.out_dir, rec.path)
            if size is not None:
                row["width"], row["height"] = size
    for name in names:
        row[param_column(name)] = params.get(name)
    row.update(dict.fromkeys(TAIL))
    row["redo"] = 0
    if rec is None:
        row["submits"] = 0
        return row
    if rec.redo and "seed" in rec.params and "seed" in names:
        row[param_column("seed")] = rec.params["seed"]  # the seed derived for the redo, as sent
    row["request_id"] = rec.request_id
    row["submits"] = rec.attempts
    row["submitted_at"] = _iso(rec.submitted_at)
    row["completed_at"] = _iso(rec.completed_at)
    inference = rec.metrics.get("inference_time")
    if isinstance(inference, int | float) and not isinstance(inference, bool):
        row["inference_s"] = round(float(inference), 3)
    if rec.submitted_at is not None and rec.completed_at is not None:
        row["turnaround_s"] = round(rec.completed_at - rec.submitted_at, 3)
    row["cost_usd"], row["cost_source"] = cost_of(rec, price, known.cost_usd if known else None)
    if rec.state is JobState.FAILED:
        row["cause"], row["error"], row["http_status"] = rec.cause, rec.error, rec.http_status
    review = rec.current_review
    if review is not None:
        row["review"], row["review_note"] = review.verdict, review.note or None
    row["redo"] = rec.redo
    row["rejected_images"] = list(rec.set_aside) or None
    return row


def review_of(row: Mapping[str, Any]) -> str:
    """A row's place among :data:`REVIEW_STATUSES`: its verdict, or ``unreviewed`` for a done job
    without one (other rows have no image to review: "")."""
    if row.get("review"):
        return str(row["review"])
    return "unreviewed" if row.get("status") == "done" else ""


def manifest_row(
    job: Job, known: Known | None, *, names: Sequence[str], price: float, dims: Dimensions
) -> dict[str, Any]:
    """The row of a manifest job, from what the ledger knows of it (if it is still this job)."""
    if known is not None and current(job, known.record) is None:
        known = None
    status = status_of(known.record if known else None)
    return build_row(job.id, status, job.params, known, names=names, price=price, dims=dims)


def result_rows(
    jobs: Iterable[Job],
    known: Mapping[str, Known],
    *,
    names: Sequence[str],
    price: Callable[[str], float],
    dims: Dimensions,
    orphans: bool = True,
) -> Iterator[dict[str, Any]]:
    """A row per manifest job in manifest order, then (``orphans``) one per job the ledgers know
    and the manifest does not, in the order the ledgers first saw them."""
    seen: set[str] = set()
    for job in jobs:
        seen.add(job.id)
        yield manifest_row(job, known.get(job.id), names=names, price=price(job.model), dims=dims)
    if not orphans:
        return
    rest = sorted(
        (k for jid, k in known.items() if jid not in seen), key=lambda k: (k.record.first_ts, k.record.job_id)
    )
    for k in rest:
        rec = k.record
        yield build_row(
            rec.job_id, "not_in_manifest", rec.params, k, names=names, price=price(rec.model), dims=dims
        )


def merge(
    ledgers: Sequence[tuple[str, Replay, Mapping[str, tuple[str | None, float]]]],
) -> dict[str, Known]:
    """Each job's record from several run directories (the shards of one batch): where a job id
    is in more than one, the latest record counts (as ``batchflux status``). ``costs`` per
    directory: job id → (request id or None, credits_deduction) of its latest such event."""
    out: dict[str, Known] = {}
    for out_dir, replay, costs in ledgers:
        for job_id, rec in replay.jobs.items():
            seen = out.get(job_id)
            if seen is not None and seen.record.last_ts > rec.last_ts:
                continue
            cost = costs.get(job_id)
            actual = cost[1] if cost is not None and cost[0] in (None, rec.request_id) else None
            out[job_id] = Known(out_dir, rec, actual)
    return out


def _iso(ts: float | None) -> str | None:
    return iso_utc(ts) if ts is not None else None

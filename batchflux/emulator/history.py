"""Segmind's request history as the emulator keeps it (pure): one row per request, of any age.

The two endpoints (segmind-v2.md, "Request history"; the SDK's ``Generations.history``/``get``):

- ``GET /inference-request/request-history``: the caller's requests, newest first by default, a page
  at a time. Query: ``page`` (1-based), ``per_page`` (1..100, default 20), ``from_date``/``to_date``
  (``YYYY-MM-DD``, UTC, inclusive; default the last 7 days; at most 31 days), ``model_name``
  (substring), ``status`` (COMPLETED, FAILED, PENDING), ``sort_by`` (``model_created``,
  ``model_name``, ``credits_deduction``), ``sort_order`` (``desc``, ``asc``). A bad value is a 400.
- ``GET /inference-request/request-history/{id}``: one of the caller's requests, with no date window.

A row outlives the v2 API's one-hour retention. Until its record "lands" (``history_delay_s`` after
submission) a row is listed with ``None`` in every field but ``request_id``, ``model_name`` and
``created_at``. The page envelope (``data``, ``page``, ``per_page``, ``total``, ``total_pages``) and
the timestamp format (ISO 8601 UTC with milliseconds) are this emulator's choice: the real ones are
not documented, and clients must not depend on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from batchflux.emulator.jobs import COMPLETED, FAILED, JobRecord

HISTORY_PATH = "/inference-request/request-history"
STATUSES: tuple[str, ...] = ("COMPLETED", "FAILED", "PENDING")
SORT_KEYS: tuple[str, ...] = ("model_created", "model_name", "credits_deduction")
SORT_ORDERS: tuple[str, ...] = ("desc", "asc")
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 20
MAX_WINDOW_DAYS = 31
DEFAULT_WINDOW_DAYS = 7


@dataclass(frozen=True, slots=True)
class ListQuery:
    page: int
    per_page: int
    from_date: date
    to_date: date
    model_name: str | None
    status: str | None
    sort_by: str
    sort_order: str


def parse_query(raw: Mapping[str, str], today: date) -> ListQuery | str:
    """The list query, or the 400 message for the first value the server refuses."""
    page = _int(raw.get("page", "1"))
    if page is None or page < 1:
        return "page must be an integer >= 1"
    per_page = _int(raw.get("per_page", str(DEFAULT_PER_PAGE)))
    if per_page is None or not 1 <= per_page <= MAX_PER_PAGE:
        return f"per_page must be an integer within 1..{MAX_PER_PAGE}"
    try:
        to_date = date.fromisoformat(raw["to_date"]) if raw.get("to_date") else today
        default_from = to_date - timedelta(days=DEFAULT_WINDOW_DAYS - 1)
        from_date = date.fromisoformat(raw["from_date"]) if raw.get("from_date") else default_from
    except ValueError:
        return "from_date and to_date must be dates in YYYY-MM-DD format"
    if from_date > to_date:
        return "from_date must not be after to_date"
    if (to_date - from_date).days + 1 > MAX_WINDOW_DAYS:
        return f"the date range must not exceed {MAX_WINDOW_DAYS} days"
    status = raw.get("status") or None
    if status is not None and status not in STATUSES:
        return f"status must be one of {', '.join(STATUSES)}"
    sort_by = raw.get("sort_by") or SORT_KEYS[0]
    if sort_by not in SORT_KEYS:
        return f"sort_by must be one of {', '.join(SORT_KEYS)}"
    sort_order = raw.get("sort_order") or SORT_ORDERS[0]
    if sort_order not in SORT_ORDERS:
        return "sort_order must be desc or asc"
    return ListQuery(
        page=page,
        per_page=per_page,
        from_date=from_date,
        to_date=to_date,
        model_name=raw.get("model_name") or None,
        status=status,
        sort_by=sort_by,
        sort_order=sort_order,
    )


def iso_ms(unix: float) -> str:
    stamp = datetime.fromtimestamp(unix, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def utc_date(unix: float) -> date:
    return datetime.fromtimestamp(unix, tz=UTC).date()


def history_status(state: str) -> str:
    """The history's three statuses: QUEUED and PROCESSING are both PENDING."""
    return state if state in (COMPLETED, FAILED) else "PENDING"


@dataclass(frozen=True, slots=True)
class RowContext:
    """What a row needs beyond the record: the time, where outputs and uploads are served."""

    now: float  # loop clock
    unix: Callable[[float], float]  # loop clock -> unix seconds
    base_url: str
    landing_s: float  # a record lands this long after its submission


def history_row(record: JobRecord, ctx: RowContext) -> dict[str, Any]:
    """One request as the history shows it now (``None`` fields while its record has not landed)."""
    slot = record.slot
    row: dict[str, Any] = {
        "request_id": record.request_id,
        "model_name": record.slug,
        "model_status": None,
        "credits_deduction": None,
        "request_body": None,
        "generation_url": None,
        "latency_ms": None,
        "error": None,
        "created_at": iso_ms(ctx.unix(slot.submitted)),
        "updated_at": None,
    }
    if ctx.now < slot.submitted + ctx.landing_s:
        return row
    state = record.state(ctx.now)
    status = history_status(state)
    finished = ctx.now >= slot.finished
    output = f"{ctx.base_url}/media/{record.request_id}.{record.ext}"
    row.update(
        model_status=status,
        credits_deduction=0.0 if status == FAILED else record.price,
        request_body=_body_as_sent(record.params, ctx.base_url),
        generation_url=output if status == COMPLETED else None,
        latency_ms=round((slot.finished - slot.submitted) * 1000) if finished else None,
        error=record.error if status == FAILED else None,
        updated_at=iso_ms(ctx.unix(slot.finished if finished else slot.submitted)),
    )
    return row


def _body_as_sent(params: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The stored body: an inline (data URI) input was kept as an upload, shown by its absolute URL."""
    value = params.get("input_image")
    if isinstance(value, str) and value.startswith("/media/uploads/"):
        return {**params, "input_image": base_url + value}
    return dict(params)


def select(records: Sequence[JobRecord], query: ListQuery, ctx: RowContext) -> list[dict[str, Any]]:
    """The rows the query selects, sorted; every page's rows come from this list."""
    picked: list[tuple[JobRecord, dict[str, Any]]] = []
    for record in records:
        created = utc_date(ctx.unix(record.slot.submitted))
        if not query.from_date <= created <= query.to_date:
            continue
        if query.model_name is not None and query.model_name.lower() not in record.slug.lower():
            continue
        row = history_row(record, ctx)
        if query.status is not None and row["model_status"] != query.status:
            continue
        picked.append((record, row))
    reverse = query.sort_order == "desc"
    if query.sort_by == "model_name":
        picked.sort(key=lambda p: (p[0].slug, p[0].slot.submitted), reverse=reverse)
    elif query.sort_by == "credits_deduction":
        picked.sort(key=lambda p: (_cost_key(p[1]), p[0].slot.submitted), reverse=reverse)
    else:
        picked.sort(key=lambda p: p[0].slot.submitted, reverse=reverse)
    return [row for _, row in picked]


def _cost_key(row: dict[str, Any]) -> float:
    cost = row["credits_deduction"]
    return float(cost) if isinstance(cost, int | float) else -1.0


def page_body(rows: list[dict[str, Any]], query: ListQuery) -> dict[str, Any]:
    start = (query.page - 1) * query.per_page
    return {
        "data": rows[start : start + query.per_page],
        "page": query.page,
        "per_page": query.per_page,
        "total": len(rows),
        "total_pages": math.ceil(len(rows) / query.per_page),
    }


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None

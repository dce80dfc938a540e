"""The request history's values, read defensively from whatever the server sends (pure).

Segmind keeps a record of every request of the account, of any age (segmind-v2.md, "Request
history"): its inputs as sent, status, cost, output URL and error. What is documented is the field
names of a row; what is not is the page envelope, the timestamp format and how soon a record
lands. So every field here has a default, a row's fields may be ``None`` (not landed yet, or a
server that predates the field), and an answer whose shape is not one of the few known raises
:class:`~batchflux.api.errors.HistoryUnavailable` — never a ``KeyError``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

from batchflux.api.errors import HistoryUnavailable

STATUSES: Final = ("COMPLETED", "FAILED", "PENDING")
SORT_KEYS: Final = ("model_created", "model_name", "credits_deduction")
SORT_ORDERS: Final = ("desc", "asc")
MAX_PER_PAGE: Final = 100
MAX_WINDOW_DAYS: Final = 31  # from_date..to_date, both inclusive

# Where a page's rows may sit, and what a row may call its fields: the first match wins.
_ROW_LISTS: Final = ("data", "rows", "items", "results", "records", "requests", "history")
_ROW_MARKERS: Final = frozenset({"request_id", "model_status", "request_body", "generation_url"})
_CREATED: Final = ("created_at", "model_created", "createdAt", "created", "timestamp")
_UPDATED: Final = ("updated_at", "updatedAt", "completed_at", "model_updated")
_STATUS_ALIASES: Final = {
    "SUCCESS": "COMPLETED",
    "SUCCEEDED": "COMPLETED",
    "COMPLETE": "COMPLETED",
    "ERROR": "FAILED",
    "FAILURE": "FAILED",
    "QUEUED": "PENDING",
    "PROCESSING": "PENDING",
    "IN_PROGRESS": "PENDING",
    "RUNNING": "PENDING",
}


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """One page of the list, as the server's query takes it. Invalid values raise ``ValueError``:
    a query the server would refuse with 400 is a bug here, not a server answer."""

    page: int = 1
    per_page: int = MAX_PER_PAGE
    from_date: date | None = None  # UTC dates, inclusive; the server's default is the last 7 days
    to_date: date | None = None
    model_name: str | None = None  # substring match
    status: str | None = None
    sort_by: str = "model_created"
    sort_order: str = "desc"

    def __post_init__(self) -> None:
        if self.page < 1:
            raise ValueError(f"page must be >= 1, not {self.page}")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be within 1..{MAX_PER_PAGE}, not {self.per_page}")
        if self.from_date is not None and self.to_date is not None:
            if self.from_date > self.to_date:
                raise ValueError("from_date is after to_date")
            if (self.to_date - self.from_date).days + 1 > MAX_WINDOW_DAYS:
                raise ValueError(f"a window spans at most {MAX_WINDOW_DAYS} days")
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        if self.sort_by not in SORT_KEYS or self.sort_order not in SORT_ORDERS:
            raise ValueError(f"sort_by must be one of {SORT_KEYS} and sort_order one of {SORT_ORDERS}")

    def params(self) -> dict[str, str]:
        """The query string's values, leaving out what is not set."""
        out = {"page": str(self.page), "per_page": str(self.per_page)}
        optional = {
            "from_date": self.from_date.isoformat() if self.from_date else None,
            "to_date": self.to_date.isoformat() if self.to_date else None,
            "model_name": self.model_name,
            "status": self.status,
            "sort_by": self.sort_by,
            "sort_order": self.sort_order,
        }
        out.update({k: v for k, v in optional.items() if v})
        return out


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One request as the history shows it. ``None`` where the server gave nothing usable."""

    request_id: str | None = None
    model_name: str | None = None
    model_status: str | None = None  # COMPLETED, FAILED, PENDING; another upper-case word; None
    credits_deduction: float | None = None  # USD
    request_body: Mapping[str, Any] | None = field(default=None, hash=False)  # the inputs as sent
    generation_url: str | None = None
    latency_ms: float | None = None
    created_at: float | None = None  # unix seconds
    updated_at: float | None = None
    error: str | None = None

    @property
    def landed(self) -> bool:
        """The record is complete enough to match on: a status and the body as sent."""
        return self.model_status is not None and self.request_body is not None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    rows: tuple[HistoryRow, ...]
    page: int
    more: bool  # a later page may hold more rows


def page_from(data: Any, query: HistoryQuery) -> HistoryPage:
    """A list answer: the rows (wherever the envelope keeps them) and whether more pages follow."""
    rows, envelope = _row_list(data)
    if rows is None:
        raise HistoryUnavailable(f"history: an answer of an unknown shape ({_shape(data)})", op="history")
    parsed = tuple(row_from_mapping(r) for r in rows if isinstance(r, Mapping))
    return HistoryPage(parsed, query.page, _more(envelope, query, len(rows)))


def record_from(data: Any) -> HistoryRow:
    """A one-record answer: the row itself, or the row under ``data``."""
    if isinstance(data, Mapping):
        if _ROW_MARKERS & data.keys():
            return row_from_mapping(data)
        inner = data.get("data")
        if isinstance(inner, Mapping) and _ROW_MARKERS & inner.keys():
            return row_from_mapping(inner)
    raise HistoryUnavailable(f"history: a record of an unknown shape ({_shape(data)})", op="history_record")


def row_from_mapping(raw: Mapping[str, Any]) -> HistoryRow:
    return HistoryRow(
        request_id=_text(raw.get("request_id")),
        model_name=_text(raw.get("model_name")),
        model_status=_status(raw.get("model_status", raw.get("status"))),
        credits_deduction=_number(raw.get("credits_deduction")),
        request_body=_body(raw.get("request_body")),
        generation_url=_url(raw.get("generation_url")),
        latency_ms=_number(raw.get("latency_ms")),
        created_at=_first_time(raw, _CREATED),
        updated_at=_first_time(raw, _UPDATED),
        error=_error(raw.get("error")),
    )


def parse_time(value: Any) -> float | None:
    """Unix seconds from an ISO 8601 text (``Z``, an offset, or none: UTC) or a number of seconds or
    milliseconds since the epoch; ``None`` for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return _iso(text)
    else:
        return None
    if not math.isfinite(number) or number <= 0:
        return None
    return number / 1000.0 if number > 1e12 else number


def _iso(text: str) -> float | None:
    try:
        when = datetime.fromisoformat(text.replace("z", "Z").replace(" ", "T", 1))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def _row_list(data: Any) -> tuple[list[Any] | None, Mapping[str, Any]]:
    if isinstance(data, list):
        return data, {}
    if not isinstance(data, Mapping):
        return None, {}
    for key in _ROW_LISTS:
        value = data.get(key)
        if isinstance(value, list):
            return value, data
        if isinstance(value, Mapping):
            for inner in _ROW_LISTS:
                rows = value.get(inner)
                if isinstance(rows, list):
                    return rows, {**data, **value}
    return None, data


def _more(envelope: Mapping[str, Any], query: HistoryQuery, count: int) -> bool:
    pages = _count(envelope.get("total_pages", envelope.get("totalPages")))
    if pages is not None:
        return query.page < pages
    total = _count(envelope.get("total", envelope.get("total_count", envelope.get("count"))))
    if total is not None:
        return query.page * query.per_page < total
    flag = envelope.get("has_more", envelope.get("hasMore"))
    if isinstance(flag, bool):
        return flag
    return count >= query.per_page  # a full page: there may be another


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _shape(data: Any) -> str:
    if isinstance(data, Mapping):
        keys = ", ".join(sorted(str(k) for k in data)[:8])
        return f"an object with keys {keys}" if keys else "an empty object"
    return type(data).__name__ if data is not None else "not JSON"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _status(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    word = value.strip().upper()
    return _STATUS_ALIASES.get(word, word)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _body(value: Any) -> Mapping[str, Any] | None:
    """The body as sent: an object, or an object kept as JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    return dict(value) if isinstance(value, Mapping) else None


def _url(value: Any) -> str | None:
    if isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else None


def _error(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 300 else text[:299] + "…"


def _first_time(raw: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        when = parse_time(raw.get(key))
        if when is not None:
            return when
    return None

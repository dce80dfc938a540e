"""The request history's values read defensively (pure): envelopes, rows, timestamps, the query."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchflux.api import HistoryQuery, HistoryRow, HistoryUnavailable
from batchflux.api.history import page_from, parse_time, record_from, row_from_mapping

ROW = {"request_id": "r1", "model_status": "COMPLETED", "request_body": {"prompt": "p"}}
Q = HistoryQuery(page=2, per_page=2)


@pytest.mark.parametrize(
    "answer",
    [
        [ROW],
        {"data": [ROW]},
        {"items": [ROW], "page": 2},
        {"results": [ROW]},
        {"data": {"items": [ROW], "total": 9}},
        {"data": {"rows": [ROW]}},
        {"history": [ROW, "not a row", 3]},
    ],
)
def test_rows_are_found_in_any_known_envelope(answer: Any) -> None:
    page = page_from(answer, Q)
    assert [r.request_id for r in page.rows] == ["r1"]
    assert page.page == 2


@pytest.mark.parametrize(
    "answer", [None, "text", 3, {}, {"ok": True, "result": {"count": 3}}, {"data": "nothing"}, {"data": None}]
)
def test_an_unknown_envelope_is_a_typed_error(answer: Any) -> None:
    with pytest.raises(HistoryUnavailable, match="unknown shape"):
        page_from(answer, Q)


@pytest.mark.parametrize(
    ("envelope", "rows", "more"),
    [
        ({"total_pages": 3}, 2, True),
        ({"total_pages": 2}, 2, False),
        ({"total": 5}, 2, True),  # page 2 of 2 ends at row 4
        ({"total": 4}, 2, False),
        ({"has_more": False}, 2, False),
        ({"hasMore": True}, 1, True),
        ({}, 2, True),  # a full page: maybe another
        ({}, 1, False),
        ({"total": "many"}, 1, False),
    ],
)
def test_whether_more_pages_follow(envelope: dict[str, Any], rows: int, more: bool) -> None:
    assert page_from({"data": [ROW] * rows, **envelope}, Q).more is more


def test_a_record_is_the_row_itself_or_under_data() -> None:
    assert record_from(ROW).request_id == "r1"
    assert record_from({"data": ROW}).request_id == "r1"
    for odd in ({"ok": True}, [ROW], None, {"data": {"x": 1}}):
        with pytest.raises(HistoryUnavailable):
            record_from(odd)


def test_a_full_row_reads_every_field() -> None:
    row = row_from_mapping(
        {
            "request_id": "r1",
            "model_name": "flux-kontext-max",
            "model_status": "completed",
            "credits_deduction": 0.1,
            "request_body": {"prompt": "p", "seed": 3},
            "generation_url": "https://images.segmind.com/a.png",
            "latency_ms": 24300,
            "created_at": "2026-12-01T10:00:00.250Z",
            "updated_at": "2026-12-01T10:00:24Z",
            "error": None,
        }
    )
    assert row == HistoryRow(
        request_id="r1",
        model_name="flux-kontext-max",
        model_status="COMPLETED",
        credits_deduction=0.1,
        request_body={"prompt": "p", "seed": 3},
        generation_url="https://images.segmind.com/a.png",
        latency_ms=24300.0,
        created_at=datetime(2026, 12, 1, 10, 0, 0, 250000, tzinfo=UTC).timestamp(),
        updated_at=datetime(2026, 12, 1, 10, 0, 24, tzinfo=UTC).timestamp(),
        error=None,
    )
    assert row.landed


def test_a_row_that_has_not_landed_or_predates_fields_reads_as_none() -> None:
    empty = row_from_mapping({"request_id": "r1", "model_status": None, "request_body": None})
    assert empty == HistoryRow(request_id="r1")
    assert not empty.landed
    assert row_from_mapping({}) == HistoryRow()


@pytest.mark.parametrize(
    ("raw", "field", "value"),
    [
        ({"credits_deduction": "0.25"}, "credits_deduction", 0.25),
        ({"credits_deduction": True}, "credits_deduction", None),
        ({"credits_deduction": "NaN"}, "credits_deduction", None),
        ({"credits_deduction": "free"}, "credits_deduction", None),
        ({"request_body": '{"prompt": "p"}'}, "request_body", {"prompt": "p"}),
        ({"request_body": "[1, 2]"}, "request_body", None),
        ({"request_body": "{torn"}, "request_body", None),
        ({"generation_url": ["https://a/x.png", "https://a/y.png"]}, "generation_url", "https://a/x.png"),
        ({"generation_url": "javascript:alert(1)"}, "generation_url", None),
        ({"generation_url": ""}, "generation_url", None),
        ({"status": "SUCCESS"}, "model_status", "COMPLETED"),
        ({"model_status": "error"}, "model_status", "FAILED"),
        ({"model_status": "PROCESSING"}, "model_status", "PENDING"),
        ({"model_status": "ARCHIVED"}, "model_status", "ARCHIVED"),
        ({"model_status": 3}, "model_status", None),
        ({"error": {"code": 7}}, "error", '{"code": 7}'),
        ({"error": "x" * 400}, "error", "x" * 299 + "…"),
        ({"model_created": 1_700_000_000}, "created_at", 1_700_000_000.0),
        ({"createdAt": 1_700_000_000_500}, "created_at", 1_700_000_000.5),
        ({"created_at": "junk", "model_created": "2023-11-14 22:13:20"}, "created_at", 1_700_000_000.0),
        ({"request_id": 12}, "request_id", None),
    ],
)
def test_field_values_are_read_defensively(raw: dict[str, Any], field: str, value: Any) -> None:
    assert getattr(row_from_mapping(raw), field) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-11-14T22:13:20Z", 1_700_000_000.0),
        ("2023-11-14T22:13:20.5z", 1_700_000_000.5),
        ("2023-11-15T00:13:20+02:00", 1_700_000_000.0),
        ("2023-11-14T22:13:20", 1_700_000_000.0),  # no offset: UTC
        ("1700000000", 1_700_000_000.0),
        (1_700_000_000_000, 1_700_000_000.0),
        ("", None),
        ("yesterday", None),
        (None, None),
        (True, None),
        (-5, None),
        (math.inf, None),
        ([], None),
    ],
)
def test_parse_time(text: Any, expected: float | None) -> None:
    assert parse_time(text) == expected


def test_the_query_is_checked_and_spelled_as_the_server_takes_it() -> None:
    q = HistoryQuery(
        from_date=date(2026, 11, 1), to_date=date(2026, 12, 1), model_name="flux", status="FAILED"
    )
    assert q.params() == {
        "page": "1",
        "per_page": "100",
        "from_date": "2026-11-01",
        "to_date": "2026-12-01",
        "model_name": "flux",
        "status": "FAILED",
        "sort_by": "model_created",
        "sort_order": "desc",
    }
    assert HistoryQuery(per_page=20).params() == {
        "page": "1", "per_page": "20", "sort_by": "model_created", "sort_order": "desc"
    }  # fmt: skip
    for bad in (
        {"per_page": 101},
        {"per_page": 0},
        {"page": 0},
        {"from_date": date(2026, 10, 31), "to_date": date(2026, 12, 1)},  # 32 days
        {"from_date": date(2026, 12, 2), "to_date": date(2026, 12, 1)},
        {"status": "QUEUED"},
        {"sort_by": "latency"},
        {"sort_order": "up"},
    ):
        with pytest.raises(ValueError, match=r"must|after|spans"):
            HistoryQuery(**bad)  # type: ignore[arg-type]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
ROW_KEYS = st.sampled_from([
    "request_id", "model_name", "model_status", "status", "credits_deduction", "request_body",
    "generation_url", "latency_ms", "created_at", "model_created", "updated_at", "error",
])  # fmt: skip


@given(st.dictionaries(ROW_KEYS | st.text(max_size=8), JSON, max_size=12))
def test_any_row_reads_without_raising(raw: dict[str, Any]) -> None:
    row = row_from_mapping(raw)
    assert row.credits_deduction is None or math.isfinite(row.credits_deduction)
    assert row.request_body is None or isinstance(row.request_body, dict)


@given(JSON)
def test_any_answer_is_a_page_or_a_typed_error(answer: Any) -> None:
    try:
        page = page_from(answer, Q)
    except HistoryUnavailable:
        return
    assert all(isinstance(r, HistoryRow) for r in page.rows)

"""One reading of a recorded dollar amount, for every reader of the ledger (records, requests,
export, the live stream)."""

from __future__ import annotations

import math

import pytest

from batchflux.ledger import EventType
from batchflux.ledger.records import JobRecord, usd


@pytest.mark.parametrize(
    ("value", "amount"),
    [(0.08, 0.08), (0, 0.0), (3, 3.0), (-0.08, None), (True, None), ("0.08", None), (math.nan, None),
     (math.inf, None), (None, None)],
)  # fmt: skip
def test_an_amount_is_a_finite_number_not_below_zero(value: object, amount: float | None) -> None:
    assert usd(value) == amount


def test_a_job_record_keeps_no_negative_cost() -> None:
    rec = JobRecord("a")
    rec.apply_fields(EventType.SUBMITTED, 1.0, {"request_id": "r1", "credits_deduction": -1.0})
    assert rec.credits_deduction is None
    rec.apply_fields(EventType.SUBMITTED, 2.0, {"request_id": "r1", "credits_deduction": 0.08})
    assert rec.credits_deduction == 0.08

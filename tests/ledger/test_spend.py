"""The pure side of ``status --spend``: every request a ledger knows (the fold), the tally of the
request history's rows against it, and the date windows it is asked for."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from batchflux.api import HistoryRow
from batchflux.ledger import Event, EventType
from batchflux.ledger.reconcile import CLOCK_SKEW_S
from batchflux.ledger.requests import RequestLog, read_costs, read_ledger
from batchflux.ledger.spend import SpendTally, spend_windows, tally_spend

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
MODEL = "flux-kontext-max"
UPLOADED = "https://files.segmind.example/u/cat.png"


def params(prompt: str, **more: Any) -> dict[str, Any]:
    return {"prompt": prompt, "aspect_ratio": "1:1", "output_format": "png", **more}


def ev(kind: str, job: str | None, ts: float, **data: Any) -> dict[str, Any]:
    return {"v": 1, "ts": ts, "event": kind, "job": job, **data}


def intent(job: str, ts: float, prompt: str | None = None, **more: Any) -> dict[str, Any]:
    return ev("submit_intent", job, ts, model=MODEL, params=params(prompt or f"edit {job}"), **more)


def submitted(job: str, ts: float, rid: str, **more: Any) -> dict[str, Any]:
    return ev("submitted", job, ts, request_id=rid, submitted_at=ts, **more)


def fold(events: list[dict[str, Any]], *, keep_intents: bool = True) -> RequestLog:
    log = RequestLog(keep_intents=keep_intents)
    for event in events:
        log.add(event)
    return log


def row(rid: str | None, prompt: str, at: float, *, cost: float | None = 0.1, **more: Any) -> HistoryRow:
    body = more.pop("body", params(prompt))
    fields: dict[str, Any] = {
        "request_id": rid,
        "model_name": MODEL,
        "model_status": "COMPLETED",
        "credits_deduction": cost,
        "request_body": body,
        "created_at": at,
        **more,
    }
    return HistoryRow(**fields)


# ---- the fold -----------------------------------------------------------------------------------


def test_the_fold_keeps_every_request_of_every_job_with_its_price_and_cost() -> None:
    log = fold(
        [
            ev("run_started", None, T0, run_id="r1", price_usd=0.08),
            intent("a", T0 + 1),
            intent("a", T0 + 2),  # the first got no answer: an ambiguous submit
            submitted("a", T0 + 3, "ra1"),
            ev("expired", "a", T0 + 3700, request_id="ra1"),
            ev("run_started", None, T0 + 4000, run_id="r2", price_usd=0.1),
            intent("a", T0 + 4001),
            submitted("a", T0 + 4002, "ra2", recovered=True, credits_deduction=0.1),
            ev("result", "a", T0 + 4010, request_id="ra2", output_url="u", credits_deduction=0.1),
            intent("b", T0 + 4003),
            submitted("b", T0 + 4004, "rb1"),
            ev("failed", "b", T0 + 4020, request_id="rb1", cause="moderation", error="x", http_status=None),
            intent("c", T0 + 4005),
            submitted("c", T0 + 4006, "rc1"),
            ev("failed", "c", T0 + 4030, request_id="rc1", cause="download", error="x", http_status=None),
            ev("failed", "d", T0 + 4040, request_id=None, cause="input", error="unreadable"),
            intent("e", T0 + 4050),
            ev("state", "e", T0 + 4051, request_id=None, status="NOT_SUBMITTED", reason="stopping"),
            intent("f", T0 + 4060),
            ev("failed", "f", T0 + 4061, request_id=None, cause="invalid", error="400", http_status=400),
            intent("g", T0 + 4070),  # killed before the answer came: still open
        ]
    )
    assert sorted(log.requests) == ["ra1", "ra2", "rb1", "rc1"]  # ra1 too, not only a's latest
    assert (log.requests["ra1"].price_usd, log.requests["ra2"].price_usd) == (0.08, 0.1)
    assert log.costs == {"ra2": 0.1}
    assert log.server_failed == {"rb1"}  # a download failure was still paid
    assert log.billable == 3
    assert [(i.job_id, i.at, i.superseded) for i in log.intents] == [
        ("a", T0 + 1, None),
        ("a", T0 + 2, None),
        ("a", T0 + 4001, "ra1"),
        ("b", T0 + 4003, None),
        ("c", T0 + 4005, None),
        ("e", T0 + 4050, None),
        ("f", T0 + 4060, None),
        ("g", T0 + 4070, None),
    ]
    # Only these POSTs can have made a request nobody heard of: a's first, and g's.
    assert [(i.job_id, i.at) for i in log.unanswered()] == [("a", T0 + 1), ("g", T0 + 4070)]


@pytest.mark.parametrize(
    ("image", "sent", "local"),
    [
        ("inputs/cat.png", UPLOADED, True),
        ("https://images.example/cat.png", None, False),
        (None, None, False),
    ],
)
def test_an_intent_knows_a_local_input_and_what_was_sent_for_it(
    image: str | None, sent: str | None, local: bool
) -> None:
    extra: dict[str, Any] = {"input_sent": sent} if sent else {}
    p = params("x", **({"input_image": image} if image else {}))
    log = fold([ev("submit_intent", "a", T0, model=MODEL, params=p, **extra)])
    (got,) = log.intents
    assert (got.local, got.input_sent, got.model) == (local, sent, MODEL)


def test_without_keep_intents_only_requests_and_costs_are_kept() -> None:
    log = fold([intent("a", T0), submitted("a", T0 + 1, "r", credits_deduction=0.1)], keep_intents=False)
    assert (list(log.requests), log.costs, log.intents) == (["r"], {"r": 0.1}, [])


@pytest.mark.parametrize(
    "bad",
    [
        {"event": "submitted", "job": "a", "request_id": "r"},  # no ts
        {"event": "submitted", "job": None, "ts": T0, "request_id": "r"},
        {"event": "submitted", "job": "a", "ts": T0, "request_id": ""},
        {"event": "submitted", "job": "a", "ts": True, "request_id": "r"},
        {"event": "submit_intent", "job": "a", "ts": T0, "model": MODEL, "params": "not a dict"},
    ],
)
def test_the_fold_passes_over_malformed_events(bad: dict[str, Any]) -> None:
    log = fold([bad])
    assert (log.requests, log.intents) == ({}, [])


@pytest.mark.parametrize("cost", [-0.1, float("nan"), "0.1", True])
def test_a_cost_that_is_no_amount_is_not_kept(cost: Any) -> None:
    assert fold([submitted("a", T0, "r", credits_deduction=cost)]).costs == {}


def test_read_ledger_replays_and_folds_in_one_pass_a_torn_tail_aside(tmp_path: Path) -> None:
    lines = [
        Event(EventType.RUN_STARTED, None, {"run_id": "r", "price_usd": 0.1}, ts=T0).encode(),
        Event(EventType.SUBMIT_INTENT, "a", {"model": MODEL, "params": params("x")}, ts=T0 + 1).encode(),
        Event(EventType.SUBMITTED, "a", {"request_id": "ra", "credits_deduction": 0.1}, ts=T0 + 2).encode(),
    ]
    path = tmp_path / "ledger.jsonl"
    path.write_text("\n".join(lines) + '\n{"v":1,"ts":1,"event":"submitted","job":"b","request_id":"rb"')
    log = RequestLog(keep_intents=True)
    replay = read_ledger(path, log)
    assert replay.torn_tail is not None
    assert sorted(replay.jobs) == ["a"]
    assert (sorted(log.requests), log.costs, len(log.intents)) == (["ra"], {"ra": 0.1}, 1)
    again, costs = read_costs(path)  # what status and the report read: the costs alone
    assert (sorted(again.jobs), costs, again.torn_tail) == (["a"], {"ra": 0.1}, replay.torn_tail)


# ---- the tally ----------------------------------------------------------------------------------


def tally(events: list[dict[str, Any]], rows: list[HistoryRow], **kw: Any) -> SpendTally:
    return tally_spend([("out", fold(events))], rows, price_usd=0.1, **kw)


def test_known_requests_are_priced_by_the_history_else_by_the_ledger() -> None:
    events = [
        intent("a", T0),
        submitted("a", T0 + 1, "ra"),
        intent("b", T0),
        submitted("b", T0 + 1, "rb"),
        intent("c", T0),
        submitted("c", T0 + 1, "rc", recovered=True, credits_deduction=0.25),  # not listed: the ledger's
        intent("d", T0),
        submitted("d", T0 + 1, "rd"),  # not listed, no cost anywhere
    ]
    rows = [
        row("ra", "edit a", T0 + 1, cost=0.1),
        row("ra", "edit a", T0 + 1, cost=0.1),  # a second output of the same request: one request
        row("rb", "edit b", T0 + 1, cost=None, model_status="PENDING"),
    ]
    t = tally(events, rows)
    assert (t.known, t.known_priced, t.known_no_cost, t.known_not_listed) == (4, 2, 1, 1)
    assert t.known_cost_usd == pytest.approx(0.35)
    assert (t.duplicates, t.other, t.not_landed) == ((), 0, 0)
    assert t.actual_usd == pytest.approx(0.35)
    assert t.unpriced == 2


def test_a_request_no_ledger_holds_whose_body_a_job_sent_is_paid_twice_and_named_by_the_job() -> None:
    events = [
        intent("a", T0),  # lost: its request was made, nobody heard of it
        intent("a", T0 + 5),
        submitted("a", T0 + 6, "ra2"),
        intent("b", T0),
        submitted("b", T0 + 1, "rb"),
    ]
    rows = [
        row("ra1", "edit a", T0 + 0.5),
        row("ra2", "edit a", T0 + 6),
        row("rb", "edit b", T0 + 1),
        row("rx", "someone else's edit", T0 + 2, cost=0.2),  # the model's other work: not this batch's
        row("ry", "edit b", T0 - 3600),  # b's body, an hour before b was ever sent: not b's
        row("rz", "edit a", T0 + 9, cost=None, model_status=None, body=None),  # not landed yet
    ]
    t = tally(events, rows)
    assert [(d.job_id, d.request_id, d.out_dir, d.cost_usd) for d in t.duplicates] == [
        ("a", "ra1", "out", 0.1)
    ]
    assert (t.known, t.known_priced) == (2, 2)
    assert t.duplicates_cost_usd == pytest.approx(0.1)
    assert (t.other, t.not_landed) == (2, 1)
    assert t.other_cost_usd == pytest.approx(0.3)
    assert t.actual_usd == pytest.approx(0.3)  # a and b once each, and a's duplicate
    assert (t.billable_submits, t.estimate_usd, t.possible_duplicates) == (2, pytest.approx(0.2), 1)


def test_a_request_with_a_jobs_body_that_no_unanswered_post_made_was_sent_elsewhere() -> None:
    """The same jobs run in another directory the same day: their requests carry these bodies,
    but every POST of this ledger heard its answer, so none of them is this ledger's duplicate.
    And a POST that got no answer made one request at most."""
    events = [
        intent("a", T0),
        submitted("a", T0 + 1, "ra"),
        intent("b", T0),  # lost
        intent("b", T0 + 10),
        submitted("b", T0 + 11, "rb"),
    ]
    rows = [
        row("ra", "edit a", T0 + 1),
        row("rb", "edit b", T0 + 11),
        row("a-elsewhere", "edit a", T0 + 30, cost=0.1),
        row("b-lost", "edit b", T0 + 0.5),
        row("b-elsewhere", "edit b", T0 + 31, cost=0.1),
    ]
    t = tally(events, rows)
    assert [(d.job_id, d.request_id) for d in t.duplicates] == [("b", "b-lost")]
    assert (t.elsewhere, t.other, t.possible_duplicates) == (2, 0, 1)
    assert t.elsewhere_cost_usd == pytest.approx(0.2)
    assert t.actual_usd == pytest.approx(0.3)  # elsewhere is not this batch's spend


def test_a_body_two_jobs_send_is_named_by_the_job_whose_post_came_just_before() -> None:
    same = "the same edit"
    events = [
        intent("a", T0, same),
        submitted("a", T0 + 1, "ra"),
        intent("b", T0 + 100, same),  # lost
        intent("b", T0 + 110, same),
        submitted("b", T0 + 111, "rb"),
    ]
    rows = [row("ra", same, T0 + 1), row("rb", same, T0 + 111), row("lost", same, T0 + 100.5)]
    (dup,) = tally(events, rows).duplicates
    assert (dup.job_id, dup.request_id) == ("b", "lost")


def test_a_local_input_is_matched_by_the_url_it_was_uploaded_to() -> None:
    local = params("edit a", input_image="inputs/cat.png")
    sent = ev("submit_intent", "a", T0, model=MODEL, params=local, input_sent=UPLOADED)
    other_upload = params("edit a", input_image="https://files.segmind.example/u/dog.png")
    rows = [
        row("lost", "edit a", T0 + 1, body=params("edit a", input_image=UPLOADED)),
        row("not-ours", "edit a", T0 + 1, body=other_upload),
    ]
    t = tally([sent], rows)
    assert [d.request_id for d in t.duplicates] == ["lost"]
    assert t.other == 1


def test_rows_without_an_id_are_counted_as_not_landed_and_clock_skew_is_allowed() -> None:
    events = [intent("a", T0)]
    rows = [row(None, "edit a", T0), row("early", "edit a", T0 - CLOCK_SKEW_S + 1)]
    t = tally(events, rows)
    assert t.not_landed == 1
    assert [d.request_id for d in t.duplicates] == ["early"]  # inside the skew: still a's


def test_a_request_held_by_two_directories_is_one_request() -> None:
    events = [intent("a", T0), submitted("a", T0 + 1, "ra")]
    t = tally_spend([("x", fold(events)), ("y", fold(events))], [row("ra", "edit a", T0 + 1)], price_usd=0.1)
    assert (t.known, t.known_priced, t.billable_submits) == (1, 1, 1)
    assert t.known_cost_usd == pytest.approx(0.1)


def test_the_estimate_uses_each_runs_price_else_the_given_one() -> None:
    events = [
        intent("a", T0),
        submitted("a", T0 + 1, "ra"),  # before any run_started: the given price
        ev("run_started", None, T0 + 10, run_id="r", price_usd=0.5),
        intent("b", T0 + 11),
        submitted("b", T0 + 12, "rb"),
    ]
    assert tally(events, []).estimate_usd == pytest.approx(0.6)


# ---- the windows --------------------------------------------------------------------------------


def day(text: str) -> date:
    return date.fromisoformat(text)


NOV14 = T0  # 22:13:20Z
DAY = 86400.0


@pytest.mark.parametrize(
    ("spans", "now", "windows"),
    [
        ([(NOV14, NOV14 + 60)], NOV14 + 120, [("2023-11-14", "2023-11-14")]),
        # past midnight (22:13 + 2 h): both days, one window
        ([(NOV14, NOV14 + 7200)], NOV14 + 7200, [("2023-11-14", "2023-11-15")]),
        # 40 days: 31 then 10, and never past today
        (
            [(NOV14, NOV14 + 40 * DAY)],
            NOV14 + 40 * DAY,
            [("2023-11-14", "2023-12-14"), ("2023-12-15", "2023-12-24")],
        ),
        # two runs a month apart: the days between are not asked for
        (
            [(NOV14, NOV14 + 60), (NOV14 + 45 * DAY, NOV14 + 45 * DAY + 60)],
            NOV14 + 46 * DAY,
            [("2023-11-14", "2023-11-14"), ("2023-12-29", "2023-12-29")],
        ),
        # shards of one night: overlapping and touching days merge
        (
            [(NOV14 + DAY, NOV14 + DAY + 60), (NOV14, NOV14 + 60)],
            NOV14 + 2 * DAY,
            [("2023-11-14", "2023-11-15")],
        ),
        # a ledger whose last event is "in the future" (a fast clock): only up to today
        ([(NOV14, NOV14 + 5 * DAY)], NOV14 + 60, [("2023-11-14", "2023-11-14")]),
        ([], NOV14, []),
    ],
)
def test_windows_cover_the_ledgers_dates_in_at_most_31_days_each(
    spans: list[tuple[float, float]], now: float, windows: list[tuple[str, str]]
) -> None:
    got = spend_windows(spans, now)
    assert got == [(day(a), day(b)) for a, b in windows]
    assert all((b - a).days + 1 <= 31 for a, b in got)


def test_the_start_is_widened_by_the_clock_skew() -> None:
    midnight = 1_700_006_400.0  # 2023-11-15T00:00:00Z
    assert spend_windows([(midnight + 10, midnight + 20)], midnight + 30) == [
        (day("2023-11-14"), day("2023-11-15"))
    ]

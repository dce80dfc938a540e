"""The pure rules of reconciling with the request history: which row is an open intent's request,
who holds which request, where to look, and what an expired request's record means."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchflux.ledger import Event, EventType, Replay, replay_lines
from batchflux.ledger.reconcile import (
    CLOCK_SKEW_S,
    Holdings,
    Intent,
    Lookup,
    Verdict,
    Window,
    body_matches,
    candidate,
    expired_outcome,
    input_sent,
    lookup_for,
    match_intents,
    same_value,
    scan_done,
    scan_windows,
)
from batchflux.ledger.resume import Action, Decision, plan_resume
from batchflux.manifest.job import Job

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
MODEL = "flux-kontext-max"
PARAMS: dict[str, Any] = {"prompt": "make it blue", "aspect_ratio": "1:1", "output_format": "png", "seed": 3}
URL_IN = "https://images.example/cat.jpg"
UPLOADED = "https://files.segmind.example/u/abc.jpg"
DATA_URI = "data:image/png;base64,iVBORw0KGgo="
DATA_SHA = "sha256:" + hashlib.sha256(DATA_URI.encode()).hexdigest()


@dataclass(frozen=True)
class R:
    """A history row as the API client gives it (only the attributes matching reads)."""

    request_id: str | None = "r1"
    model_name: str | None = MODEL
    model_status: str | None = "COMPLETED"
    request_body: dict[str, Any] | None = None
    generation_url: str | None = "https://images.example/out/r1.png"
    created_at: float | None = T0 + 1
    updated_at: float | None = T0 + 25
    error: str | None = None
    credits_deduction: float | None = 0.1


def intent(**changes: Any) -> Intent:
    base = Intent(job_id="a", model=MODEL, params=dict(PARAMS), local=False, input_sent=None, at=T0)
    return replace(base, **changes)


def row(body: dict[str, Any] | None = None, **changes: Any) -> R:
    return R(request_body=dict(PARAMS) if body is None else body, **changes)


# ---- what an intent records about the input ------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "sent", "recorded"),
    [
        ({"prompt": "p"}, {"prompt": "p"}, None),
        ({"input_image": URL_IN}, {"input_image": URL_IN}, None),
        ({"input_image": "images/cat.jpg"}, {"input_image": UPLOADED}, UPLOADED),
        ({"input_image": "images/cat.jpg"}, {"input_image": DATA_URI}, DATA_SHA),
    ],
)
def test_input_sent_records_what_the_params_do_not(
    params: dict[str, Any], sent: dict[str, Any], recorded: str | None
) -> None:
    assert input_sent(params, sent) == recorded


# ---- does a body carry the intent's parameters ---------------------------------------------------


LOCAL = {**PARAMS, "input_image": "images/cat.jpg"}


@pytest.mark.parametrize(
    ("the_intent", "body", "matches"),
    [
        (intent(), PARAMS, True),
        (intent(), {**PARAMS, "seed": 3.0}, True),  # a number is a number
        (intent(), {**PARAMS, "seed": "3"}, False),  # text is not
        (intent(), {**PARAMS, "seed": 4}, False),
        (intent(), {k: v for k, v in PARAMS.items() if k != "seed"}, False),
        (intent(), {**PARAMS, "base64": False}, False),  # exactly the keys sent
        (intent(), {**PARAMS, "prompt": "make it blue "}, False),
        (intent(), {**PARAMS, "input_image": URL_IN}, False),  # none was sent
        (intent(params={**PARAMS, "flag": True}), {**PARAMS, "flag": 1}, False),
        (intent(params={**PARAMS, "input_image": URL_IN}), {**PARAMS, "input_image": URL_IN}, True),
        (intent(params={**PARAMS, "input_image": URL_IN}), {**PARAMS, "input_image": UPLOADED}, False),
        (intent(params=LOCAL, local=True, input_sent=UPLOADED), {**PARAMS, "input_image": UPLOADED}, True),
        (intent(params=LOCAL, local=True, input_sent=UPLOADED), {**PARAMS, "input_image": URL_IN}, False),
        (intent(params=LOCAL, local=True), {**PARAMS, "input_image": UPLOADED}, False),  # upload unknown
        (intent(params=LOCAL, local=True), LOCAL, False),
        (
            intent(params=LOCAL, local=True, input_sent=input_sent(LOCAL, {"input_image": DATA_URI})),
            {**PARAMS, "input_image": DATA_URI},
            True,
        ),
        (
            intent(params=LOCAL, local=True, input_sent=input_sent(LOCAL, {"input_image": DATA_URI})),
            {**PARAMS, "input_image": DATA_URI + "AA"},
            False,
        ),
        (
            intent(params=LOCAL, local=True, input_sent=input_sent(LOCAL, {"input_image": DATA_URI})),
            {**PARAMS, "input_image": UPLOADED},  # a server that kept the inline image as a file
            False,
        ),
    ],
)
def test_body_matches(the_intent: Intent, body: dict[str, Any], matches: bool) -> None:
    assert body_matches(the_intent, body) is matches


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (False, False, True),
        ("a", "a", True),
        (None, None, True),
        (None, "", False),
        ([1, {"x": 2}], [1.0, {"x": 2}], True),
        ([1], [1, 2], False),
        ({"x": 1}, {"y": 1}, False),
        (float("nan"), float("nan"), True),
    ],
)
def test_same_value_is_json_equality(a: Any, b: Any, same: bool) -> None:
    assert same_value(a, b) is same


# ---- is a row a candidate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("the_row", "fits"),
    [
        (row(), True),
        (row(created_at=T0 - CLOCK_SKEW_S + 1), True),  # within the clock skew
        (row(created_at=T0 - CLOCK_SKEW_S - 1), False),  # older than the intent: not its request
        (row(created_at=None), False),  # age unknown: could be an older request of the same body
        (row(model_status=None), False),  # not landed
        (R(request_body=None), False),  # not landed
        (row(request_id=None), False),
        (row(model_name="flux-kontext-max-v2"), True),  # the list was asked for a substring
        (row(model_name="FLUX-Kontext-Max"), True),
        (row(model_name="flux-dev"), False),
        (row(model_name=None), True),  # an older server's row: the body decides
        (row(model_status="FAILED"), True),  # a failed request is still the intent's request
        (row(model_status="PENDING"), True),
        (row(request_id="old"), False),  # the request the intent superseded
    ],
)
def test_candidate(the_row: R, fits: bool) -> None:
    assert candidate(intent(superseded="old"), the_row) is fits


# ---- matching a pass of intents ------------------------------------------------------------------


def test_the_row_created_after_the_intent_and_nearest_wins() -> None:
    rows = [
        row(request_id="before", created_at=T0 - 5),
        row(request_id="late", created_at=T0 + 30),
        row(request_id="near", created_at=T0 + 2),
    ]
    assert match_intents([intent()], rows, Holdings())["a"].request_id == "near"
    assert match_intents([intent()], rows[:1], Holdings())["a"].request_id == "before"


def test_no_row_goes_to_two_intents_and_held_rows_to_none() -> None:
    """Four jobs that send the same body (variations with a random seed): each takes its own row."""
    same = [intent(job_id=j, at=T0 + n) for n, j in enumerate("abcd")]
    rows = [row(request_id=f"r{n}", created_at=T0 + n + 0.5) for n in range(4)]
    held = Holdings(frozenset("abcd"), {"r1"})
    found = match_intents(same, rows, held)
    assert {j: r.request_id for j, r in found.items()} == {"a": "r0", "b": "r2", "c": "r3"}
    assert len({r.request_id for r in found.values()}) == len(found)


def test_rows_of_other_prompts_or_bodies_are_never_taken() -> None:
    rows = [row({**PARAMS, "prompt": "other"}, request_id="x"), row({**PARAMS, "seed": 9}, request_id="y")]
    assert match_intents([intent()], rows, Holdings()) == {}


BODIES = st.fixed_dictionaries(
    {"prompt": st.sampled_from(["p", "q"]), "seed": st.integers(0, 2)},
    optional={"aspect_ratio": st.sampled_from(["1:1", "4:3"])},
)


@given(
    st.lists(st.tuples(BODIES, st.floats(0, 100)), min_size=1, max_size=6),
    st.lists(st.tuples(BODIES, st.floats(-100, 200)), max_size=8),
)
def test_matches_are_distinct_and_each_is_a_candidate(
    intents: list[tuple[dict[str, Any], float]], rows: list[tuple[dict[str, Any], float]]
) -> None:
    the_intents = [intent(job_id=f"j{n}", params=p, at=T0 + t) for n, (p, t) in enumerate(intents)]
    the_rows = [row(b, request_id=f"r{n}", created_at=T0 + t) for n, (b, t) in enumerate(rows)]
    found = match_intents(the_intents, the_rows, Holdings())
    assert len({r.request_id for r in found.values()}) == len(found)
    by_job = {i.job_id: i for i in the_intents}
    for job, got in found.items():
        assert candidate(by_job[job], got)
    # An intent left without a row had none to take: every candidate went to another intent.
    taken = {r.request_id for r in found.values()}
    for i in the_intents:
        if i.job_id not in found:
            assert all(r.request_id in taken for r in the_rows if candidate(i, r))


@given(
    BODIES,
    st.dictionaries(
        st.sampled_from(["prompt", "seed", "aspect_ratio", "x"]),
        st.integers(0, 3) | st.text(max_size=2),
        min_size=1,
    ),
)
def test_a_changed_body_never_matches(body: dict[str, Any], change: dict[str, Any]) -> None:  # fmt: skip
    changed = {**body, **change}
    if all(same_value(body.get(k), v) and k in body for k, v in change.items()):
        return  # no change after all
    assert not body_matches(intent(params=body), changed)


# ---- who holds what ------------------------------------------------------------------------------


def job(jid: str, params: dict[str, Any] | None = None) -> Job:
    return Job(
        id=jid,
        index=0,
        model=MODEL,
        params=params or dict(PARAMS),
        output=f"{jid}.png",
        fingerprint="fp-" + jid,
    )


def ledger(*events: tuple[str, str, dict[str, Any]]) -> Any:
    lines = [Event(EventType(kind), jid, data, ts=T0).encode() + "\n" for kind, jid, data in events]
    return replay_lines(lines).jobs


def intent_ev(jid: str, params: dict[str, Any] | None = None) -> tuple[str, str, dict[str, Any]]:
    return (
        "submit_intent",
        jid,
        {"fingerprint": "fp-" + jid, "model": MODEL, "params": params or dict(PARAMS)},
    )


def submitted_ev(jid: str, rid: str) -> tuple[str, str, dict[str, Any]]:
    return ("submitted", jid, {"request_id": rid, "status_url": "s", "response_url": "r", "submitted_at": T0})


def test_holdings_track_only_bodies_that_several_jobs_send() -> None:
    other = {**PARAMS, "seed": 99}
    records = ledger(
        intent_ev("a"), submitted_ev("a", "ra"),
        intent_ev("b"),  # same body as a, open
        intent_ev("c", other), submitted_ev("c", "rc"),
        intent_ev("gone", other), submitted_ev("gone", "rg"),  # no longer in the manifest
    )  # fmt: skip
    held = Holdings.of([job("a"), job("b"), job("c", other), job("d", {**PARAMS, "seed": 5})], records)
    assert held.shared_jobs == {"a", "b", "c"}
    assert held.ids == {"ra", "rc", "rg"}
    held.hold("b", "rb")
    held.hold("d", "rd")  # its body is its own: nobody else can take its rows
    assert held.taken("rb")
    assert not held.taken("rd")


def test_a_changed_jobs_old_request_is_held_under_its_old_body() -> None:
    records = ledger(intent_ev("a", {**PARAMS, "seed": 1}), submitted_ev("a", "old"))
    held = Holdings.of([job("a", {**PARAMS, "seed": 2}), job("b", {**PARAMS, "seed": 1})], records)
    assert held.taken("old")
    assert held.shared_jobs == {"b"}


def test_holdings_accept_parameters_that_do_not_hash() -> None:
    odd = {"prompt": "p", "masks": [1, 2]}
    assert Holdings.of([job("a", odd), job("b", odd)], {}).shared_jobs == {"a", "b"}


def test_an_intent_from_the_ledger() -> None:
    records = ledger(
        intent_ev("a"), submitted_ev("a", "r-old"),
        ("expired", "a", {"request_id": "r-old"}),
        ("submit_intent", "a", {"model": MODEL, "params": LOCAL, "input_sent": UPLOADED}),
    )  # fmt: skip
    rec = records["a"]
    local_job = replace(job("a", LOCAL), local_input=None)
    made = Intent.of(local_job, rec)
    assert (made.input_sent, made.superseded, made.at, made.local) == (UPLOADED, "r-old", T0, False)
    assert rec.open_intent


# ---- where to look -------------------------------------------------------------------------------


DAY = 86400.0


@pytest.mark.parametrize(
    ("times", "now", "windows"),
    [
        ([T0], T0 + 5, [Window(date(2023, 11, 14), date(2023, 11, 14), T0 - CLOCK_SKEW_S)]),
        # an intent near midnight, looked up after it: the request may have been made the next day
        ([T0 + 6000], T0 + 7000, [Window(date(2023, 11, 14), date(2023, 11, 15), T0 + 6000 - CLOCK_SKEW_S)]),
        # ... looked up before it: no request can be from tomorrow
        ([T0 + 6000], T0 + 6005, [Window(date(2023, 11, 14), date(2023, 11, 14), T0 + 6000 - CLOCK_SKEW_S)]),
        # yesterday's intent, looked up today: only yesterday (and the hour after it) matters
        ([T0 - DAY], T0, [Window(date(2023, 11, 13), date(2023, 11, 13), T0 - DAY - CLOCK_SKEW_S)]),
        (
            [T0 - 40 * DAY, T0 - 35 * DAY, T0],
            T0 + 1,
            [
                Window(date(2023, 10, 5), date(2023, 10, 10), T0 - 40 * DAY - CLOCK_SKEW_S),
                Window(date(2023, 11, 14), date(2023, 11, 14), T0 - CLOCK_SKEW_S),
            ],
        ),
        ([], T0, []),
    ],
)
def test_scan_windows(times: list[float], now: float, windows: list[Window]) -> None:
    assert scan_windows(times, now) == windows


@given(st.lists(st.floats(T0 - 400 * DAY, T0), min_size=1, max_size=30))
def test_windows_are_accepted_by_the_server_and_cover_every_intent(times: list[float]) -> None:
    windows = scan_windows(times, T0 + 10)
    for w in windows:
        assert w.from_date <= w.to_date
        assert (w.to_date - w.from_date).days + 1 <= 31
    for t in times:
        day = datetime.fromtimestamp(t, UTC).date()
        assert any(w.since <= t - CLOCK_SKEW_S + 1e-6 and w.from_date <= day <= w.to_date for w in windows)


def test_scan_done_when_a_row_is_older_than_every_intent() -> None:
    assert not scan_done([row(created_at=T0 + 5), row(created_at=None)], T0)
    assert scan_done([row(created_at=T0 + 5), row(created_at=T0 - 1)], T0)


# ---- an expired request's record -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "verdict", "why"),
    [
        (row(), Verdict.FETCH, "completed"),
        (row(model_status="FAILED", error="content blocked", generation_url=None), Verdict.FAIL, "failed"),
        (row(model_status="FAILED", generation_url=None), Verdict.FAIL, "failed"),
        (row(model_status="PENDING", generation_url=None), Verdict.RESUBMIT, "pending"),
        (row(model_status="ARCHIVED"), Verdict.RESUBMIT, "archived"),
        (row(model_status=None), Verdict.RESUBMIT, "not landed"),
        (row(generation_url=None), Verdict.RESUBMIT, "completed without an output URL"),
        (row(updated_at=T0 - 8 * DAY), Verdict.RESUBMIT, "file gone (past 7 days)"),
        (row(updated_at=None, created_at=T0 - 8 * DAY), Verdict.RESUBMIT, "file gone (past 7 days)"),
        (row(request_id="someone-else"), Verdict.RESUBMIT, "a record of another request"),
        (None, Verdict.RESUBMIT, "no record"),
    ],
)
def test_expired_outcome(record: R | None, verdict: Verdict, why: str) -> None:
    outcome = expired_outcome("r1", record, now=T0 + 3 * 3600)
    assert (outcome.verdict, outcome.why) == (verdict, why)
    if verdict is Verdict.FETCH:
        assert outcome.output_url == "https://images.example/out/r1.png"
        assert outcome.cost_usd == 0.1
    if verdict is Verdict.FAIL:
        assert outcome.error == (
            record.error if record is not None and record.error else "FAILED without a reason"
        )


# ---- which resume decisions ask ------------------------------------------------------------------


def test_lookup_for_resume_decisions() -> None:
    records = ledger(
        intent_ev("open"),
        intent_ev("old"), submitted_ev("old", "r-old"),
        intent_ev("done"), submitted_ev("done", "r-done"),
    )  # fmt: skip
    jobs = [replace(job(j), fingerprint="fp-" + j) for j in ("open", "old", "done", "new")]
    plan = plan_resume(jobs, replay_lines([]), now=T0, file_ok=lambda _r: True)
    assert {lookup_for(d) for d in plan.decisions} == {None}
    rep = Replay(jobs=records)
    plan = plan_resume(jobs, rep, now=T0 + 2 * 3600, file_ok=lambda _r: True)
    asked = {d.job.id: lookup_for(d) for d in plan.decisions}
    assert asked == {"open": Lookup.INTENT, "old": Lookup.EXPIRED, "done": Lookup.EXPIRED, "new": None}
    poll = Decision(jobs[1], Action.POLL, "in_flight", records["old"])
    assert lookup_for(poll) is None


def test_records_keep_recovered_ids_costs_and_where_a_result_came_from() -> None:
    records = ledger(
        intent_ev("a"),
        ("submitted", "a", {"request_id": "ra", "status_url": "s", "response_url": "r", "recovered": True}),
        ("result", "a", {"request_id": "ra", "output_url": "u", "via": "history", "credits_deduction": 0.1}),
        intent_ev("b"), submitted_ev("b", "rb"),
        ("failed", "b", {"request_id": "rb", "cause": "moderation", "error": "x", "credits_deduction": 0}),
        intent_ev("c"), submitted_ev("c", "rc"),
        ("result", "c", {"request_id": "rc", "output_url": "https://x/c.png", "credits_deduction": "lots"}),
    )  # fmt: skip
    a, b, c = records["a"], records["b"], records["c"]
    assert (a.recovered, a.result_via, a.credits_deduction) == (True, "history", 0.1)
    assert (b.recovered, b.result_via, b.credits_deduction) == (False, None, 0.0)
    assert (c.recovered, c.result_via, c.credits_deduction) == (False, None, None)
    again = ledger(
        intent_ev("a"), ("submitted", "a", {"request_id": "ra", "recovered": True}), intent_ev("a")
    )
    assert (again["a"].recovered, again["a"].superseded, again["a"].possible_duplicates) == (False, "ra", 1)

"""When a "not found" in the request history may be trusted: from the latest moment the request can
have been created, plus the landing wait — never from the intent."""

from __future__ import annotations

import pytest

from batchflux.ledger import Event, EventType, replay_lines
from batchflux.ledger.landing import Landing, answer_lost, at_resume
from batchflux.ledger.records import RunRecord

T0 = 1_700_000_000.0
WAIT = 30.0


def run(started: float, finished: float | None = None) -> RunRecord:
    return RunRecord(run_id=f"r{started:g}", started_at=started, finished_at=finished)


def test_in_a_run_the_wait_counts_from_the_lost_answer_not_the_intent() -> None:
    # The intent at T0, 429s until its POST at T0 + 60, the answer lost at T0 + 61: a record
    # that lands 1 s late exists from T0 + 62, so a "not found" is trusted from T0 + 91.
    landing = answer_lost(T0 + 61)
    assert landing.trusted_from(WAIT) == T0 + 91
    assert landing.trusted_from(WAIT) > T0 + WAIT  # where the intent-anchored wait used to end


@pytest.mark.parametrize(
    ("runs", "intent_at", "now", "sent_by", "basis"),
    [
        # killed: the POST may have left any time before this run started
        ([run(T0)], T0 + 5, T0 + 500, T0 + 500, "its run was killed"),
        # stopped cleanly after the intent: nothing of it was on the wire after run_finished
        ([run(T0, T0 + 40)], T0 + 5, T0 + 500, T0 + 40, "its run stopped"),
        # the intent's writer is the latest run started before it, not an earlier clean one
        ([run(T0, T0 + 40), run(T0 + 100)], T0 + 105, T0 + 500, T0 + 500, "its run was killed"),
        ([run(T0), run(T0 + 100, T0 + 160)], T0 + 105, T0 + 500, T0 + 160, "its run stopped"),
        # a finish recorded before the intent is another story (a clock step): be conservative
        ([run(T0, T0 + 1)], T0 + 5, T0 + 500, T0 + 500, "its run was killed"),
        # no run recorded at all (a ledger of an older batchflux, or made by hand)
        ([], T0 + 5, T0 + 500, T0 + 500, "its run was killed"),
        # a clock that went backwards since: never before the intent
        ([run(T0)], T0 + 5, T0 + 2, T0 + 5, "its run was killed"),
    ],
)
def test_at_resume_the_wait_counts_from_when_the_post_can_last_have_left(
    runs: list[RunRecord], intent_at: float, now: float, sent_by: float, basis: str
) -> None:
    assert at_resume(intent_at, runs, now) == Landing(sent_by, basis)


def test_runs_from_a_replayed_ledger() -> None:
    lines = [
        Event(EventType.RUN_STARTED, None, {"run_id": "a"}, ts=T0).encode(),
        Event(EventType.SUBMIT_INTENT, "j1", {"params": {}}, ts=T0 + 1).encode(),
        Event(EventType.RUN_FINISHED, None, {"run_id": "a", "exit_code": 130}, ts=T0 + 9).encode(),
        Event(EventType.RUN_STARTED, None, {"run_id": "b"}, ts=T0 + 20).encode(),
        Event(EventType.SUBMIT_INTENT, "j2", {"params": {}}, ts=T0 + 21).encode(),
    ]
    replay = replay_lines(lines)
    now = T0 + 300
    assert at_resume(replay.jobs["j1"].intent_at or 0, replay.runs, now).sent_by == T0 + 9
    assert at_resume(replay.jobs["j2"].intent_at or 0, replay.runs, now).sent_by == now


def test_a_search_is_final_only_if_it_began_once_the_record_can_have_landed() -> None:
    landing = answer_lost(T0)
    assert not landing.final(T0, WAIT)  # the first look, at once
    assert not landing.final(T0 + WAIT - 0.001, WAIT)  # however late such a scan ends
    assert landing.final(T0 + WAIT, WAIT)

"""Properties of the ledger: encode → replay is the direct fold; a ledger cut at any byte replays
the complete lines before the cut; damage anywhere only ever raises LedgerCorrupt; the writer's
set-aside of a torn tail loses no complete event."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchflux.ledger import Event, EventType, LedgerCorrupt, LedgerWriter, Replay, replay_file, replay_lines

JOB_IDS = st.sampled_from(["a", "b", "c", "é-job"])
TEXT = st.text(max_size=12)
JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | TEXT
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
# Any timestamp (a time.time() float; 0 means "now") survives encode and decode exactly.
TS = st.floats(min_value=1e-3, max_value=4e9)
MAYBE_STR = st.none() | TEXT | st.integers(0, 10**6)

FIELDS: dict[EventType, dict[str, st.SearchStrategy[Any]]] = {
    EventType.SUBMIT_INTENT: {
        "fingerprint": st.sampled_from(["fp1", "fp2"]) | MAYBE_STR,
        "model": MAYBE_STR,
        "params": st.dictionaries(TEXT, JSON_VALUES, max_size=4) | JSON_VALUES,
        "input": MAYBE_STR,
        "output": MAYBE_STR,
        "attempt": st.integers(1, 5),
        "input_sent": MAYBE_STR,
        "redo": JSON_SCALARS,
    },
    EventType.SUBMITTED: {
        "request_id": MAYBE_STR,
        "status_url": MAYBE_STR,
        "response_url": MAYBE_STR,
        "submitted_at": TS | JSON_SCALARS,
        "recovered": JSON_SCALARS,
        "credits_deduction": JSON_SCALARS,
    },
    EventType.STATE: {
        "request_id": MAYBE_STR,
        "status": st.sampled_from(["QUEUED", "PROCESSING", "NOT_SUBMITTED"]) | MAYBE_STR,
    },
    EventType.RESULT: {
        "output_url": MAYBE_STR,
        "metrics": JSON_VALUES,
        "completed_at": TS | JSON_SCALARS,
        "latency": TS | JSON_SCALARS,
        "via": MAYBE_STR,
        "credits_deduction": JSON_SCALARS,
    },
    EventType.DOWNLOADED: {"path": MAYBE_STR, "size": JSON_SCALARS, "sha256": MAYBE_STR},
    EventType.FAILED: {
        "cause": st.sampled_from(["moderation", "server"]) | MAYBE_STR,
        "error": MAYBE_STR,
        "http_status": JSON_SCALARS,
        "fingerprint": MAYBE_STR,
        "credits_deduction": JSON_SCALARS,
    },
    EventType.EXPIRED: {"request_id": MAYBE_STR},
    EventType.REVIEWED: {
        "request_id": MAYBE_STR,
        "verdict": st.sampled_from(["approved", "rejected"]) | JSON_SCALARS,
        "note": MAYBE_STR,
    },
    EventType.SET_ASIDE: {"path": MAYBE_STR, "from": MAYBE_STR, "sha256": MAYBE_STR},
    EventType.PAUSED: {"kind": st.sampled_from(["submit", "poll"]) | MAYBE_STR, "until": TS | JSON_SCALARS},
    EventType.RUN_STARTED: {"run_id": st.sampled_from(["r1", "r2"]), "pid": st.integers(1, 99)},
    EventType.RUN_FINISHED: {"run_id": st.sampled_from(["r1", "r2"]), "exit_code": JSON_SCALARS},
}


@st.composite
def events(draw: st.DrawFn) -> Event:
    kind = draw(st.sampled_from(list(EventType)))
    run_event = kind in (EventType.RUN_STARTED, EventType.RUN_FINISHED, EventType.PAUSED)
    job = None if run_event else draw(JOB_IDS)
    fields = FIELDS[kind]
    names = draw(st.lists(st.sampled_from(sorted(fields)), unique=True))
    data = {name: draw(fields[name]) for name in names}
    return Event(kind, job, data, ts=draw(TS))


EVENT_LISTS = st.lists(events(), max_size=25)


def fold(evs: list[Event]) -> Replay:
    rep = Replay()
    for e in evs:
        rep.apply(e)
    return rep


def encoded(evs: list[Event]) -> bytes:
    return b"".join((e.encode() + "\n").encode() for e in evs)


def lines_of(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


@given(EVENT_LISTS)
def test_replay_of_encoded_events_equals_the_direct_fold(evs: list[Event]) -> None:
    rep = replay_lines(lines_of(encoded(evs)))
    direct = fold(evs)
    assert rep.jobs == direct.jobs
    assert rep.runs == direct.runs
    assert rep.lines == len(evs)
    assert rep.torn_tail is None


@given(EVENT_LISTS, st.data())
def test_a_ledger_cut_at_any_byte_replays_the_complete_lines(evs: list[Event], data: st.DataObject) -> None:
    raw = encoded(evs)
    cut = data.draw(st.integers(0, len(raw)))
    rep = replay_lines(lines_of(raw[:cut]))  # never raises: only the last line can be torn
    ends = [0]
    for e in evs:
        ends.append(ends[-1] + len(e.encode().encode()) + 1)
    # An event is kept when its JSON made it entirely, even without its newline.
    kept = sum(1 for end in ends[1:] if end - 1 <= cut)
    expected = fold(evs[:kept])
    assert rep.jobs == expected.jobs
    assert rep.runs == expected.runs
    assert (rep.torn_tail is not None) == (cut not in (ends[kept], ends[kept] - 1) and cut > 0)


@given(EVENT_LISTS.filter(bool), st.data())
def test_damage_anywhere_raises_only_ledger_corrupt(evs: list[Event], data: st.DataObject) -> None:
    raw = bytearray(encoded(evs))
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    located = None
    try:
        replay_lines(lines_of(bytes(raw)))
    except LedgerCorrupt as exc:  # anything else escapes and fails the test
        located = exc.line
    assert located is None or 1 <= located <= bytes(raw).count(b"\n") + 1


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60, deadline=None)
@given(EVENT_LISTS.filter(bool), st.data(), EVENT_LISTS)
def test_writer_sets_aside_a_torn_tail_and_loses_no_complete_event(
    evs: list[Event], data: st.DataObject, more: list[Event]
) -> None:
    raw = encoded(evs)
    cut = data.draw(st.integers(0, len(raw)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.jsonl"
        path.write_bytes(raw[:cut])
        before = replay_file(path)
        with LedgerWriter(path) as w:
            for e in more:
                w.append(e)
        after = replay_file(path)
        assert after.torn_tail is None
        # Everything complete before the crash, then everything appended after it.
        resumed = before
        for e in more:
            resumed.apply(e)
        assert after.jobs == resumed.jobs
        assert after.runs == resumed.runs
        assert after.lines == before.lines - (1 if before.torn_tail else 0) + len(more)

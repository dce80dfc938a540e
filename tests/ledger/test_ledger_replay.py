"""Replay of hand-written ledgers: the fold, torn tails, located corruption, newer versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batchflux.ledger import (
    Event,
    EventType,
    JobState,
    LedgerCorrupt,
    LedgerTooNew,
    replay_file,
    replay_lines,
)

T0 = 1_700_000_000.0


def ev(kind: str, job: str | None = "a", ts: float = T0, **data: Any) -> str:
    return Event(EventType(kind), job, data, ts=ts).encode()


INTENT = ev(
    "submit_intent", fingerprint="fp", model="flux-kontext-max", params={"prompt": "p"}, output="a.png"
)
SUBMITTED = ev(
    "submitted", request_id="r1", status_url="http://x/s", response_url="http://x/r", submitted_at=T0
)
RESULT = ev("result", ts=T0 + 20, request_id="r1", output_url="http://img/1.png", metrics={"t": 1.5})
DOWNLOADED = ev("downloaded", ts=T0 + 21, request_id="r1", path="a.png", size=10, sha256="ab" * 32)


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_full_life_of_a_job() -> None:
    rep = replay_lines(line + "\n" for line in (INTENT, SUBMITTED, RESULT, DOWNLOADED))
    rec = rep.jobs["a"]
    assert rec.state is JobState.DOWNLOADED
    assert (rec.fingerprint, rec.request_id, rec.output_url, rec.path, rec.size) == (
        "fp",
        "r1",
        "http://img/1.png",
        "a.png",
        10,
    )
    assert rec.completed_at == T0 + 20  # no completed_at field: the event's time
    assert rec.downloaded_at == T0 + 21
    assert (rec.first_ts, rec.last_ts) == (T0, T0 + 21)
    assert rec.possible_duplicates == 0
    assert rep.lines == 4
    assert rep.torn_tail is None


def test_runs_started_and_finished() -> None:
    lines = [
        ev("run_started", None, T0, run_id="r1", pid=1),
        ev("run_finished", None, T0 + 5, run_id="r1", exit_code=130),
        ev("run_started", None, T0 + 10, run_id="r2", pid=2),
    ]
    rep = replay_lines(line + "\n" for line in lines)
    assert [(r.run_id, r.finished_at, r.exit_code) for r in rep.runs] == [
        ("r1", T0 + 5, 130),
        ("r2", None, None),
    ]
    assert rep.last_run is rep.runs[1]


def test_ambiguous_intents_are_counted_and_closed_by_answers() -> None:
    not_submitted = ev("state", request_id=None, status="NOT_SUBMITTED", reason="429")
    rejected = ev("failed", request_id=None, cause="invalid", error="bad", http_status=400)
    rep = replay_lines(
        line + "\n"
        for line in (
            INTENT,
            INTENT,  # the first never got its 'submitted': 1 ambiguous
            SUBMITTED,
            INTENT.replace('"a"', '"b"'),
            not_submitted.replace('"a"', '"b"'),  # certainly not created: not ambiguous
            INTENT.replace('"a"', '"c"'),
            rejected.replace('"a"', '"c"'),  # answered with 400: not ambiguous
            INTENT.replace('"a"', '"d"'),  # still open
        )
    )
    jobs = rep.jobs
    assert [(j, jobs[j].state, jobs[j].possible_duplicates) for j in "abcd"] == [
        ("a", JobState.SUBMITTED, 1),
        ("b", JobState.PENDING, 0),
        ("c", JobState.FAILED, 0),
        ("d", JobState.INTENT, 1),
    ]
    assert rep.possible_duplicates == 2


def test_new_intent_resets_the_attempt_but_keeps_counts() -> None:
    expired = ev("expired", request_id="r1")
    rep = replay_lines(line + "\n" for line in (INTENT, SUBMITTED, expired, INTENT))
    rec = rep.jobs["a"]
    assert (rec.state, rec.attempts, rec.expirations, rec.request_id, rec.submitted_at) == (
        JobState.INTENT,
        2,
        1,
        None,
        None,
    )


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(INTENT[:17], id="cut-mid-line"),
        pytest.param("\x00" * 40, id="zeros-after-power-loss"),
        pytest.param('{"v":1,"ts":1', id="cut-in-number"),
        pytest.param(INTENT[:-1] + "\n", id="garbage-with-newline"),
        pytest.param("\n", id="empty-last-line"),
    ],
)
def test_torn_last_line_is_reported_and_ignored(tmp_path: Path, tail: str) -> None:
    path = write(tmp_path, INTENT + "\n" + SUBMITTED + "\n" + tail)
    rep = replay_file(path)
    assert rep.jobs["a"].state is JobState.SUBMITTED
    assert rep.torn_tail is not None
    assert rep.torn_tail.startswith(f"{path}:3: ignored a torn last line")


def test_torn_tail_cut_inside_a_multibyte_character(tmp_path: Path) -> None:
    line = ev("submit_intent", fingerprint="fp", params={"prompt": "café ☕"}, output="a.png").encode()
    cut = line.index("☕".encode()) + 1
    rep = replay_file(write(tmp_path, SUBMITTED.encode() + b"\n" + line[:cut]))
    assert rep.torn_tail is not None
    assert rep.jobs["a"].request_id == "r1"


def test_complete_last_line_without_newline_counts(tmp_path: Path) -> None:
    rep = replay_file(write(tmp_path, INTENT + "\n" + SUBMITTED))
    assert rep.jobs["a"].state is JobState.SUBMITTED
    assert rep.torn_tail is None


@pytest.mark.parametrize(
    ("middle", "reason"),
    [
        pytest.param(INTENT[:30], "Unterminated string", id="cut-line"),
        pytest.param("", "empty line", id="empty-line"),
        pytest.param("[1, 2]", "not a JSON object", id="not-an-object"),
        pytest.param('{"v":1,"event":"submitted","job":"a"}', "missing or mistyped", id="no-ts"),
        pytest.param('{"v":1,"ts":1,"event":"submitted","job":7}', "'job' must be", id="job-not-string"),
    ],
)
def test_corrupt_middle_line_is_located(tmp_path: Path, middle: str, reason: str) -> None:
    path = write(tmp_path, INTENT + "\n" + middle + "\n" + SUBMITTED + "\n")
    before = path.read_bytes()
    with pytest.raises(LedgerCorrupt) as info:
        replay_file(path)
    assert info.value.line == 2
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{path}:2: corrupt ledger line")
    assert path.read_bytes() == before  # never rewritten


def test_invalid_utf8_in_the_middle_is_corruption(tmp_path: Path) -> None:
    bad = INTENT.encode().replace(b'"p"', b'"\xff"')
    path = write(tmp_path, SUBMITTED.encode() + b"\n" + bad + b"\n" + RESULT.encode() + b"\n")
    with pytest.raises(LedgerCorrupt) as info:
        replay_file(path)
    assert info.value.line == 2
    assert "utf-8" in info.value.reason


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(INTENT.replace('"v":1', '"v":2'), id="newer-version"),
        pytest.param(INTENT.replace("submit_intent", "teleported"), id="unknown-event"),
    ],
)
@pytest.mark.parametrize("last", [False, True])
def test_events_from_a_newer_batchflux_are_refused_clearly(tmp_path: Path, line: str, last: bool) -> None:
    text = INTENT + "\n" + line + "\n" + ("" if last else SUBMITTED + "\n")
    with pytest.raises(LedgerTooNew) as info:
        replay_file(write(tmp_path, text))
    assert isinstance(info.value, LedgerCorrupt)
    assert info.value.line == 2
    assert "newer batchflux; upgrade" in str(info.value)


def test_fast_and_slow_paths_agree() -> None:
    # A leading space, a bool timestamp and a trailing \r all leave the fast path; the fold is the same.
    odd = [" " + INTENT, SUBMITTED.replace(f'"ts":{T0}', '"ts":true') + "\r", RESULT]
    plain = [INTENT, SUBMITTED.replace(f'"ts":{T0}', '"ts":1'), RESULT]
    a = replay_lines(line + "\n" for line in odd)
    b = replay_lines(line + "\n" for line in plain)
    assert a.jobs == b.jobs
    assert a.jobs["a"].state is JobState.COMPLETED


def test_mistyped_fields_do_not_break_the_fold() -> None:
    lines = [
        ev("submit_intent", params=["not", "a", "dict"], fingerprint=None, output=3),
        ev("submitted", request_id=12345, submitted_at="soon", status_url=None),
        ev("result", metrics="fast", completed_at=None),
        ev("downloaded", size="big", path=None),
    ]
    rec = replay_lines(line + "\n" for line in lines).jobs["a"]
    assert (rec.params, rec.fingerprint, rec.output, rec.request_id, rec.submitted_at) == (
        {},
        "",
        "3",
        "12345",
        T0,
    )
    assert (rec.metrics, rec.size, rec.path, rec.state) == ({}, None, None, JobState.DOWNLOADED)


def test_encode_refuses_data_that_would_overwrite_the_envelope() -> None:
    with pytest.raises(ValueError, match="envelope"):
        Event(EventType.STATE, "a", {"job": "b"}).encode()


def test_absent_ledger_is_an_empty_replay(tmp_path: Path) -> None:
    rep = replay_file(tmp_path / "ledger.jsonl")
    assert (rep.jobs, rep.runs, rep.lines) == ({}, [], 0)


def test_numbers_out_of_float_range() -> None:
    huge = "9" * 400
    bad_ts = INTENT.replace(f'"ts":{T0}', f'"ts":{huge}')
    with pytest.raises(LedgerCorrupt, match="out of range"):
        replay_lines([bad_ts + "\n", SUBMITTED + "\n"])
    odd = SUBMITTED.replace(f'"submitted_at":{T0}', f'"submitted_at":{huge}')
    rec = replay_lines([INTENT + "\n", odd + "\n"]).jobs["a"]
    assert rec.submitted_at == T0  # unusable: the event's own time stands in


def completed(job: str, model: str, submitted: float, done: float, latency: float | None = None) -> list[str]:
    intent = ev(
        "submit_intent", job, submitted, fingerprint="fp", model=model, params={}, output=f"{job}.png"
    )
    sub = ev("submitted", job, submitted, request_id=f"r-{job}", submitted_at=submitted, status_url="s")
    extra = {} if latency is None else {"latency": latency}
    result = ev("result", job, done, request_id=f"r-{job}", output_url="u", completed_at=done, **extra)
    return [intent, sub, result]


def test_latencies_of_a_model_most_recent_last_estimates_first() -> None:
    lines = [
        *completed("a", "flux-kontext-max", T0, T0 + 30, latency=24.5),  # the schedule's estimate wins
        *completed("b", "flux-kontext-max", T0 + 100, T0 + 126),  # no estimate: submitted to result
        *completed("c", "other-model", T0, T0 + 5),  # another model's
        *completed("d", "flux-kontext-max", T0 + 200, T0 + 222, latency=21.0),
        ev("submit_intent", "e", T0, fingerprint="fp", model="flux-kontext-max", params={}, output="e.png"),
    ]
    rep = replay_lines(line + "\n" for line in lines)
    assert rep.latencies("flux-kontext-max", 10) == [24.5, 26.0, 21.0]
    assert rep.latencies("flux-kontext-max", 2) == [26.0, 21.0]
    assert rep.latencies("other-model", 10) == [5.0]
    assert rep.latencies("flux-kontext-max", 0) == []


def test_pauses_keep_the_latest_end_of_each_kind() -> None:
    def paused(ts: float, kind: object, until: float) -> str:
        return Event(EventType.PAUSED, None, {"kind": kind, "until": until}, ts=ts).encode()

    lines = [
        paused(T0, "submit", T0 + 60),
        paused(T0 + 1, "poll", T0 + 30),
        paused(T0 + 2, "submit", T0 + 40),  # ends earlier than the first: 60 kept
        paused(T0 + 3, 7, T0 + 90),  # mistyped: ignored
    ]
    assert replay_lines(line + "\n" for line in lines).pauses == {"submit": T0 + 60, "poll": T0 + 30}

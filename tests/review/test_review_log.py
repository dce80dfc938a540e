"""The review log: verdicts as ``reviewed`` events in ``OUT/reviews.jsonl``, merged into the replay.

A verdict belongs to the image it was given for: a job whose request changed has none.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from reviewkit import run_once, write_manifest

from batchflux.emulator import Emulator, EmulatorConfig
from batchflux.files.layout import REVIEWS_FILENAME
from batchflux.ledger import Event, EventType, JobState, replay_lines
from batchflux.ledger.replay import Replay
from batchflux.ledger.reviews import append_reviews, merge_reviews, review_event
from batchflux.run.exitcodes import ExitCode


def ev(kind: EventType, job: str, ts: float, **data: object) -> str:
    return Event(kind, job, dict(data), ts=ts).encode() + "\n"


def downloaded(job: str, request_id: str, t0: float = 1.0) -> list[str]:
    return [
        ev(EventType.SUBMIT_INTENT, job, t0, fingerprint="f", model="m", params={}, output=f"{job}.png"),
        ev(EventType.SUBMITTED, job, t0 + 1, request_id=request_id, status_url="s", response_url="r"),
        ev(EventType.RESULT, job, t0 + 2, request_id=request_id, output_url="u", metrics={}),
        ev(EventType.DOWNLOADED, job, t0 + 3, request_id=request_id, path=f"{job}.png", size=1, sha256="x"),
    ]  # fmt: skip


def replay_with(tmp_path: Path, ledger: list[str], reviews: list[Event]) -> Replay:
    replay = replay_lines(ledger)
    append_reviews(tmp_path, reviews)
    merge_reviews(replay, tmp_path)
    return replay


def test_a_verdict_counts_for_the_image_it_was_given_for(tmp_path: Path) -> None:
    replay = replay_with(
        tmp_path,
        downloaded("a", "r1") + downloaded("b", "r2"),
        [review_event("a", "r1", "rejected", "bottle changed shape"), review_event("b", "r2", "approved")],
    )
    a, b = replay.jobs["a"], replay.jobs["b"]
    assert a.verdict is not None
    assert (a.verdict.verdict, a.verdict.note) == ("rejected", "bottle changed shape")
    assert b.verdict is not None
    assert b.verdict.verdict == "approved"
    assert a.last_ts == 4.0, "a review says nothing of the job's progress"


def test_a_new_image_loses_the_verdict(tmp_path: Path) -> None:
    ledger = downloaded("a", "r1") + downloaded("a", "r9", t0=10.0)
    replay = replay_with(tmp_path, ledger, [review_event("a", "r1", "rejected")])
    rec = replay.jobs["a"]
    assert rec.state is JobState.DOWNLOADED
    assert rec.request_id == "r9"
    assert rec.review is not None
    assert rec.verdict is None


def test_a_job_in_flight_again_has_no_verdict_until_its_new_image_is_reviewed(tmp_path: Path) -> None:
    ledger = [
        *downloaded("a", "r1"),
        ev(EventType.SUBMIT_INTENT, "a", 20.0, fingerprint="f", model="m", params={}, output="a.png"),
    ]
    replay = replay_with(tmp_path, ledger, [review_event("a", "r1", "approved")])
    assert replay.jobs["a"].verdict is None


def test_the_latest_verdict_wins_and_clearing_leaves_none(tmp_path: Path) -> None:
    reviews = [review_event("a", "r1", "approved"), review_event("a", "r1", "rejected", "no")]
    replay = replay_with(tmp_path, downloaded("a", "r1"), reviews)
    verdict = replay.jobs["a"].verdict
    assert verdict is not None
    assert verdict.verdict == "rejected"
    append_reviews(tmp_path, [review_event("a", "r1", None)])
    replay = replay_lines(downloaded("a", "r1"))
    merge_reviews(replay, tmp_path)
    assert replay.jobs["a"].verdict is None


def test_a_review_of_a_job_the_ledger_does_not_know_is_left_out(tmp_path: Path) -> None:
    replay = replay_with(tmp_path, downloaded("a", "r1"), [review_event("ghost", "r0", "approved")])
    assert set(replay.jobs) == {"a"}


def test_a_torn_last_line_is_ignored_and_repaired_before_the_next_append(tmp_path: Path) -> None:
    append_reviews(tmp_path, [review_event("a", "r1", "approved")])
    log = tmp_path / REVIEWS_FILENAME
    with log.open("ab") as fh:
        fh.write(b'{"v":1,"ts":5.0,"event":"reviewed","job":"a","verd')
    replay = replay_lines(downloaded("a", "r1"))
    merge_reviews(replay, tmp_path)
    assert replay.jobs["a"].verdict is not None
    append_reviews(tmp_path, [review_event("a", "r1", "rejected")])
    assert log.read_bytes().count(b"\n") == 2
    replay = replay_lines(downloaded("a", "r1"))
    assert merge_reviews(replay, tmp_path) == 2


def test_an_unreadable_line_is_skipped_with_a_warning_and_the_rest_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = review_event("a", "r1", "approved").encode()
    newer = '{"v":1,"ts":2.0,"event":"reviewed_by_robot","job":"a"}'
    (tmp_path / REVIEWS_FILENAME).write_text(f"garbage\n{newer}\n{good}\n")
    replay = replay_lines(downloaded("a", "r1"))
    assert merge_reviews(replay, tmp_path) == 1
    verdict = replay.jobs["a"].verdict
    assert verdict is not None
    assert verdict.verdict == "approved"
    assert "reviews.jsonl:1: skipped" in caplog.text
    assert "reviews.jsonl:2: skipped" in caplog.text


def test_a_verdict_other_than_approved_or_rejected_is_refused() -> None:
    with pytest.raises(ValueError, match="verdict"):
        review_event("a", "r1", "maybe")


def _append_many(out_dir: str, worker: int) -> None:
    for i in range(200):
        append_reviews(Path(out_dir), [review_event(f"j{worker}-{i}", "r", "approved", "x" * 500)])


def test_reviewers_in_several_processes_never_interleave_lines(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    lines = (tmp_path / REVIEWS_FILENAME).read_bytes().splitlines()
    assert len(lines) == 600
    jobs = {Event.decode(line.decode()).job for line in lines}
    assert len(jobs) == 600


async def test_a_run_goes_on_past_a_damaged_review_log(tmp_path: Path) -> None:
    write_manifest(tmp_path, [("a", "make it blue")])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / REVIEWS_FILENAME).write_text("garbage\n{}\n")
    async with Emulator(EmulatorConfig(latency_mean=0.02, latency_sd=0.0)) as emu:
        result = await run_once(tmp_path, emu)
        assert result.exit_code == ExitCode.OK
        redo = await run_once(tmp_path, emu, redo_rejected=True)
    assert redo.exit_code == ExitCode.OK
    assert redo.summary is not None
    assert redo.summary.reviews == {"approved": 0, "rejected": 0, "unreviewed": 1}
    assert (tmp_path / "out" / "results.jsonl").is_file()

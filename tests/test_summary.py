"""summary.json: round trip, defaults, forward compatibility, atomic replacement."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchflux import __version__
from batchflux.run.summary import (
    OUTCOMES,
    SUMMARY_FILENAME,
    FailedJob,
    RunSummary,
    atomic_write_text,
    iso_utc,
    parse_iso,
    read_summary,
    write_summary,
)


def make_summary(**overrides: object) -> RunSummary:
    values: dict[str, object] = {
        "run_id": "r-1",
        "manifest": "catalog.yaml",
        "out_dir": "out/catalog",
        "started_at": "2026-11-25T02:30:00Z",
        "finished_at": "2026-11-25T02:41:40Z",
        "wall_s": 700.25,
        "exit_code": 1,
        "jobs": 10,
        "counts": {"done": 7, "failed": 2, "pending": 1},
        "skipped": 3,
        "api_calls": {"submit": 8, "status": 12, "result": 7, "download": 7},
        "rate_limited": 2,
        "retries": 3,
        "possible_duplicates": 1,
        "estimated_spend_usd": 0.8,
        "failed_jobs": (
            FailedJob("a", "moderation", "content blocked", 422, "req-a"),
            FailedJob("b", "invalid", "bad aspect_ratio", 400),
        ),
    }
    values.update(overrides)
    return RunSummary(**values)  # type: ignore[arg-type]


def test_json_round_trip_and_shape() -> None:
    summary = make_summary(shard="1/4", stop_reason="max-jobs")
    data = json.loads(summary.to_json())
    assert next(iter(data)) == "schema"
    assert list(data)[-1] == "failed_jobs"
    assert data["schema"] == 1
    assert data["version"] == __version__
    assert data["counts"] == {"done": 7, "failed": 2, "in_flight": 0, "pending": 1}  # every outcome present
    assert data["failures_by_cause"] == {"invalid": 1, "moderation": 1}
    assert data["failed_jobs"][0] == {
        "id": "a",
        "cause": "moderation",
        "error": "content blocked",
        "http_status": 422,
        "request_id": "req-a",
        "run_id": None,
    }
    assert data["shard"] == "1/4"
    assert data["interrupted"] is False
    assert make_summary(estimated_spend_usd=0.1 * 3, wall_s=1 / 3).to_dict()["estimated_spend_usd"] == 0.3
    assert make_summary(wall_s=1 / 3).wall_s == 0.333
    assert summary.counts == data["counts"]
    assert RunSummary.from_json(summary.to_json()) == summary


def test_unknown_keys_from_a_newer_version_are_ignored() -> None:
    data = make_summary().to_dict()
    data["something_new"] = {"x": 1}
    data["failed_jobs"][0]["new_field"] = True
    assert RunSummary.from_dict(data) == make_summary()


@pytest.mark.parametrize("text", ["[]", '{"run_id": "x"}', "not json"])
def test_not_a_summary(text: str) -> None:
    with pytest.raises(ValueError, match=r"summary|Expecting"):
        RunSummary.from_json(text)


def test_timestamps() -> None:
    summary = make_summary()
    assert summary.finished_ts - summary.started_ts == 700
    assert iso_utc(parse_iso("2026-11-25T02:30:00Z")) == "2026-11-25T02:30:00Z"
    assert parse_iso("2026-11-25T03:30:00+01:00") == parse_iso("2026-11-25T02:30:00")


def test_write_read_replace(tmp_path: Path) -> None:
    assert read_summary(tmp_path) is None
    first = make_summary()
    path = write_summary(tmp_path, first)
    assert path == tmp_path / SUMMARY_FILENAME
    assert read_summary(tmp_path) == first
    with path.open(encoding="utf-8") as old_reader:  # a reader of the old file keeps a whole file
        second = make_summary(run_id="r-2", exit_code=0, interrupted=True)
        write_summary(tmp_path, second)
        assert json.loads(old_reader.read())["run_id"] == "r-1"
    assert read_summary(tmp_path) == second
    assert sorted(p.name for p in tmp_path.iterdir()) == [SUMMARY_FILENAME]  # no temp file left


def test_atomic_write_sets_a_readable_mode_and_cleans_up_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.prom"
    atomic_write_text(target, "a 1\n")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert target.read_text() == "a 1\n"
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "\udcff")  # a lone surrogate cannot be written as UTF-8
    assert target.read_text() == "a 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.prom"]


def test_unreadable_summary_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / SUMMARY_FILENAME).write_text("{torn")
    with pytest.raises(ValueError, match="Expecting"):
        read_summary(tmp_path)


_text = st.text(max_size=20)
_counts = st.dictionaries(st.sampled_from([*OUTCOMES, "other"]), st.integers(0, 10**6))


@given(
    counts=_counts,
    calls=st.dictionaries(_text, st.integers(0, 10**6), max_size=5),
    failed=st.lists(st.builds(FailedJob, _text, _text, _text, st.none() | st.integers(100, 599)), max_size=5),
    wall=st.floats(0, 1e7, allow_nan=False),
    shard=st.none() | st.just("3/8"),
)
def test_round_trip_property(
    counts: dict[str, int], calls: dict[str, int], failed: list[FailedJob], wall: float, shard: str | None
) -> None:
    summary = make_summary(
        counts=counts, api_calls=calls, failed_jobs=tuple(failed), wall_s=wall, shard=shard
    )
    assert RunSummary.from_json(summary.to_json()) == summary

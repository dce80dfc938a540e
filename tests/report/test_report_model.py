"""The figures the header shows, folded from ledgers and summaries."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from batchflux.ledger import LEDGER_FILENAME, Event, EventType, LedgerWriter
from batchflux.report import write_report
from batchflux.report.build import read_run_dir
from batchflux.report.figures import STATUS_ORDER, peak_in_window
from batchflux.report.model import build_model

T0 = 1_760_000_000.0


def mixed(spec: Any) -> list[Any]:
    return [
        spec("a"),
        spec("b"),
        spec("c", outcome="failed", cause="moderation"),
        spec("d", outcome="failed", cause="invalid", http_status=400),
        spec("e", outcome="failed", cause="moderation"),
        spec("f", outcome="expired"),
        spec("g", outcome="in_flight"),
        spec("h", outcome="completed"),
        spec("i", outcome="intent"),
    ]


def test_every_ledger_state_has_a_status_the_header_and_filters_list(
    tmp_path: Path, fabricate: Callable[..., Path], spec: Any
) -> None:
    out = fabricate(tmp_path / "out", [*mixed(spec), spec("j", outcome="not_submitted")])
    model = build_model([read_run_dir(out)])
    assert {r.status for r in model.rows} <= set(STATUS_ORDER)
    assert sum(n for _, n in model.figures.counts) == model.figures.total == 10
    assert dict(model.figures.counts)["not submitted"] == 1


def test_counts_causes_spend_and_duplicates(
    tmp_path: Path, fabricate: Callable[..., Path], spec: Any
) -> None:
    out = fabricate(tmp_path / "out", mixed(spec))
    model = build_model([read_run_dir(out)])
    f = model.figures
    assert f.total == 9
    assert dict(f.counts) == {
        "done": 2, "failed": 3, "expired": 1, "not downloaded": 1, "in flight": 1, "unconfirmed": 1,
    }  # fmt: skip
    assert f.failures_by_cause == (("moderation", 2), ("invalid", 1))
    assert f.possible_duplicates == 1  # the intent that never got its 'submitted'
    # Billed as the ledger sees it: a, b, h (results), f (expired: it ran), i (may have been accepted).
    assert f.spend_usd == pytest.approx(5 * 0.10)
    assert f.spend_summary_usd is None
    assert f.api_calls is None
    assert f.rate_limited is None
    assert f.submits == 9
    assert f.wall_s == pytest.approx(9 * 0.5 + 3.0)
    assert model.title == "catalog.yaml"
    assert f.inference_median_s is not None
    assert f.turnaround_median_s == pytest.approx(1.95)


def test_summary_fills_in_what_only_the_engine_counted(
    tmp_path: Path, fabricate: Callable[..., Path], spec: Any
) -> None:
    out = fabricate(tmp_path / "out", [spec("a"), spec("b")])
    summary = {"wall_s": 99.0, "api_calls": {"submit": 2, "status": 3}, "rate_limited": 4,
               "estimated_spend_usd": 0.3, "possible_duplicates": 1, "rpm": 50, "retries": 6,
               "stop_reason": "credits", "learned_rate": "60/6s"}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary))
    f = build_model([read_run_dir(out)]).figures
    assert (f.api_calls, f.rate_limited, f.retries, f.rpm) == (5, 4, 6, 50.0)
    assert f.spend_usd == pytest.approx(0.2), "the ledger's billed requests"
    assert f.spend_summary_usd == pytest.approx(0.3), "the last run's own estimate, shown beside it"
    assert f.stopped == ("credits",)
    page = write_report([out]).read_text(encoding="utf-8")
    assert "the last run stopped early (credits)" in page
    assert "summary.json says $0.30" in page
    assert f.learned_rate == "60/6s"
    assert "quota learned" in page
    assert f.possible_duplicates == 1
    assert f.wall_s == pytest.approx(2 * 0.5 + 3.0), "the ledger's runs, not only the last run's summary"


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_a_broken_summary_is_ignored(
    tmp_path: Path, fabricate: Callable[..., Path], spec: Any, content: str
) -> None:
    out = fabricate(tmp_path / "out", [spec("a")])
    (out / "summary.json").write_text(content)
    f = build_model([read_run_dir(out)]).figures
    assert f.api_calls is None
    assert f.total == 1


def test_a_crashed_run_then_a_resume_add_up(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with LedgerWriter(out / LEDGER_FILENAME) as w:
        w.append(Event(EventType.RUN_STARTED, data={"run_id": "r1"}, ts=T0))
        w.append(
            Event(EventType.SUBMIT_INTENT, "a", {"params": {"prompt": "p"}, "output": "a.png"}, ts=T0 + 10)
        )
        # crash: no run_finished; the next run starts 100 s later
        w.append(Event(EventType.RUN_STARTED, data={"run_id": "r2"}, ts=T0 + 110))
        w.append(
            Event(EventType.SUBMIT_INTENT, "a", {"params": {"prompt": "p"}, "output": "a.png"}, ts=T0 + 111)
        )
        w.append(Event(EventType.RUN_FINISHED, data={"run_id": "r2", "exit_code": 0}, ts=T0 + 130))
    model = build_model([read_run_dir(out)])
    assert model.figures.runs == 2
    assert model.figures.wall_s == pytest.approx(110 + 20)
    assert model.timeline.run_starts == (0.0, 110.0)
    assert model.figures.possible_duplicates == 2  # the first intent, and the still-open second one


def test_merged_shards_keep_jobs_apart(tmp_path: Path, fabricate: Callable[..., Path], spec: Any) -> None:
    one = fabricate(tmp_path / "shard-0", [spec("a"), spec("b", outcome="failed")])
    two = fabricate(tmp_path / "shard-1", [spec("a"), spec("c")])
    model = build_model([read_run_dir(one), read_run_dir(two)])
    assert [r.key for r in model.rows] == ["shard-0/a", "shard-0/b", "shard-1/a", "shard-1/c"]
    assert {r.shard for r in model.rows} == {"shard-0", "shard-1"}
    assert dict(model.figures.counts) == {"done": 3, "failed": 1}
    assert model.figures.wall_s == pytest.approx(2 * 0.5 + 3.0), "shards run side by side: the longest"
    assert model.figures.peak_submits_60s == 4


def test_paths_inputs_and_urls(tmp_path: Path, fabricate: Callable[..., Path], spec: Any) -> None:
    out = fabricate(tmp_path / "out", [spec("a"), spec("r", input_url="https://example.com/x.png")])
    rows = {r.job_id: r for r in build_model([read_run_dir(out)]).rows}
    assert rows["a"].input_path is not None
    assert rows["a"].input_path.is_file()
    assert rows["a"].output_path == out / "a.png"
    assert rows["r"].input_path is None
    assert rows["r"].input_url == "https://example.com/x.png"


def brute_peak(times: list[float], window: float) -> int:
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


@given(st.lists(st.floats(0, 600, allow_nan=False).map(lambda x: round(x, 1)), max_size=80))
@example([0.3, 60.3])  # 60.3 - 60.0 rounds below 0.3: the window edge must be compared by addition
def test_peak_in_window_matches_brute_force(times: list[float]) -> None:
    times.sort()
    assert peak_in_window(times, 60.0) == brute_peak(times, 60.0)


def test_peak_in_window_table() -> None:
    assert peak_in_window([], 60) == 0
    assert peak_in_window([0, 59.9, 60], 60) == 2
    assert peak_in_window([0, 1, 2, 3], 60) == 4


def test_odd_numbers_in_the_ledger_do_not_break_the_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with LedgerWriter(out / LEDGER_FILENAME) as w:
        w.append(
            Event(EventType.SUBMIT_INTENT, "a", {"params": {"prompt": "p", "seed": float("nan")}}, ts=T0)
        )
        w.append(Event(EventType.SUBMITTED, "a", {"request_id": "r", "submitted_at": T0}, ts=T0))
        w.append(
            Event(
                EventType.RESULT,
                "a",
                {"metrics": {"inference_time": float("inf")}, "completed_at": T0},
                ts=T0,
            )
        )
    model = build_model([read_run_dir(out)])
    assert model.rows[0].inference_s is None
    assert model.figures.inference_median_s is None
    page = write_report([out]).read_text(encoding="utf-8")
    assert '["seed","NaN"]' in page

"""The emulator's pure parts, table-driven: schedule, quota windows, credits, sizes, data URLs, config."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchflux.emulator import EmulatorConfig
from batchflux.emulator.account import Account
from batchflux.emulator.images import label_for, output_ext, output_size
from batchflux.emulator.jobs import COMPLETED, FAILED, PROCESSING, QUEUED, JobRecord
from batchflux.emulator.media import parse_data_url
from batchflux.emulator.quota import BusyRefusals, FixedWindowQuota, SlidingWindowQuota
from batchflux.emulator.schedule import ActiveCounter, Slot, WorkerPool
from batchflux.emulator.wire import iso_utc


def test_worker_pool_is_fifo_over_slots() -> None:
    pool = WorkerPool(2)
    a = pool.assign(0.0, 1.0)
    b = pool.assign(0.0, 3.0)
    c = pool.assign(0.5, 1.0)  # waits for a's slot
    d = pool.assign(0.6, 1.0)  # waits for c's slot (free at 2.0), before b's (3.0)
    assert (a.started, a.finished) == (0.0, 1.0)
    assert (b.started, b.finished) == (0.0, 3.0)
    assert (c.started, c.finished) == (1.0, 2.0)
    assert (d.started, d.finished) == (2.0, 3.0)


def test_worker_pool_resize() -> None:
    pool = WorkerPool(1)
    pool.assign(0.0, 10.0)
    pool.resize(2)
    assert pool.assign(1.0, 1.0).started == 1.0  # the new slot is idle
    pool.resize(1)  # keeps the slot that frees last (10.0)
    assert pool.workers == 1
    assert pool.assign(2.0, 1.0).started == 10.0


@given(st.lists(st.tuples(st.floats(0, 5), st.floats(0.01, 3)), max_size=40), st.integers(1, 4))
def test_worker_pool_never_runs_more_than_its_slots(jobs: list[tuple[float, float]], workers: int) -> None:
    pool = WorkerPool(workers)
    slots = [pool.assign(at, lat) for at, lat in sorted(jobs)]
    for s in slots:
        assert s.started >= s.submitted
        running = sum(1 for o in slots if o.started <= s.started < o.finished)
        assert running <= workers


def test_active_counter_peak() -> None:
    active = ActiveCounter()
    assert active.add(0.0, 2.0) == 1
    assert active.add(1.0, 3.0) == 2
    assert active.add(2.5, 4.0) == 2  # the first finished at 2.0
    assert active.peak == 2
    assert active.active(10.0) == 0


@pytest.mark.parametrize(
    ("now", "state"),
    [
        (0.0, QUEUED),
        (0.99, QUEUED),
        (1.0, PROCESSING),
        (2.99, PROCESSING),
        (3.0, COMPLETED),
        (99.0, COMPLETED),
    ],
)
def test_record_state_follows_the_clock(now: float, state: str) -> None:
    record = JobRecord("r", "k", "m", {}, "d", "png", Slot(0.0, 1.0, 3.0), None)
    assert record.state(now) == state


def test_failed_record_bodies_are_422_after_finishing_only() -> None:
    record = JobRecord("r", "k", "m", {}, "d", "png", Slot(0.0, 0.0, 1.0), "content blocked: x")
    assert record.status_body(0.5) == (
        200,
        {"status": PROCESSING, "request_id": "r", "metrics": {"queue_time": 0.0}},
    )
    code, body = record.result_body(1.0, "http://x/media/r.png")
    assert code == 422
    assert body["status"] == FAILED
    assert body["error"] == "content blocked: x"
    assert "output" not in body


def test_fixed_window_quota() -> None:
    quota = FixedWindowQuota(limit=2, window=10.0, origin=100.0)
    assert quota.acquire("a", 100.0).allowed
    assert quota.acquire("a", 105.0).allowed
    refused = quota.acquire("a", 109.9)
    assert not refused.allowed
    assert refused.reset_at == 110.0
    assert quota.acquire("b", 109.9).allowed  # per key
    assert quota.acquire("a", 110.0).allowed  # a new window
    assert quota.acquire("a", 119.0).reset_at == 120.0
    assert not quota.acquire("a", 119.5).allowed
    quota.reconfigure(None, 10.0)
    assert quota.acquire("a", 119.6).allowed


def test_sliding_window_quota_frees_one_slot_per_earlier_request() -> None:
    quota = SlidingWindowQuota(limit=2, window=10.0)
    assert quota.acquire("a", 100.0).allowed
    assert quota.acquire("a", 104.0).allowed
    refused = quota.acquire("a", 105.0)
    assert (refused.allowed, refused.reset_at) == (False, 110.0)  # the first request's slot frees
    assert quota.acquire("b", 105.0).allowed  # per key
    assert quota.acquire("a", 110.0).allowed  # that slot, and only that one
    refused = quota.acquire("a", 110.5)
    assert (refused.allowed, refused.reset_at) == (False, 114.0)  # the next frees at its own time
    quota.reconfigure(None, 10.0)
    assert quota.acquire("a", 110.6).allowed


def test_busy_refusals_answer_one_submit_in_n_whatever_the_rate() -> None:
    busy = BusyRefusals(every=3, reset_s=1.2)
    decisions = [busy.refuse(float(t)) for t in range(7)]
    assert [d is None for d in decisions] == [True, True, False, True, True, False, True]
    refused = decisions[2]
    assert refused is not None
    assert (refused.allowed, refused.reset_at) == (False, 3.2)
    assert BusyRefusals(every=None, reset_s=1.2).refuse(0.0) is None


def test_account_refunds_land_when_due() -> None:
    account = Account(1.0)
    account.charge(0.4)
    account.refund_at(5.0, 0.4)
    assert account.balance(4.9) == pytest.approx(0.6)
    assert not account.can_pay(0.7, 4.9)
    assert account.balance(5.0) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("ratio", "input_size", "size"),
    [
        ("16:9", None, (256, 144)),
        ("9:16", None, (144, 256)),
        ("1:1", None, (256, 256)),
        ("21:9", None, (256, 110)),
        ("2:3", None, (171, 256)),
        ("match_input_image", (300, 200), (256, 171)),
        ("match_input_image", (100, 400), (64, 256)),
        ("match_input_image", None, (256, 144)),
        ("bogus", None, (256, 144)),
        (None, None, (256, 144)),
    ],
)
def test_output_size(ratio: str | None, input_size: tuple[int, int] | None, size: tuple[int, int]) -> None:
    assert output_size(ratio, 256, input_size) == size


def test_output_ext_and_label() -> None:
    assert output_ext("jpg") == "jpg"
    assert output_ext("png") == "png"
    assert output_ext(None) == "png"
    assert label_for("make  the cat\nwear a tall hat please") == "make the cat wear a"
    assert label_for("café ☕") == "caf? ?"


def test_parse_data_url() -> None:
    payload = base64.b64encode(b"\x89PNG rest").decode()
    parsed = parse_data_url(f"data:image/png;base64,{payload}")
    assert parsed is not None
    assert (parsed.mime, parsed.data) == ("image/png", b"\x89PNG rest")
    assert parse_data_url("data:image/png;base64,@@@") is None
    assert parse_data_url("http://x/y.png") is None
    plain = parse_data_url("data:,hello%20world")
    assert plain is not None
    assert plain.data == b"hello world"


def test_iso_utc_rounds_up_to_the_millisecond() -> None:
    assert iso_utc(0.0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1.0001) == "1970-01-01T00:00:01.001Z"


@pytest.mark.parametrize(
    "changes",
    [
        {"workers": 0},
        {"rpm": 0},
        {"faults": {"boom": 0.1}},
        {"faults": {"500": 1.5}},
        {"faults": {"500": 0.6, "502": 0.6}},
        {"fault_endpoints": frozenset({"nowhere"})},
        {"invalid_params_at": "later"},
        {"keys": ()},
        {"window_s": 0},
        {"latency_mean": float("nan")},
        {"history_delay_s": -1.0},
        {"submit_hold_s": -1.0},
        {"history_outage": "418"},
        {"media_retention_s": 0},
    ],
)
def test_config_rejects_nonsense(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="invalid emulator config"):
        EmulatorConfig(**changes)  # type: ignore[arg-type]


def test_config_faults_are_read_only() -> None:
    source = {"500": 0.1}
    cfg = EmulatorConfig(faults=source)
    source["500"] = 0.9
    assert cfg.faults["500"] == 0.1
    with pytest.raises(TypeError):
        cfg.faults["500"] = 0.5  # type: ignore[index]

"""Result rows from records and jobs (pure), and how they are written: the stable columns, the status
and cost of each ledger state, shards merged, and a CSV a spreadsheet opens as text."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from batchflux.ledger import EventType, JobRecord, LedgerWriter, Replay
from batchflux.ledger.events import Event
from batchflux.manifest.job import Job
from batchflux.run.export import read_run_dir
from batchflux.run.results import (
    Known,
    columns,
    cost_of,
    manifest_row,
    merge,
    param_names,
    result_rows,
    status_of,
)
from batchflux.run.results_out import (
    atomic_text,
    csv_cell,
    image_dims,
    jpeg_size,
    png_size,
    write_csv,
    write_jsonl,
)

E = EventType
T0 = 1_800_000_000.0


def no_dims(out_dir: str, output: str) -> tuple[int, int] | None:
    return None


def job(job_id: str, fingerprint: str = "fp", **params: Any) -> Job:
    params.setdefault("prompt", f"edit {job_id}")
    return Job(job_id, 0, "flux-kontext-max", params, f"{job_id}.png", fingerprint)


def record(job_id: str, *events: tuple[EventType, dict[str, Any]], fingerprint: str = "fp") -> JobRecord:
    rec = JobRecord(job_id)
    for n, (kind, data) in enumerate(events):
        if kind is E.SUBMIT_INTENT:
            data = {"fingerprint": fingerprint, "model": "flux-kontext-max", "params": {"prompt": "p"},
                    "output": f"{job_id}.png", **data}  # fmt: skip
        rec.apply_fields(kind, T0 + n, data)
    return rec


INTENT = (E.SUBMIT_INTENT, {})
SUBMITTED = (
    E.SUBMITTED,
    {"request_id": "r1", "status_url": "s", "response_url": "u", "submitted_at": T0 + 1},
)
RESULT = (E.RESULT, {"request_id": "r1", "output_url": "o", "metrics": {"inference_time": 2.5},
                     "completed_at": T0 + 4.25})  # fmt: skip
DOWNLOADED = (E.DOWNLOADED, {"request_id": "r1", "path": "a.png", "size": 10, "sha256": "ab"})
NOT_SUBMITTED = (E.STATE, {"request_id": None, "status": "NOT_SUBMITTED"})


def failed(cause: str, request_id: str | None = "r1") -> tuple[EventType, dict[str, Any]]:
    return (E.FAILED, {"request_id": request_id, "cause": cause, "error": f"{cause}!", "http_status": 422})


def test_the_columns_are_stable() -> None:
    assert columns(param_names("flux-kontext-max")) == (
        "id", "status", "out_dir", "output", "sha256", "bytes", "width", "height",
        "input_image", "prompt", "aspect_ratio", "output_format", "safety_tolerance", "seed",
        "request_id", "submits", "submitted_at", "completed_at", "inference_s", "turnaround_s",
        "cost_usd", "cost_source", "cause", "error", "http_status", "review", "review_note", "redo",
        "rejected_images",
    )  # fmt: skip


def test_a_model_without_a_schema_gets_a_column_per_parameter_it_has() -> None:
    jobs = [Job("a", 0, "other/model", {"prompt": "p", "strength": 1, "status": "x"}, "a.png", "f")]
    names = param_names("other/model", jobs, [record("b", INTENT)])
    assert names == ("prompt", "status", "strength")
    cols = columns(names)
    assert cols[8:11] == ("prompt", "param.status", "strength")  # never two columns of one name
    row = manifest_row(jobs[0], None, names=names, price=0.1, dims=no_dims)
    assert (row["status"], row["param.status"]) == ("pending", "x")


@pytest.mark.parametrize(
    ("events", "status"),
    [
        ((), "pending"),
        ((INTENT,), "in_flight"),  # the answer to the submit was lost: it may be on the server
        ((INTENT, NOT_SUBMITTED), "pending"),
        ((INTENT, SUBMITTED), "in_flight"),
        ((INTENT, SUBMITTED, RESULT), "in_flight"),  # the image is not on disk yet
        ((INTENT, SUBMITTED, RESULT, DOWNLOADED), "done"),
        ((INTENT, SUBMITTED, failed("moderation")), "failed"),
        ((INTENT, SUBMITTED, (E.EXPIRED, {"request_id": "r1"})), "pending"),  # to be submitted again
        ((INTENT, SUBMITTED, RESULT, DOWNLOADED, INTENT), "in_flight"),  # redone: the new attempt counts
    ],
)
def test_status_of_each_ledger_state(
    events: tuple[tuple[EventType, dict[str, Any]], ...], status: str
) -> None:
    assert status_of(record("a", *events) if events else None) == status


@pytest.mark.parametrize(
    ("events", "actual", "cost"),
    [
        ((INTENT,), None, (None, None)),  # no request known
        ((INTENT, SUBMITTED), None, (0.1, "estimated")),
        ((INTENT, SUBMITTED, RESULT, DOWNLOADED), None, (0.1, "estimated")),
        ((INTENT, SUBMITTED, RESULT, DOWNLOADED), 0.08, (0.08, "actual")),
        ((INTENT, SUBMITTED, failed("moderation")), None, (0.0, "estimated")),  # FAILED is not billed
        ((INTENT, SUBMITTED, failed("server")), None, (0.0, "estimated")),
        ((INTENT, SUBMITTED, RESULT, failed("download")), None, (0.1, "estimated")),  # made, then lost
        ((INTENT, failed("invalid", None)), None, (None, None)),  # refused at submit
    ],
)
def test_cost_of_the_latest_request(
    events: tuple[tuple[EventType, dict[str, Any]], ...], actual: float | None, cost: tuple[Any, Any]
) -> None:
    assert cost_of(record("a", *events), 0.1, actual) == cost


def test_a_done_row_carries_the_file_and_the_timings() -> None:
    rec = record("a", INTENT, SUBMITTED, RESULT, DOWNLOADED)
    seen: list[tuple[str, str]] = []

    def dims(out_dir: str, output: str) -> tuple[int, int]:
        seen.append((out_dir, output))
        return (640, 480)

    row = manifest_row(job("a", seed=3), Known("out/x", rec), names=param_names("flux-kontext-max"),
                       price=0.1, dims=dims)  # fmt: skip
    assert seen == [("out/x", "a.png")]
    assert row == {
        "id": "a", "status": "done", "out_dir": "out/x", "output": "a.png", "sha256": "ab", "bytes": 10,
        "width": 640, "height": 480, "input_image": None, "prompt": "edit a", "aspect_ratio": None,
        "output_format": None, "safety_tolerance": None, "seed": 3, "request_id": "r1", "submits": 1,
        "submitted_at": "2027-01-15T08:00:01Z", "completed_at": "2027-01-15T08:00:04Z",
        "inference_s": 2.5, "turnaround_s": 3.25, "cost_usd": 0.1, "cost_source": "estimated",
        "cause": None, "error": None, "http_status": None, "review": None, "review_note": None, "redo": 0,
        "rejected_images": None,
    }  # fmt: skip


def test_a_failed_row_says_why_and_has_no_file() -> None:
    rec = record("a", INTENT, SUBMITTED, failed("moderation"))
    row = manifest_row(job("a"), Known("out", rec), names=("prompt",), price=0.1, dims=no_dims)
    assert (row["status"], row["cause"], row["error"]) == ("failed", "moderation", "moderation!")
    assert row["http_status"] == 422
    assert row["output"] is row["sha256"] is row["width"] is None


def test_a_job_changed_since_the_ledger_saw_it_is_pending_with_nothing_of_the_old_one() -> None:
    rec = record("a", INTENT, SUBMITTED, RESULT, DOWNLOADED, fingerprint="old")
    row = manifest_row(job("a", fingerprint="new"), Known("out", rec), names=("prompt",), price=0.1,
                       dims=no_dims)  # fmt: skip
    assert (row["status"], row["out_dir"], row["request_id"], row["submits"]) == ("pending", None, None, 0)


def test_rows_come_in_manifest_order_then_the_jobs_the_manifest_no_longer_lists() -> None:
    late, early = record("zz-orphan", INTENT), record("aa-orphan", INTENT)
    early.first_ts = T0 - 100
    known = {
        "b": Known("out", record("b", INTENT, SUBMITTED)),
        "zz-orphan": Known("out", late),
        "aa-orphan": Known("out", early),
    }
    rows = list(
        result_rows([job("c"), job("b")], known, names=("prompt",), price=lambda m: 0.1, dims=no_dims)
    )
    assert [(r["id"], r["status"]) for r in rows] == [
        ("c", "pending"),
        ("b", "in_flight"),
        ("aa-orphan", "not_in_manifest"),
        ("zz-orphan", "not_in_manifest"),
    ]
    assert rows[2]["prompt"] == "p"  # an orphan's parameters are the ledger's


def test_merged_shards_keep_each_jobs_latest_record_and_its_actual_cost() -> None:
    old, new = record("a", INTENT), record("a", INTENT, SUBMITTED)
    new.last_ts = old.last_ts + 1
    one, two = Replay(jobs={"a": old, "b": record("b", INTENT)}), Replay(jobs={"a": new})
    known = merge([("s0", one, {"b": ("r9", 0.5)}), ("s1", two, {"a": ("r1", 0.07)})])
    assert (known["a"].out_dir, known["a"].cost_usd) == ("s1", 0.07)
    assert known["b"].cost_usd is None  # recorded for another request than the record's latest


def test_actual_costs_are_read_from_any_job_event_that_carries_one(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path / "ledger.jsonl")
    writer.append(Event(E.RUN_STARTED, None, {"run_id": "r", "manifest_path": "/m.csv"}))
    for kind, data in (INTENT, SUBMITTED, RESULT, DOWNLOADED):
        extra = {"credits_deduction": 0.0825} if kind is E.RESULT else {}
        writer.append(Event(kind, "a", {**data, **extra}))
    writer.close()
    view = read_run_dir(tmp_path, "out")
    assert view.costs == {"a": ("r1", 0.0825)}
    assert view.manifest_ref() == "/m.csv"
    row = manifest_row(job("a"), merge([(view.name, view.replay, view.costs)])["a"], names=(), price=0.1,
                       dims=no_dims)  # fmt: skip
    assert (row["cost_usd"], row["cost_source"]) == (0.0825, "actual")


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a = b", "a = b"),  # only a leading sign starts a formula
        (-1, -1),  # numbers stay numbers
        (0.1, 0.1),
        (None, ""),
        (True, "true"),
        ({"k": [1]}, '{"k": [1]}'),
    ],
)
def test_csv_cells_never_start_a_formula(value: object, cell: object) -> None:
    assert csv_cell(value) == cell


def test_the_csv_opens_as_utf8_with_a_header_and_quoting(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "prompt": 'Ünïcødé, "quoted"\nand a new line', "seed": -1},
        {"id": "b", "prompt": "=1+1", "seed": None},
    ]
    path = tmp_path / "r.csv"
    with atomic_text(path, bom=True) as fh:
        assert write_csv(fh, rows, ("id", "prompt", "seed")) == 2
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # so that Excel reads UTF-8
    with path.open(encoding="utf-8-sig", newline="") as fh:
        got = list(csv.reader(fh))
    assert got == [
        ["id", "prompt", "seed"],
        ["a", 'Ünïcødé, "quoted"\nand a new line', "-1"],
        ["b", "'=1+1", ""],
    ]
    buffer = io.StringIO()
    write_jsonl(buffer, rows)
    assert [json.loads(line) for line in buffer.getvalue().splitlines()] == rows  # JSON keeps values exactly


@pytest.mark.parametrize("size", [(1, 1), (640, 480), (1024, 17)])
def test_image_dimensions_come_from_the_header_whatever_the_encoding(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    image = Image.new("RGB", size, (10, 20, 30))
    image.save(tmp_path / "a.png")
    image.save(tmp_path / "b.jpg")
    image.save(tmp_path / "c.jpg", progressive=True)
    image.save(tmp_path / "d.webp")  # not read here: Pillow's
    exif = Image.Exif()
    exif[0x010E] = "x" * 60_000
    image.save(tmp_path / "e.jpg", exif=exif.tobytes(), icc_profile=b"i" * 100_000)  # frame past 64 KiB
    for name in ("a.png", "b.jpg", "c.jpg", "d.webp", "e.jpg"):
        assert image_dims(str(tmp_path), name) == size, name
    head = (tmp_path / "c.jpg").read_bytes()
    assert jpeg_size(head) == size
    assert png_size(head) is None


def test_no_dimensions_for_what_is_not_a_readable_image_inside_the_run(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "a.png").read_bytes()[:20])
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\x00 not a marker")
    (tmp_path / "run").mkdir()
    for name in ("cut.png", "junk.jpg", "missing.png"):
        assert image_dims(str(tmp_path), name) is None, name
    assert image_dims(str(tmp_path / "run"), "../a.png") is None  # never read outside the run directory
    assert image_dims(str(tmp_path / "run"), str(tmp_path / "a.png")) is None

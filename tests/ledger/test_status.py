"""``batchflux status``: the fold (pure) and the command on real run directories."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from batchflux.cli import main
from batchflux.ledger import Event, EventType, replay_lines
from batchflux.run.state import summarize


def ev(kind: str, job: str | None, ts: float, **data: Any) -> str:
    return Event(EventType(kind), job, data, ts=ts).encode()


def life(job: str, t: float, *, until: str, rid: str | None = None, **extra: Any) -> list[str]:
    """A job's events from its intent up to ``until``."""
    rid = rid or f"req-{job}"
    out = [ev("submit_intent", job, t, fingerprint="fp", params={"prompt": "p"}, output=f"{job}.png")]
    if until == "intent":
        return out
    out.append(
        ev("submitted", job, t + 1, request_id=rid, status_url="s", response_url="r", submitted_at=t + 1)
    )
    if until == "submitted":
        return [*out, ev("state", job, t + 2, request_id=rid, status="PROCESSING")]
    if until == "failed":
        return [*out, ev("failed", job, t + 20, request_id=rid, **extra)]
    if until == "expired":
        return [*out, ev("expired", job, t + 3601, request_id=rid)]
    out.append(
        ev("result", job, t + 20, request_id=rid, output_url=f"http://img/{rid}.png", completed_at=t + 20)
    )
    if until == "completed":
        return out
    return [*out, ev("downloaded", job, t + 21, request_id=rid, path=f"{job}.png", size=5, sha256="0" * 64)]


def shard_a(now: float) -> list[str]:
    """A ledger whose times are relative to ``now``: the CLI reads the clock when it runs."""
    lines = [ev("run_started", None, now - 7200, run_id="run1", pid=11, host="box")]
    lines += life("d1", now - 7000, until="downloaded")
    lines += life("d2", now - 7000, until="downloaded")
    lines += life("m1", now - 7000, until="failed", cause="moderation", error="flagged by the content filter")
    lines += life("m2", now - 6900, until="failed", cause="moderation", error="nsfw")
    lines += life("s1", now - 6900, until="failed", cause="server", error="worker crashed")
    lines += life("x1", now - 7100, until="expired")
    lines.append(ev("run_finished", None, now - 3000, run_id="run1", exit_code=130))
    lines.append(ev("run_started", None, now - 2000, run_id="run2", pid=22, host="box"))
    lines += life("late", now - 1000, until="submitted")  # expires in ~2600 s
    lines += life("soon", now - 3500, until="submitted")  # expires in ~100 s
    lines += life("gone", now - 3700, until="submitted")  # past retention
    lines += life("amb", now - 100, until="intent")
    lines += life("c1", now - 500, until="completed")
    return lines


def shard_b(now: float) -> list[str]:
    lines = [ev("run_started", None, now - 600, run_id="runB", pid=33, host="pod-1")]
    lines += life("b1", now - 500, until="downloaded")
    lines += life("b2", now - 400, until="submitted")  # expires in ~3200 s
    lines.append(ev("run_finished", None, now - 60, run_id="runB", exit_code=0))
    return lines


def write_dir(root: Path, name: str, lines: list[str], tail: str = "") -> Path:
    out = root / name
    out.mkdir(parents=True)
    (out / "ledger.jsonl").write_text("".join(line + "\n" for line in lines) + tail)
    return out


def test_summarize_one_directory() -> None:
    now = time.time()
    status = summarize([("a", replay_lines(line + "\n" for line in shard_a(now)))], now=now)
    assert status.jobs == 11
    assert status.by_state == {
        "intent": 1,
        "submitted": 3,
        "completed": 1,
        "downloaded": 2,
        "failed": 3,
        "expired": 1,
        "pending": 0,
    }
    assert [(g.cause, g.count, g.example_job, g.example_error) for g in status.failures] == [
        ("moderation", 2, "m1", "flagged by the content filter"),
        ("server", 1, "s1", "worker crashed"),
    ]
    assert [r.job_id for r in status.in_flight] == ["soon", "late"]
    assert status.in_flight[0].seconds_left(now) == pytest.approx(101, abs=1)
    assert status.in_flight[0].status == "PROCESSING"
    assert status.past_retention == 1
    assert status.possible_duplicates == 1
    assert status.expirations == 1
    (last,) = status.last_runs
    assert (last.run_id, last.finished, last.pid, last.runs) == ("run2", False, 22, 2)


def test_status_text_merges_shards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_dir(tmp_path, "shard-0", shard_a(time.time()))
    b = write_dir(tmp_path, "shard-1", shard_b(time.time()))
    assert main(["status", str(a), str(b), "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "jobs: 13 (1 unconfirmed submit, 4 submitted, 1 to download, 3 done, 3 failed, 1 expired)" in out
    assert "moderation       2  e.g. m1: flagged by the content filter" in out
    assert "in flight: 3 (soonest expiry first)" in out
    listed = [line.split()[0] for line in out.splitlines() if "expires in" in line]
    assert listed == ["soon", "late"]  # the two soonest of three
    assert "  … and 1 more" in out
    assert "past retention without a result: 1" in out
    assert "possible duplicate charges (ambiguous submits): 1" in out
    assert "expirations: 1" in out
    assert f"last run [{a}]: started" in out
    assert "still running / killed (no run_finished; pid 22 on box); 2 runs in all" in out
    assert f"last run [{b}]: started" in out
    assert "exit 0 (ok)" in out


def test_status_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_dir(tmp_path, "shard-0", shard_a(time.time()), tail='{"v":1,"ts":12')  # a run still writing
    assert main(["status", str(a), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["jobs"] == 11
    assert doc["by_state"]["failed"] == 3
    assert doc["failures"][0] == {
        "cause": "moderation",
        "count": 2,
        "example_job": "m1",
        "example_error": "flagged by the content filter",
    }
    assert doc["in_flight"]["count"] == 2
    soon = doc["in_flight"]["shown"][0]
    assert soon["job"] == "soon"
    assert soon["request_id"] == "req-soon"
    assert 0 < soon["seconds_left"] <= 3600
    assert doc["past_retention"] == 1
    assert doc["possible_duplicates"] == 1
    assert doc["expirations"] == 1
    assert doc["last_runs"][0]["state"] == "running_or_killed"
    assert doc["last_runs"][0]["exit_code"] is None
    assert len(doc["torn_tails"]) == 1


def test_same_job_in_two_directories_counts_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_dir(tmp_path, "old", life("j", time.time() - 900, until="submitted"))
    b = write_dir(tmp_path, "new", life("j", time.time() - 100, until="downloaded"))
    assert main(["status", str(a), str(b), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["jobs"] == 1
    assert doc["by_state"]["downloaded"] == 1
    assert doc["duplicate_ids"] == 1


def test_missing_ledger_is_a_clear_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", str(tmp_path)]) == 2
    assert "no ledger at" in capsys.readouterr().err
    assert main(["status", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_corrupt_ledger_is_located_without_a_traceback(tmp_path: Path) -> None:
    lines = life("a", time.time() - 100, until="downloaded")
    out = write_dir(tmp_path, "run", [lines[0], "{not json", *lines[1:]])
    proc = subprocess.run(
        [sys.executable, "-m", "batchflux", "status", str(out)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert f"{out / 'ledger.jsonl'}:2: corrupt ledger line" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""

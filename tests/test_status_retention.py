"""``batchflux status`` counts a request's expiry from the retention its run was told
(``--retention``, recorded in ``run_started``), unless ``status --retention`` says otherwise."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from batchflux.cli import main


def write_ledger(out: Path, *, retention: float | None, submitted_ago: float) -> float:
    now = time.time()
    started = {"run_id": "r1", "manifest": "m.yaml", "jobs": 1}
    if retention is not None:
        started["retention_s"] = retention
    submitted_at = now - submitted_ago
    lines = [
        {"v": 1, "ts": now - 100, "event": "run_started", "job": None, **started},
        {"v": 1, "ts": submitted_at, "event": "submit_intent", "job": "a", "fingerprint": "f",
         "model": "flux-kontext-max", "params": {"prompt": "x"}, "output": "a.png"},
        {"v": 1, "ts": submitted_at, "event": "submitted", "job": "a", "request_id": "rq1",
         "status_url": "http://x/s", "response_url": "http://x/r", "submitted_at": submitted_at},
    ]  # fmt: skip
    out.mkdir(parents=True)
    (out / "ledger.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return submitted_at


@pytest.mark.parametrize(
    ("recorded", "flag", "expires_after"),
    [(120.0, None, 120.0), (None, None, 3600.0), (120.0, "300", 300.0)],
)
def test_expires_in_follows_the_runs_retention(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    recorded: float | None,
    flag: str | None,
    expires_after: float,
) -> None:
    out = tmp_path / "out"
    submitted_at = write_ledger(out, retention=recorded, submitted_ago=10)
    argv = ["status", str(out), "--json", *(["--retention", flag] if flag else [])]
    assert main(argv) == 0
    status = json.loads(capsys.readouterr().out)
    (request,) = status["in_flight"]["shown"]
    assert request["expires_at"] == pytest.approx(submitted_at + expires_after)
    assert status["retention_s"] == expires_after
    assert main(["status", str(out), *(["--retention", flag] if flag else [])]) == 0
    assert "expires in" in capsys.readouterr().out


def test_past_the_runs_retention_a_request_is_not_in_flight(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    write_ledger(out, retention=60.0, submitted_ago=90)
    assert main(["status", str(out), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["in_flight"]["count"] == 0
    assert status["past_retention"] == 1

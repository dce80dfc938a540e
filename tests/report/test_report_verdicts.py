"""Verdicts in the report and in ``batchflux status``: counted in the header, shown on the cards;
nothing of the kind before anyone has reviewed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchflux.cli.cmd_status import render
from batchflux.ledger import replay_file
from batchflux.ledger.reviews import append_reviews, review_event
from batchflux.report import write_report
from batchflux.run.state import load_status


def cards_of(html: str) -> dict[str, dict[str, Any]]:
    found = re.search(r'<script type="application/json" id="jobs-data"[^>]*>(.*?)</script>', html, re.S)
    assert found is not None
    return {c["k"]: c for c in json.loads(found.group(1))}


def tiles_of(html: str) -> dict[str, str]:
    return dict(
        (label, value)
        for value, label in re.findall(r'<div class="v">([^<]*)</div><div class="l">([^<]*)</div>', html)
    )


def test_the_report_counts_and_shows_verdicts_once_there_are_some(
    fabricate: Callable[..., Path], spec: Any, tmp_path: Path
) -> None:
    specs = [spec("a"), spec("b"), spec("c"), spec("d", outcome="failed")]
    out = fabricate(tmp_path / "out", specs)
    html = write_report([out]).read_text()
    assert "approved" not in tiles_of(html)
    assert all("rv" not in c for c in cards_of(html).values())

    jobs = replay_file(out / "ledger.jsonl").jobs
    append_reviews(out, [
        review_event("a", jobs["a"].request_id, "approved"),
        review_event("b", jobs["b"].request_id, "rejected", "<b>melted</b>"),
        review_event("c", "an-older-request", "rejected"),  # another image's verdict: not this one's
    ])  # fmt: skip
    html = write_report([out]).read_text()
    tiles = tiles_of(html)
    assert (tiles["approved"], tiles["rejected"], tiles["unreviewed"]) == ("1", "1", "1")
    cards = cards_of(html)
    assert (cards["a"]["rv"], cards["b"]["rv"], cards["b"]["rn"]) == ("approved", "rejected", "<b>melted</b>")
    assert "rv" not in cards["c"]
    assert "<b>melted</b>" not in html, "the note is inert JSON, escaped"

    status = load_status([out], now=jobs["a"].last_ts)
    assert status.reviews == {"approved": 1, "rejected": 1, "unreviewed": 1}
    assert "reviews: 1 approved, 1 rejected, 1 images not reviewed yet" in render(status)
    assert status.to_json()["reviews"] == {"approved": 1, "rejected": 1, "unreviewed": 1}

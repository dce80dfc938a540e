"""``batchflux status --spend``: run directories set against the account's request history, through
the real CLI, client and emulator. A run under ``--no-history`` whose submits lose their answer
(the emulator creates the request, then drops the connection) pays some jobs twice; the command
must name exactly those, add up to what the emulator charged, and list the history in pages,
never a call per job. When the history cannot answer it says so in one line, with the exit code
the help documents."""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from runkit import Clis, plain_jobs, read_events, run_against, write_manifest

from batchflux.api import HistoryPage, HistoryQuery, HistoryRow
from batchflux.emulator import Emulator, EmulatorConfig
from batchflux.engine.config import EngineConfig
from batchflux.ledger import Event, EventType
from batchflux.run.exitcodes import ExitCode
from batchflux.run.spend import list_rows

FAST: dict[str, Any] = {"latency_mean": 0.05, "latency_sd": 0.01, "latency_min": 0.01}
PRICE = 0.1


def emulator(**knobs: Any) -> Emulator:
    return Emulator(EmulatorConfig(**{**FAST, "price": PRICE, **knobs}))


def no_history(**changes: Any) -> EngineConfig:
    return EngineConfig(**{"history": False, "backoff_base_s": 0.01, **changes})


def job_of(prompt: str) -> str:
    """plain_jobs' ids from their prompts ("edit number 7" is job0007)."""
    return f"job{int(prompt.rsplit(' ', 1)[1]):04d}"


async def spend_json(clis: Clis, emu: Emulator, *outs: Path) -> dict[str, Any]:
    result = await clis.run("status", "--spend", "--json", *outs, emu=emu)
    assert result.code == ExitCode.OK, result
    data: dict[str, Any] = json.loads(result.stdout)
    return data


async def test_spend_names_every_job_paid_twice_and_adds_up_to_the_charges(
    tmp_path: Path, clis: Clis
) -> None:
    jobs = plain_jobs(130)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    knobs = {"faults": {"drop": 0.2}, "fault_endpoints": frozenset({"submit"}), "seed": 3}
    async with emulator(**knobs) as emu:
        run = await run_against(emu, manifest, out, engine=no_history(ambiguous_resubmits=30), report=False)
        assert run.exit_code == ExitCode.OK, run.message
        stats = emu.stats()
        assert stats["duplicate_submits"] > 0  # the fault made duplicates to find
        held = {e["request_id"] for e in read_events(out) if e["event"] == "submitted"}
        by_body: dict[str, list[str]] = {}
        for record in emu.core.jobs.values():
            by_body.setdefault(record.digest, []).append(record.request_id)
        paid_twice = Counter(
            job_of(emu.core.jobs[rids[0]].params["prompt"]) for rids in by_body.values() for _ in rids[1:]
        )
        unheld = {rid for rid in emu.core.jobs if rid not in held}

        data = await spend_json(clis, emu, out)
        calls = emu.stats()["history_calls"] - stats["history_calls"]
        text = await clis.run("status", "--spend", "--limit", "1000", out, emu=emu)

    dups = data["duplicates"]["requests"]
    assert Counter(d["job"] for d in dups) == paid_twice
    assert {d["request_id"] for d in dups} == unheld
    assert data["duplicates"]["count"] == stats["duplicate_submits"] == len(unheld)
    assert data["known"] == {
        "requests": len(jobs),
        "cost_usd": pytest.approx(len(jobs) * PRICE),
        "priced": len(jobs),
        "no_cost_yet": 0,
        "not_listed": 0,
    }
    charged = EmulatorConfig().credits - stats["credits_left"]
    assert data["actual_usd"] == pytest.approx(charged) == pytest.approx(stats["submits"] * PRICE)
    assert (data["other"]["count"], data["elsewhere"]["count"]) == (0, 0)
    assert (data["not_landed"], data["unpriced"], data["complete"]) == (0, 0, True)
    assert data["estimate"] == {
        "usd": pytest.approx(len(jobs) * PRICE),
        "billable_submits": len(jobs),
        "possible_duplicates": stats["duplicate_submits"],  # the ledger counted each lost answer
    }
    # Pages of 100, oldest first, stopped at the short page: never a call per job.
    windows = len(data["windows"])
    assert data["history_rows"] == stats["submits"]
    assert calls == data["history_calls"] <= windows * (math.ceil(stats["submits"] / 100) + 1)
    assert calls < len(jobs) / 10

    assert text.code == ExitCode.OK, text
    for d in dups:
        assert re.search(rf"^  {d['job']}\s+{d['request_id']}\s", text.stdout, re.M), d
    assert f"paid twice: {len(dups)} requests" in text.stdout
    assert f"actual spend: ${charged:,.2f};" in text.stdout


async def test_the_same_jobs_in_another_directory_are_not_this_directorys_duplicates(
    tmp_path: Path, clis: Clis
) -> None:
    """Two directories of one manifest the same day: every request of one carries a body of the
    other, yet only POSTs that never heard their answer make duplicates. Asked together, the two
    ledgers hold every request but their own duplicates."""
    manifest = write_manifest(tmp_path / "m", plain_jobs(30))
    lossy, clean = tmp_path / "lossy", tmp_path / "clean"
    knobs = {"faults": {"drop": 0.3}, "fault_endpoints": frozenset({"submit"}), "seed": 5}
    async with emulator(**knobs) as emu:
        first = await run_against(
            emu, manifest, lossy, engine=no_history(ambiguous_resubmits=30), report=False
        )
        assert first.exit_code == ExitCode.OK, first.message
        lost = emu.stats()["duplicate_submits"]
        assert lost > 0
        emu.reconfigure(faults={})
        assert (await run_against(emu, manifest, clean, report=False)).exit_code == ExitCode.OK
        alone = await spend_json(clis, emu, clean)
        both = await spend_json(clis, emu, lossy, clean)
        submits = emu.stats()["submits"]
    assert (alone["known"]["requests"], alone["duplicates"]["count"]) == (30, 0)
    assert alone["elsewhere"]["count"] + alone["other"]["count"] == 30 + lost  # all of lossy's
    assert both["known"]["requests"] == 60
    assert both["duplicates"]["count"] == lost
    assert {d["out_dir"] for d in both["duplicates"]["requests"]} == {str(lossy)}
    assert (both["elsewhere"]["count"], both["other"]["count"]) == (0, 0)
    assert both["actual_usd"] == pytest.approx(submits * PRICE)


async def test_a_clean_batch_has_no_duplicates_and_costs_what_the_ledger_estimated(
    tmp_path: Path, clis: Clis
) -> None:
    manifest = write_manifest(tmp_path / "m", [*plain_jobs(4), {"id": "bad", "prompt": "nsfw please"}])
    out = tmp_path / "out"
    async with emulator() as emu:
        run = await run_against(emu, manifest, out, report=False)
        assert run.exit_code == ExitCode.JOBS_FAILED, run.message  # the moderated one failed: refunded
        data = await spend_json(clis, emu, out)
        charged = EmulatorConfig().credits - emu.stats()["credits_left"]
    assert (data["duplicates"]["count"], data["known"]["requests"]) == (0, 5)
    assert data["actual_usd"] == pytest.approx(charged) == pytest.approx(4 * PRICE)
    assert data["estimate"]["usd"] == pytest.approx(4 * PRICE)
    assert data["estimate"]["billable_submits"] == 4


async def test_a_ledger_older_than_31_days_is_asked_in_windows_the_server_accepts(
    tmp_path: Path, clis: Clis
) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(3))
    out = tmp_path / "out"
    async with emulator() as emu:
        assert (await run_against(emu, manifest, out, report=False)).exit_code == ExitCode.OK
        ledger = out / "ledger.jsonl"
        first = Event(EventType.RUN_STARTED, None, {"run_id": "old"}, ts=time.time() - 40 * 86400).encode()
        ledger.write_text(first + "\n" + ledger.read_text())
        data = await spend_json(clis, emu, out)
    assert len(data["windows"]) == 2  # a 400 (a window over 31 days) would have been exit 3
    assert data["history_calls"] == 2
    assert (data["known"]["priced"], data["duplicates"]["count"]) == (3, 0)


@pytest.mark.parametrize(
    ("outage", "code", "says"),
    [
        ("500", ExitCode.TEMPFAIL, "unreachable or failing"),
        ("502", ExitCode.TEMPFAIL, "unreachable or failing"),
        ("404", ExitCode.STOPPED, "cannot answer here"),
        ("envelope", ExitCode.STOPPED, "unknown shape"),
    ],
)
async def test_when_the_history_cannot_answer_one_line_says_so_with_the_documented_code(
    tmp_path: Path, clis: Clis, outage: str, code: int, says: str
) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(2))
    out = tmp_path / "out"
    async with emulator() as emu:
        assert (await run_against(emu, manifest, out, report=False)).exit_code == ExitCode.OK
        emu.reconfigure(history_outage=outage)
        result = await clis.run("status", "--spend", out, emu=emu)
    assert result.code == code, result
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("batchflux status: ")
    assert says in line
    assert "Traceback" not in result.stderr


async def test_a_wrong_key_is_named_and_a_missing_one_is_a_usage_error(tmp_path: Path, clis: Clis) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(1))
    out = tmp_path / "out"
    wrong = "SG_not_the_right_key_0000"
    async with emulator() as emu:
        assert (await run_against(emu, manifest, out, report=False)).exit_code == ExitCode.OK
        refused = await clis.run("status", "--spend", out, emu=emu, key=wrong)
        missing = await clis.run("status", "--spend", out, emu=emu, key=None)
        unreachable = await clis.run("status", "--spend", out, "--base-url", "http://127.0.0.1:9")
    assert refused.code == ExitCode.STOPPED, refused
    (line,) = refused.stderr.splitlines()
    assert "refused the API key" in line
    assert "SEGMIND_API_KEY" in line
    assert wrong not in refused.stderr + refused.stdout
    assert missing.code == ExitCode.USAGE, missing
    assert "SEGMIND_API_KEY" in missing.stderr
    assert unreachable.code == ExitCode.TEMPFAIL, unreachable
    assert len(unreachable.stderr.splitlines()) == 1


async def test_status_without_spend_asks_nothing(tmp_path: Path, clis: Clis) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(2))
    out = tmp_path / "out"
    async with emulator() as emu:
        assert (await run_against(emu, manifest, out, report=False)).exit_code == ExitCode.OK
        before = emu.stats()["history_calls"]
        result = await clis.run("status", out, emu=emu)
        assert emu.stats()["history_calls"] == before
    assert result.code == ExitCode.OK, result
    assert "actual spend" not in result.stdout  # the ledger recorded no cost: the text is as before


# ---- where a window's listing stops (a server whose paging is broken) ---------------------------


def page_of(rids: list[str], *, more: bool) -> HistoryPage:
    return HistoryPage(tuple(HistoryRow(request_id=r) for r in rids), 1, more)


async def test_a_window_stops_at_a_short_page_at_no_more_and_at_a_page_seen_before() -> None:
    full = [f"r{i}" for i in range(100)]
    asked: list[int] = []

    def serving(pages: list[HistoryPage]) -> Any:
        async def fetch(query: HistoryQuery) -> HistoryPage:
            asked.append(query.page)
            assert (query.per_page, query.sort_order) == (100, "asc")
            return pages[min(query.page, len(pages)) - 1]

        return fetch

    day = [(date(2026, 11, 25), date(2026, 11, 25))]
    rows, calls, complete = await list_rows(
        serving([page_of(full, more=True), page_of(["x"], more=True)]), "m", day
    )
    assert (len(rows), calls, complete, asked) == (101, 2, True, [1, 2])
    asked.clear()
    rows, calls, complete = await list_rows(serving([page_of(full, more=False)]), "m", day)
    assert (calls, complete) == (1, True)
    asked.clear()
    rows, calls, complete = await list_rows(serving([page_of(full, more=True)]), "m", day)  # page ignored
    assert (calls, complete, asked) == (2, False, [1, 2])


# ---- actual spend where a run asked the history -------------------------------------------------


async def test_what_the_history_priced_shows_in_status_the_report_and_the_metrics(
    tmp_path: Path, clis: Clis
) -> None:
    """Every submit loses its answer and is found in the history: its cost is in the ledger, and
    status, report.html and the metrics file show it beside the estimate."""
    manifest = write_manifest(tmp_path / "m", plain_jobs(6))
    out, prom = tmp_path / "out", tmp_path / "metrics" / "batch.prom"
    knobs = {"faults": {"drop": 1.0}, "fault_endpoints": frozenset({"submit"})}
    async with emulator(**knobs) as emu:
        run = await run_against(
            emu, manifest, out, engine=EngineConfig(history_wait_s=0.5), metrics_file=prom, report=True
        )
        assert run.exit_code == ExitCode.OK, run.message
        assert emu.stats()["duplicate_submits"] == 0
        text = await clis.run("status", out, emu=emu)
        as_json = await clis.run("status", "--json", out, emu=emu)
    assert text.code == as_json.code == ExitCode.OK
    assert "actual spend known: $0.60 for 6 requests the request history priced" in text.stdout
    data = json.loads(as_json.stdout)
    assert (data["actual_spend_usd"], data["actual_spend_requests"]) == (pytest.approx(0.6), 6)
    html = (out / "report.html").read_text()
    assert re.search(r'<div class="v">\$0\.60</div><div class="l">actual spend known</div>', html)
    assert re.search(
        r'^batchflux_last_run_history_cost_usd\{manifest="batch"\} 0\.6$', prom.read_text(), re.M
    )

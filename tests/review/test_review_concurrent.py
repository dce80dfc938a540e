"""A review open while a run works on the same directory: the run appends to the ledger, the review
to its log beside it, and neither ever writes the other's file.

A real run (``run_batch`` against an emulator with one worker, so it takes a few seconds) and a
real review server over the same directory, verdicts given over HTTP while jobs are still in
flight. Afterwards the ledger replays whole, every verdict is in the review log, and the run's own
results and summary (written at its end, reading the log afresh) carry them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from reviewkit import run_once, write_manifest

from batchflux.emulator import Emulator, EmulatorConfig
from batchflux.files.layout import LEDGER_FILENAME, RESULTS_JSONL_FILENAME, REVIEWS_FILENAME
from batchflux.ledger import JobState, replay_file
from batchflux.review.server import serve
from batchflux.run.summary import read_summary

JOBS = [(f"p{i:02d}", f"edit number {i}") for i in range(14)]
APPROVE = 4


def downloaded(out: Path) -> dict[str, str]:
    """Job -> request id of every downloaded job, as the ledger says now (a torn tail tolerated)."""
    replay = replay_file(out / LEDGER_FILENAME)
    done = (r for r in replay.jobs.values() if r.state is JobState.DOWNLOADED)
    return {r.job_id: r.request_id for r in done if r.request_id}


@pytest.mark.asyncio(loop_scope="module")
async def test_verdicts_while_a_run_appends_to_the_same_directory(tmp_path: Path) -> None:
    write_manifest(tmp_path, JOBS)
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(latency_mean=0.25, latency_sd=0.02, workers=1)) as emu:
        run = asyncio.create_task(run_once(tmp_path, emu))
        for _ in range(3000):
            if (out / LEDGER_FILENAME).exists() and len(downloaded(out)) >= 2:
                break
            await asyncio.sleep(0.01)
        stop = asyncio.Event()
        printed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(serve([out], ready=printed.set_result, stop=stop))
        url = await asyncio.wait_for(printed, 30)
        base, token = url.split("/?", 1)[0], url.rsplit("token=", 1)[1]
        headers = {"X-Batchflux-Token": token, "Origin": base}
        approved: list[str] = []
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(url) as r:  # the page: rows read now, with the run under way
                    assert r.status == 200
                for _ in range(3000):
                    done = downloaded(out)
                    for job in sorted(set(done) - set(approved))[: APPROVE - len(approved)]:
                        body = {"k": job, "rid": done[job], "verdict": "approved", "note": "ok"}
                        async with http.post(base + "/api/verdict", json=body, headers=headers) as r:
                            if r.status == 409:  # downloaded after the page read the ledgers
                                async with http.get(url):  # a reload reads them again
                                    pass
                                continue
                            assert r.status == 200, await r.text()
                            approved.append(job)
                    if len(approved) == APPROVE:
                        break
                    await asyncio.sleep(0.02)
                assert not run.done(), "the verdicts were given while the run was still working"
                for _ in range(500):  # the run's next event makes the page out of date: it is told
                    async with http.get(base + "/api/verdicts", headers=headers) as r:
                        if (await r.json())["stale"]:
                            break
                    await asyncio.sleep(0.01)
                else:
                    raise AssertionError("the page was never told that the run changed the ledger")
                result = await asyncio.wait_for(run, 120)
        finally:
            stop.set()
            await server
    assert len(approved) == APPROVE

    replay = replay_file(out / LEDGER_FILENAME)  # whole: no corrupt line, no torn tail
    assert replay.torn_tail is None
    assert sum(r.state is JobState.DOWNLOADED for r in replay.jobs.values()) == len(JOBS)
    assert b'"reviewed"' not in (out / LEDGER_FILENAME).read_bytes(), "the review never wrote the ledger"
    logged = [json.loads(x) for x in (out / REVIEWS_FILENAME).read_text().splitlines()]
    assert sorted(x["job"] for x in logged) == sorted(approved)

    rows = [json.loads(x) for x in (out / RESULTS_JSONL_FILENAME).read_text().splitlines()]
    assert sorted(r["id"] for r in rows if r["review"] == "approved") == sorted(approved)
    assert all(r["review_note"] == "ok" for r in rows if r["review"])
    summary = read_summary(out)
    assert summary is not None
    assert summary.reviews == {"approved": APPROVE, "rejected": 0, "unreviewed": len(JOBS) - APPROVE}
    assert result.summary == summary

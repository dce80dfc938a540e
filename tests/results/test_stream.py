"""``batchflux.stream()`` and ``batchflux.run_batch()`` with jobs given as mappings, against the emulator,
inside the test's already running event loop (as in a notebook or a web app)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from runkit import ambiguous_count, read_events

import batchflux
from batchflux.emulator import DEFAULT_API_KEY, Emulator, EmulatorConfig


def jobs(n: int, moderated: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    return [
        {
            "id": f"s{i:03d}",
            "prompt": f"{'nsfw ' if i in moderated else ''}edit {i}",
            "seed": i,
            "aspect_ratio": "1:1",
        }
        for i in range(n)
    ]


def finish_order(out: Path) -> list[str]:
    """Jobs in the order the ledger recorded their downloaded or failed event."""
    return [e["job"] for e in read_events(out) if e["event"] in ("downloaded", "failed")]


def results_jsonl(out: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    return {r["id"]: r for r in rows}


def options(emu: Emulator, out: Path, **more: Any) -> dict[str, Any]:
    return {"out_dir": out, "api_key": DEFAULT_API_KEY, "base_url": emu.base_url, "report": False, **more}


async def test_stream_yields_every_row_once_in_completion_order(tmp_path: Path) -> None:
    out = tmp_path / "out"
    given = jobs(10, moderated=(4,))
    async with Emulator(EmulatorConfig(latency_mean=0.2, latency_sd=0.1, seed=5)) as emu:
        stream = batchflux.stream(given, rpm=600, **options(emu, out))
        rows = [row async for row in stream]
        stats = emu.stats()
    assert stream.result is not None
    assert stream.result.exit_code == 1  # one job failed
    assert sorted(r["id"] for r in rows) == [j["id"] for j in given]  # every job, once
    assert [r["id"] for r in rows] == finish_order(out)  # as each finished
    assert [r["status"] for r in rows].count("failed") == 1
    assert stats["submits"] == 10
    # The same fields as results.jsonl, and the same values.
    assert {r["id"]: r for r in rows} == results_jsonl(out)
    # The jobs are kept as a manifest in the run directory, for export and resume.
    assert (out / "jobs.csv").exists()
    started = next(e for e in read_events(out) if e["event"] == "run_started")
    assert started["manifest_path"] == str((out / "jobs.csv").resolve())


async def test_a_cancelled_stream_resumes_without_resubmitting(tmp_path: Path) -> None:
    out = tmp_path / "out"
    given = jobs(16)
    config = EmulatorConfig(latency_mean=0.3, latency_sd=0.05, seed=2)
    async with Emulator(config) as emu:
        first: list[dict[str, Any]] = []
        enough = asyncio.Event()

        async def consume() -> None:
            async for row in batchflux.stream(given, rate="4/0.5s", **options(emu, out)):
                first.append(row)
                if len(first) == 3:
                    enough.set()

        consumer = asyncio.create_task(consume())
        await asyncio.wait_for(enough.wait(), 30)
        consumer.cancel()  # the application goes away mid-batch
        with pytest.raises(asyncio.CancelledError):
            await consumer
        after_kill = emu.stats()
        events = read_events(out)
        assert ambiguous_count(events) == 0  # the stop waited for every submit's answer
        done_at_kill = {e["job"] for e in events if e["event"] == "downloaded"}
        assert 3 <= len(first) < len(given)
        assert after_kill["submits"] < len(given)  # it stopped submitting

        again = batchflux.stream(given, rate="4/0.5s", **options(emu, out))
        second = [row async for row in again]
        stats = emu.stats()
        third = [row async for row in batchflux.stream(given, include_finished=False, **options(emu, out))]
        final = emu.stats()

    assert again.result is not None
    assert again.result.exit_code == 0
    assert sorted(r["id"] for r in second) == [j["id"] for j in given]  # every row once
    assert {r["status"] for r in second} == {"done"}
    # What had finished before the kill comes first (in manifest order), then the rest as it finishes.
    assert {r["id"] for r in first} <= done_at_kill
    assert [r["id"] for r in second[: len(done_at_kill)]] == sorted(done_at_kill)
    assert stats["submits"] == len(given)  # the rest, and nothing twice
    assert stats["duplicate_submits"] == 0
    assert third == []  # nothing left to do, and nothing already finished asked for
    assert final["submits"] == len(given)


async def test_leaving_the_loop_inside_async_with_stops_the_run_at_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    given = jobs(12)
    async with Emulator(EmulatorConfig(latency_mean=0.2, latency_sd=0.05)) as emu:
        async with batchflux.stream(given, rate="3/0.5s", **options(emu, out)) as rows:
            async for _ in rows:
                break
        assert rows.result is not None
        assert rows.result.exit_code == 130  # stopped before the end, resumable
        # The run is over and its lock released: a new run can start at once.
        result = await batchflux.run_batch(given, **options(emu, out))
        stats = emu.stats()
    assert result.exit_code == 0, result.message
    assert stats["submits"] == 12
    assert stats["duplicate_submits"] == 0


async def test_run_batch_takes_jobs_and_options_without_inner_imports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(latency_mean=0.05, latency_sd=0.01)) as emu:
        result = await batchflux.run_batch(
            jobs(4), **options(emu, out, max_in_flight=2, overrides={"output_format": "jpg"}, shard="0/1")
        )
    assert result.exit_code == 0, result.message
    assert result.summary is not None
    assert result.summary.counts["done"] == 4
    assert sorted(p.name for p in out.glob("*.jpg")) == [f"s{i:03d}.jpg" for i in range(4)]
    assert list(results_jsonl(out)) == ["s000", "s001", "s002", "s003"]


def test_bad_jobs_and_bad_options_are_raised_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(batchflux.ManifestError) as caught:
        batchflux.stream([{"prompt": "ok"}, {"seed": "x"}], out_dir=tmp_path, api_key="k")
    assert [str(p) for p in caught.value.problems] == [
        "jobs[1].seed: 'x' is not an integer",
        "jobs[1].prompt: is required (no value here and no default)",
    ]
    with pytest.raises(ValueError, match="out_dir= is required"):
        batchflux.stream([{"prompt": "ok"}], api_key="k")
    with pytest.raises(ValueError, match="give rpm= or rate=, not both"):
        batchflux.stream([{"prompt": "ok"}], out_dir=tmp_path, api_key="k", rpm=5, rate="5/60s")
    with pytest.raises(TypeError, match="unexpected keyword argument 'rmp'"):
        batchflux.stream([{"prompt": "ok"}], out_dir=tmp_path, api_key="k", rmp=5)
    with pytest.raises(ValueError, match="unknown cause"):
        batchflux.stream([{"prompt": "ok"}], out_dir=tmp_path, api_key="k", retry_failed=["moderaton"])
    assert not (tmp_path / "jobs.csv").exists()


async def test_the_manifest_path_form_still_works(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,prompt\na,one\nb,two\n")
    async with Emulator(EmulatorConfig(latency_mean=0.05, latency_sd=0.01)) as emu:
        result = await batchflux.run_batch(
            manifest,
            api_key=DEFAULT_API_KEY,
            base_url=emu.base_url,
            out_dir=tmp_path / "out",
            engine=batchflux.EngineConfig(rate=batchflux.Rate(50, 60)),
            report=False,
        )
    assert result.exit_code == 0, result.message
    assert (tmp_path / "out" / "results.csv").exists()
    assert not (tmp_path / "out" / "jobs.csv").exists()  # a manifest file is its own record

"""The results of real runs against the emulator: ``OUT/results.csv`` row by row against the ledger and
the files, ``batchflux export`` of shards, and the failed jobs back as a manifest that reruns only them."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image
from runkit import Clis, files_containing, plain_jobs, read_events, run_against, write_manifest

from batchflux.emulator import DEFAULT_API_KEY, Emulator, EmulatorConfig
from batchflux.manifest import load_manifest
from batchflux.run.results import columns, param_names
from batchflux.run.shard import Shard

FAST = {"latency_mean": 0.05, "latency_sd": 0.01}


def batch_with_failures(directory: Path, n: int = 12) -> tuple[Path, list[dict[str, Any]]]:
    jobs = plain_jobs(n)
    changes: list[dict[str, Any]] = [
        {},
        {"input_image": "img/cat.jpg"},
        {"output_format": "jpg"},
        {"prompt": '=HYPERLINK("http://evil") make it nsfw'},  # moderated, and a formula
        {"output": "nested/{id}.{ext}"},
        {"aspect_ratio": "9:16"},
        {},
        {},
        {"prompt": "another nsfw edit, with a comma"},
    ]
    for job, change in zip(jobs, changes, strict=False):
        job.update(change)
    return write_manifest(directory, jobs), jobs


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def read_jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def latest(events: list[dict[str, Any]], job: str, kind: str) -> dict[str, Any] | None:
    found = [e for e in events if e["job"] == job and e["event"] == kind]
    return found[-1] if found else None


async def test_results_csv_matches_the_ledger_and_the_files_row_by_row(tmp_path: Path) -> None:
    manifest, _ = batch_with_failures(tmp_path / "m")
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(**FAST)) as emu:
        result = await run_against(emu, manifest, out, report=False)
    assert result.exit_code == 1, result.message
    jobs = load_manifest(manifest).jobs
    events = read_events(out)
    rows = read_csv(out / "results.csv")
    with (out / "results.csv").open(encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == columns(param_names("flux-kontext-max"))
    assert [r["id"] for r in rows] == [j.id for j in jobs]  # manifest order, one row each
    assert Counter(r["status"] for r in rows) == {"done": 10, "failed": 2}
    for row, job in zip(rows, jobs, strict=True):
        submitted = latest(events, job.id, "submitted")
        assert submitted is not None
        assert row["request_id"] == submitted["request_id"]
        assert row["submits"] == str(
            sum(1 for e in events if e["job"] == job.id and e["event"] == "submit_intent")
        )
        assert row["out_dir"] == str(out.resolve())
        assert row["seed"] == str(job.params["seed"])
        assert row["aspect_ratio"] == job.params["aspect_ratio"]
        done = latest(events, job.id, "downloaded")
        if row["status"] == "done":
            assert done is not None
            data = (out / row["output"]).read_bytes()
            assert row["output"] == done["path"] == job.output
            assert row["sha256"] == done["sha256"] == hashlib.sha256(data).hexdigest()
            assert row["bytes"] == str(done["size"]) == str(len(data))
            with Image.open(out / row["output"]) as image:
                assert (row["width"], row["height"]) == (str(image.width), str(image.height))
            result_event = latest(events, job.id, "result")
            assert result_event is not None
            assert float(row["inference_s"]) == round(result_event["metrics"]["inference_time"], 3)
            assert float(row["turnaround_s"]) >= 0
            assert (row["cost_usd"], row["cost_source"]) == ("0.1", "estimated")
            assert row["cause"] == row["error"] == row["http_status"] == ""
        else:
            fail = latest(events, job.id, "failed")
            assert done is None
            assert fail is not None
            assert (row["cause"], row["error"], row["http_status"]) == (
                fail["cause"], fail["error"], str(fail["http_status"])
            )  # fmt: skip
            assert row["cause"] == "moderation"
            assert (row["cost_usd"], row["cost_source"]) == ("0.0", "estimated")  # FAILED is not billed
            assert row["output"] == row["sha256"] == row["width"] == ""
    assert rows[5]["width"] < rows[5]["height"]  # 9:16
    assert rows[1]["input_image"] == "img/cat.jpg"  # as the manifest wrote it
    assert rows[3]["prompt"] == '\'=HYPERLINK("http://evil") make it nsfw'  # text, not a formula
    exact = read_jsonl((out / "results.jsonl").read_text(encoding="utf-8"))
    assert exact[3]["prompt"] == '=HYPERLINK("http://evil") make it nsfw'  # the JSON keeps it exactly
    assert [r["id"] for r in exact] == [r["id"] for r in rows]
    assert files_containing(out, DEFAULT_API_KEY) == []


async def test_export_of_two_shards_is_the_union_of_each(tmp_path: Path, clis: Clis) -> None:
    manifest, jobs = batch_with_failures(tmp_path / "m", 16)
    outs = [tmp_path / "shard0", tmp_path / "shard1"]
    async with Emulator(EmulatorConfig(**FAST)) as emu:
        for k, out in enumerate(outs):
            await run_against(emu, manifest, out, shard=Shard(k, 2), report=False)
    single = [await clis.run("export", out) for out in outs]
    both = await clis.run("export", *outs)
    for got in (*single, both):
        assert got.code == 0, got
    parts = [read_jsonl(got.stdout) for got in single]
    merged = read_jsonl(both.stdout)
    assert parts[0]
    assert parts[1]
    assert {r["id"] for r in parts[0]}.isdisjoint({r["id"] for r in parts[1]})
    order = {j["id"]: n for n, j in enumerate(jobs)}
    assert merged == sorted(parts[0] + parts[1], key=lambda r: order[r["id"]])  # the union, manifest order
    assert [r["id"] for r in merged] == [j["id"] for j in jobs]
    assert {r["out_dir"] for r in merged} == {str(out) for out in outs}  # each row names its shard
    # The run's own results.jsonl holds the same rows (the run names its directory resolved).
    own = read_jsonl((outs[0] / "results.jsonl").read_text(encoding="utf-8"))
    assert [{**r, "out_dir": None} for r in own] == [{**r, "out_dir": None} for r in parts[0]]

    table = await clis.run("export", *outs, "--status", "failed,pending", "-o", tmp_path / "all.csv")
    assert table.code == 0, table
    assert [r["id"] for r in read_csv(tmp_path / "all.csv")] == ["job0003", "job0008"]


async def test_failed_jobs_come_back_as_a_manifest_that_reruns_only_them(tmp_path: Path, clis: Clis) -> None:
    manifest, _ = batch_with_failures(tmp_path / "m")
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(**FAST)) as emu:
        await run_against(emu, manifest, out, report=False)
    retry = tmp_path / "elsewhere" / "retry.csv"
    retry.parent.mkdir()
    exported = await clis.run("export", out, "--status", "failed", "--as-manifest", "-o", retry)
    assert exported.code == 0, exported
    assert "2 jobs" in exported.stderr
    check = await clis.run("validate", retry)
    assert check.code == 0, check
    assert "2 jobs" in check.stdout
    again = load_manifest(retry).jobs
    before = {j.id: j for j in load_manifest(manifest).jobs}
    assert [j.id for j in again] == ["job0003", "job0008"]
    for job in again:  # the same jobs: parameters, outputs, fingerprints
        assert (job.params, job.output, job.fingerprint) == (
            before[job.id].params, before[job.id].output, before[job.id].fingerprint
        )  # fmt: skip
    # The user edits the prompts the moderation blocked and runs the file.
    retry.write_text(retry.read_text(encoding="utf-8-sig").replace("nsfw", "calm"), encoding="utf-8")
    async with Emulator(EmulatorConfig(**FAST)) as emu:
        rerun = await clis.run("run", retry, "--out", tmp_path / "out2", "--no-report", emu=emu)
        stats = emu.stats()
    assert rerun.code == 0, rerun
    assert stats["submits"] == 2
    submitted = {e["job"] for e in read_events(tmp_path / "out2") if e["event"] == "submit_intent"}
    assert submitted == {"job0003", "job0008"}
    assert (tmp_path / "out2" / "job0008.png").exists()


async def test_export_says_what_is_wrong_without_a_traceback(tmp_path: Path, clis: Clis) -> None:
    missing = await clis.run("export", tmp_path / "nothing")
    assert missing.code == 2
    assert "no ledger at" in missing.stderr
    assert "Traceback" not in missing.stderr
    manifest, _ = batch_with_failures(tmp_path / "m", 3)
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(**FAST)) as emu:
        await run_against(emu, manifest, out, report=False)
    manifest.rename(manifest.with_name("moved.yaml"))
    gone = await clis.run("export", out)
    assert gone.code == 2
    assert "which is not there now; pass --manifest FILE" in gone.stderr
    found = await clis.run("export", out, "--manifest", manifest.with_name("moved.yaml"), "--status", "done")
    assert found.code == 0, found
    assert [r["id"] for r in read_jsonl(found.stdout)] == ["job0000", "job0001", "job0002"]
    # A job dropped from the manifest stays in the rows, as not_in_manifest.
    shorter = write_manifest(tmp_path / "m2", plain_jobs(2))
    orphans = await clis.run("export", out, "--manifest", shorter)
    assert [(r["id"], r["status"]) for r in read_jsonl(orphans.stdout)][-1] == ("job0002", "not_in_manifest")
    bad = await clis.run("export", out, "--status", "finished")
    assert bad.code == 2
    assert "unknown status finished" in bad.stderr


async def test_export_into_a_reader_that_went_away_exits_quietly(tmp_path: Path, clis: Clis) -> None:
    manifest, _ = batch_with_failures(tmp_path / "m", 4)
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(**FAST)) as emu:
        await run_against(emu, manifest, out, report=False)
    r, w = os.pipe()
    os.close(r)  # what `| head -1` leaves once it has its line
    try:
        cli = await clis.start("export", out, "--format", "csv", stdout=w)
        result = await cli.wait()
    finally:
        os.close(w)
    assert result.code == 0, result
    assert result.stderr == "", result  # no traceback, no "Exception ignored"

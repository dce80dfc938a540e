"""``batchflux review`` on a run directory in a bucket, against moto's S3 server: the scripted
verdicts reach the bucket, where ``export`` finds them, and a reviewer's ship merges with what
another shipped meanwhile rather than putting over it."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path

import aiohttp
from runkit import Clis, plain_jobs, write_manifest
from s3kit import all_objects, ledger_of

from batchflux.emulator import Emulator, EmulatorConfig
from batchflux.ledger.reviews import append_reviews, review_event
from batchflux.rundir import open_run_dir
from batchflux.rundir.bucket import BucketRunDir

FAST = EmulatorConfig(latency_mean=0.05, latency_sd=0.01)


async def test_a_scripted_rejection_reaches_the_bucket_and_export_lists_it(
    tmp_path: Path, clis: Clis, bucket: str
) -> None:
    jobs = plain_jobs(3)
    manifest = write_manifest(tmp_path / "m", jobs)
    url = f"s3://{bucket}/r"
    async with Emulator(FAST) as emu:
        result = await clis.run(
            "run", manifest, "--out", url, "--spool", tmp_path / "sp", "--no-report", emu=emu
        )
        assert result.code == 0, result
    rejected = await clis.run("review", url, "--reject", "job0001", "--note", "blurry")
    assert rejected.code == 0, rejected
    assert f"shipped to {url}" in rejected.stdout
    approved = await clis.run("review", url, "--approve-all-unreviewed")
    assert approved.code == 0, approved
    assert "0 rejected, 2 approved" in approved.stdout

    lines = all_objects(url)["reviews.jsonl"].decode().splitlines()
    assert [(e["job"], e["verdict"]) for e in map(json.loads, lines)] == [
        ("job0001", "rejected"),
        ("job0000", "approved"),
        ("job0002", "approved"),
    ]
    export = await clis.run("export", url, "--manifest", manifest, "--status", "rejected")
    assert export.code == 0, export
    assert [json.loads(line)["id"] for line in export.stdout.splitlines()] == ["job0001"]
    unknown = await clis.run("review", url, "--reject", "nope")
    assert unknown.code == 2, unknown
    assert "no such job: nope" in unknown.stderr


def test_a_ship_merges_with_what_another_shipped_meanwhile(tmp_path: Path, bucket: str) -> None:
    url = f"s3://{bucket}/r"
    ours = open_run_dir(url, spool=tmp_path / "ours")
    theirs = open_run_dir(url, spool=tmp_path / "theirs")
    assert isinstance(ours, BucketRunDir)
    runner = open_run_dir(url, spool=tmp_path / "runner")
    runner.restore()
    ours.restore()
    theirs.restore()
    append_reviews(theirs.local, [review_event("a", "req-a", "approved")])
    theirs.ship_reviews()
    append_reviews(ours.local, [review_event("b", "req-b", "rejected")])
    ours.ship_reviews()  # read before theirs was shipped: merged, not put over it

    def verdicts(data: bytes) -> list[tuple[str, str]]:
        return [(e["job"], e["verdict"]) for e in map(json.loads, data.splitlines())]

    both = [("a", "approved"), ("b", "rejected")]
    assert verdicts(all_objects(url)["reviews.jsonl"]) == both
    assert verdicts((ours.local / "reviews.jsonl").read_bytes()) == both  # theirs came back too

    # A runner's kept spool reads the verdicts given since (its --redo-rejected needs them) ...
    runner.restore()
    assert verdicts((runner.local / "reviews.jsonl").read_bytes()) == both
    # ... and a spool whose review log is out of date never ships it over the bucket's.
    (theirs.local / "reviews.jsonl").write_bytes(b"")
    theirs.ship(final=True)
    assert verdicts(all_objects(url)["reviews.jsonl"]) == both


async def test_the_page_shows_the_bucket_s_images_and_ships_its_verdicts(
    tmp_path: Path, clis: Clis, bucket: str
) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(2))
    url = f"s3://{bucket}/r"
    async with Emulator(FAST) as emu:
        result = await clis.run(
            "run", manifest, "--out", url, "--spool", tmp_path / "sp", "--no-report", emu=emu
        )
        assert result.code == 0, result
    events = ledger_of(all_objects(url))
    rid = next(e["request_id"] for e in events if e["event"] == "downloaded" and e["job"] == "job0000")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "batchflux", "review", url, "--no-open",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        page = re.search(r"http://127\.0\.0\.1:\d+/\?token=([\w-]+)", line)
        assert page is not None, line
        base, token = page.group(0).split("/?", 1)[0], page.group(1)
        headers = {"X-Batchflux-Token": token, "Origin": base}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/img?k=job0000&w=oh", headers=headers) as r:
                assert r.status == 200, await r.text()
                assert (await r.read()).startswith(b"\x89PNG"), "the output, fetched from the bucket"
            body = {"k": "job0000", "rid": rid, "verdict": "rejected", "note": ""}
            async with http.post(f"{base}/api/verdict", json=body, headers=headers) as r:
                assert r.status == 200, await r.text()
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err
    lines = all_objects(url)["reviews.jsonl"].decode().splitlines()
    assert [(e["job"], e["verdict"]) for e in map(json.loads, lines)] == [("job0000", "rejected")]

"""Input images in a bucket: checked before anything is spent, sent as a signed GET URL that
serves the object (or through the upload host with --upload-inputs), and never written down as
the signed URL itself."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

from runkit import IMAGES, Clis, write_manifest

from batchflux.emulator import Emulator, EmulatorConfig
from batchflux.rundir.objects import open_object_store

FAST = EmulatorConfig(latency_mean=0.05, latency_sd=0.01)


def put_input(bucket: str) -> bytes:
    data = (IMAGES / "cat.jpg").read_bytes()
    open_object_store(f"s3://{bucket}").set("in/cat.jpg", data)
    return data


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return bytes(reply.read())


async def test_an_s3_input_goes_out_as_a_url_that_serves_the_object(
    tmp_path: Path, clis: Clis, bucket: str
) -> None:
    data = put_input(bucket)
    jobs = [{"id": "a", "prompt": "make it blue", "input_image": f"s3://{bucket}/in/cat.jpg"}]
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    async with Emulator(FAST) as emu:
        result = await clis.run("run", manifest, "--out", out, emu=emu)
        assert result.code == 0, result
        (record,) = emu.core.jobs.values()
        sent = record.params["input_image"]
        assert sent.startswith("http://127.0.0.1")
        assert "X-Amz-Expires=10800" in sent  # 3 h: the request is served long before
        assert await asyncio.to_thread(fetch, sent) == data
    ledger = (out / "ledger.jsonl").read_text()
    assert "X-Amz-Signature" not in ledger
    intent = next(json.loads(line) for line in ledger.splitlines() if '"submit_intent"' in line)
    assert intent["params"]["input_image"] == f"s3://{bucket}/in/cat.jpg"
    assert intent["input_sent"].startswith("sha256:")


async def test_upload_inputs_sends_the_object_through_the_upload_host(
    tmp_path: Path, clis: Clis, bucket: str
) -> None:
    put_input(bucket)
    jobs = [
        {"id": f"j{i}", "prompt": f"edit {i}", "input_image": f"s3://{bucket}/in/cat.jpg"} for i in range(3)
    ]
    manifest = write_manifest(tmp_path / "m", jobs)
    async with Emulator(FAST) as emu:
        result = await clis.run("run", manifest, "--out", tmp_path / "out", "--upload-inputs", emu=emu)
        assert result.code == 0, result
        sent = {r.params["input_image"] for r in emu.core.jobs.values()}
        assert len(sent) == 1  # one upload for the three jobs
        assert "/media/uploads/" in next(iter(sent))


async def test_a_missing_input_object_stops_before_anything_is_spent(
    tmp_path: Path, clis: Clis, bucket: str
) -> None:
    put_input(bucket)
    jobs = [
        {"id": "ok", "prompt": "x", "input_image": f"s3://{bucket}/in/cat.jpg"},
        {"id": "gone", "prompt": "y", "input_image": f"s3://{bucket}/in/nope.jpg"},
    ]
    manifest = write_manifest(tmp_path / "m", jobs)
    async with Emulator(FAST) as emu:
        result = await clis.run("run", manifest, "--out", tmp_path / "out", emu=emu)
        assert result.code == 2, result
        assert f"s3://{bucket}/in/nope.jpg" in result.stderr
        assert "1 input images not found" in result.stderr
        assert emu.stats()["submits"] == 0

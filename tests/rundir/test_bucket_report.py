"""The report of a run in a bucket shows every image, also those that left the spool: each image's
thumbnail is made before the spool lets it go, shipped under the prefix, and found again from the
ledger by the run's own report (on a new spool) and by ``batchflux report URL``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from runkit import Clis, plain_jobs, write_manifest
from s3kit import all_objects

from batchflux.emulator import Emulator, EmulatorConfig

FAST = EmulatorConfig(latency_mean=0.05, latency_sd=0.01)


def cards_of(html: bytes) -> dict[str, dict[str, Any]]:
    found = re.search(rb'id="jobs-data"[^>]*>(.*?)</script>', html, re.S)
    assert found is not None
    return {c["k"]: c for c in json.loads(found.group(1))}


def assert_thumbnails_in_the_bucket(objects: dict[str, bytes], job_ids: list[str]) -> None:
    """Every done job's card shows a JPEG thumbnail and links its image, both objects beside the
    report under the prefix (the card's links are relative to report.html)."""
    cards = cards_of(objects["report.html"])
    assert sorted(cards) == job_ids
    for job_id, card in cards.items():
        assert card["st"] == "done", card
        assert not card.get("om"), card
        assert card["oh"] == f"./{job_id}.png", card
        thumb = card["ot"]
        assert isinstance(thumb, str), card
        assert thumb.startswith("./thumbs/"), card
        assert objects[thumb.removeprefix("./")].startswith(b"\xff\xd8"), thumb  # a JPEG


async def test_the_report_has_a_thumbnail_for_every_image_in_the_bucket(
    tmp_path: Path, clis: Clis, bucket: str
) -> None:
    url = f"s3://{bucket}/gallery"
    first, all_jobs = plain_jobs(2), plain_jobs(4)
    async with Emulator(FAST) as emu:
        # Two images shipped and let go by a first spool; the second run, on a new spool, adds two.
        result = await clis.run(
            "run", write_manifest(tmp_path / "m1", first), "--out", url, "--spool", tmp_path / "sp1", emu=emu
        )
        assert result.code == 0, result
        result = await clis.run(
            "run",
            write_manifest(tmp_path / "m2", all_jobs),
            "--out",
            url,
            "--spool",
            tmp_path / "sp2",
            emu=emu,
        )
        assert result.code == 0, result
    ids = [j["id"] for j in all_jobs]
    assert not list((tmp_path / "sp2").glob("*.png"))  # every image left the spool
    assert_thumbnails_in_the_bucket(all_objects(url), ids)

    # From the URL alone: no image on this disk, the thumbnails from the bucket, none sent twice.
    before = {k for k in all_objects(url) if k.startswith("thumbs/")}
    report = await clis.run("report", url)
    assert report.code == 0, report
    objects = all_objects(url)
    assert_thumbnails_in_the_bucket(objects, ids)
    assert {k for k in objects if k.startswith("thumbs/")} == before

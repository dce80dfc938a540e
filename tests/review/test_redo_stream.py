"""``stream(redo_rejected=True)``: the rows the loop gets are the rows results.jsonl holds — the
approval kept on the skipped image, each redone job with its new seed, its kept image and no verdict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from reviewkit import emulator_config

import batchflux
from batchflux.emulator import DEFAULT_API_KEY, Emulator
from batchflux.files.layout import RESULTS_JSONL_FILENAME
from batchflux.review.scripted import give_verdicts


async def test_streamed_rows_of_a_redo_are_the_rows_results_jsonl_holds(batch: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(batch, out)
    give_verdicts([out], approve_unreviewed=False, reject=["retro"])
    give_verdicts([out], approve_unreviewed=True, reject=[])
    async with Emulator(emulator_config()) as emu:
        stream = batchflux.stream(
            batch.parent / "photos.yaml",
            api_key=DEFAULT_API_KEY,
            out_dir=out,
            base_url=emu.base_url,
            redo_rejected=True,
        )
        rows = {row["id"]: row async for row in stream}
        assert emu.stats()["submits"] == 1
    written = {r["id"]: r for r in map(json.loads, (out / RESULTS_JSONL_FILENAME).read_text().splitlines())}
    assert rows == written
    retro = rows["retro"]
    assert (retro["status"], retro["review"], retro["redo"]) == ("done", None, 1)
    assert retro["rejected_images"] == ["retro.rejected-1.png"]
    assert retro["seed"] not in (7, None)
    assert rows["sunset"]["review"] == "approved"

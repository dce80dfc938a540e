"""Helpers for engine tests: manifests written to tmp_path, runs against a real emulator.

Imported by name (pytest puts this directory on sys.path).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from batchflux.emulator import DEFAULT_API_KEY, Emulator
from batchflux.engine.config import EngineConfig
from batchflux.runner import Run, RunOptions, RunResult

IMAGES = Path(__file__).resolve().parents[2] / "sample_manifests" / "images"


def write_manifest(
    directory: Path, jobs: Sequence[dict[str, Any]], *, defaults: dict[str, Any] | None = None
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        image = job.get("input_image")
        if isinstance(image, str) and not image.startswith("http") and not (directory / image).exists():
            (directory / image).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(IMAGES / Path(image).name, directory / image)
    path = directory / "batch.yaml"
    body = {"model": "flux-kontext-max", "defaults": defaults or {"aspect_ratio": "1:1"}, "jobs": list(jobs)}
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def plain_jobs(n: int, prefix: str = "job") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i:04d}", "prompt": f"edit number {i}", "seed": i} for i in range(n)]


async def run_against(
    emu: Emulator, manifest: Path, out: Path, *, api_key: str = DEFAULT_API_KEY, **options: Any
) -> RunResult:
    engine = options.pop("engine", EngineConfig())
    opts = RunOptions(
        manifest=manifest, api_key=api_key, out_dir=out, base_url=emu.base_url, engine=engine, **options
    )
    return await Run(opts).execute()


def ledger_events(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines()]


def downloaded_by_job(out: Path) -> dict[str, dict[str, Any]]:
    return {e["job"]: e for e in ledger_events(out) if e["event"] == "downloaded"}


def assert_images_match_emulator(emu: Emulator, out: Path, job_ids: Sequence[str]) -> None:
    """Every job has exactly one image on disk, byte-identical to what the emulator served."""
    import hashlib

    done = downloaded_by_job(out)
    assert sorted(done) == sorted(job_ids)
    for job_id, ev in done.items():
        info = emu.request_info(ev["request_id"])
        assert info is not None, job_id
        data = (out / ev["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == ev["sha256"] == info["sha256"], job_id


def files_containing(out: Path, secret: str) -> list[str]:
    return [str(p) for p in out.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]

"""Job identity: derived ids, fingerprints, and the round trip manifest → jobs → manifest → jobs."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchflux.manifest import Manifest, load_manifest
from batchflux.manifest.job import Job

SAMPLE_NAMES = ["demo.yaml", "catalog.yaml", "products.yaml", "products.csv", "folder.yaml"]


def one_job(path: Path, body: str) -> Job:
    path.write_text(body)
    (job,) = load_manifest(path).jobs
    return job


def test_derived_id_and_fingerprint_follow_the_documented_canonical_form(mdir: Path) -> None:
    job = one_job(
        mdir / "m.yaml", "jobs:\n  - {prompt: Make it blue, input_image: images/cat.jpg, seed: 3}\n"
    )
    content = hashlib.sha256((mdir / "images" / "cat.jpg").read_bytes()).hexdigest()
    params = {
        "aspect_ratio": "16:9",
        "input_image": f"sha256:{content}",
        "output_format": "png",
        "prompt": "Make it blue",
        "safety_tolerance": 2,
        "seed": 3,
    }
    canonical = json.dumps(
        {"model": "flux-kontext-max", "params": params},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert job.id == hashlib.sha256(canonical.encode()).hexdigest()[:12]
    assert job.fingerprint == hashlib.sha256(f"{canonical}\n{job.id}.png".encode()).hexdigest()[:32]
    assert job.params["input_image"] == "images/cat.jpg"  # the manifest's string, for the engine to upload
    assert job.local_input == (mdir / "images" / "cat.jpg").resolve()


def test_moving_or_renaming_the_input_changes_nothing_editing_it_changes_everything(mdir: Path) -> None:
    body = "jobs:\n  - {prompt: p, input_image: %s}\n"
    before = one_job(mdir / "a.yaml", body % "images/cat.jpg")
    elsewhere = mdir / "elsewhere"
    elsewhere.mkdir()
    shutil.copyfile(mdir / "images" / "cat.jpg", elsewhere / "kitty.jpg")
    moved = one_job(elsewhere / "b.yaml", body % "kitty.jpg")
    assert (moved.id, moved.fingerprint) == (before.id, before.fingerprint)
    (elsewhere / "kitty.jpg").write_bytes((mdir / "images" / "rocket.jpg").read_bytes())
    edited = one_job(elsewhere / "b.yaml", body % "kitty.jpg")
    assert edited.id != before.id
    assert edited.fingerprint != before.fingerprint


@pytest.mark.parametrize(
    ("change", "same_id"),
    [
        ("{id: x, prompt: p, seed: 2}", True),  # a parameter changed under an explicit id
        ("{id: x, prompt: p, seed: 1, output: 'x/{id}.{ext}'}", True),  # the output changed
        ("{id: x, prompt: q, seed: 1}", True),
        ("{id: y, prompt: p, seed: 1}", False),
    ],
)
def test_fingerprint_tells_a_changed_job(mdir: Path, change: str, same_id: bool) -> None:
    base = one_job(mdir / "m.yaml", "jobs:\n  - {id: x, prompt: p, seed: 1}\n")
    changed = one_job(mdir / "m.yaml", f"jobs:\n  - {change}\n")
    assert (changed.id == base.id) is same_id
    assert changed.fingerprint != base.fingerprint


def test_defaults_written_or_implied_are_the_same_job(mdir: Path) -> None:
    implied = one_job(mdir / "m.yaml", "jobs:\n  - {prompt: p}\n")
    written = one_job(
        mdir / "m.yaml",
        "jobs:\n  - {prompt: p, aspect_ratio: '16:9', output_format: png, safety_tolerance: 2}\n",
    )
    csv_row = mdir / "m.csv"
    csv_row.write_text("prompt,seed\np,\n")
    (from_csv,) = load_manifest(csv_row).jobs
    assert implied.id == written.id == from_csv.id
    assert implied.fingerprint == written.fingerprint == from_csv.fingerprint


def jobs_as_yaml(manifest: Manifest, dest: Path) -> Path:
    """Write the jobs back as an explicit YAML jobs list, in the original manifest's directory."""
    jobs = [{"id": j.id, "output": j.output, **j.params} for j in manifest.jobs]
    dest.write_text(
        yaml.safe_dump({"model": manifest.model, "jobs": jobs}, sort_keys=False, allow_unicode=True)
    )
    return dest


def jobs_as_csv(manifest: Manifest, dest: Path) -> Path:
    columns = ["id", "output", *sorted({k for j in manifest.jobs for k in j.params})]
    with open(dest, "w", newline="", encoding="utf-8") as f:
        out = csv.DictWriter(f, columns)
        out.writeheader()
        for j in manifest.jobs:
            out.writerow({"id": j.id, "output": j.output, **j.params})
    return dest


def identity(manifest: Manifest) -> list[tuple[Any, ...]]:
    return [(j.id, j.fingerprint, j.output, j.params, j.local_input) for j in manifest.jobs]


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_round_trip_through_yaml_and_csv(samples: Path, name: str) -> None:
    original = load_manifest(samples / name)
    again = load_manifest(jobs_as_yaml(original, samples / "again.yaml"))
    assert identity(again) == identity(original)
    assert [j.index for j in again.jobs] == list(range(len(original.jobs)))
    as_csv = load_manifest(jobs_as_csv(original, samples / "again.csv"))
    assert identity(as_csv) == identity(original)


def test_round_trip_keeps_derived_ids(mdir: Path) -> None:
    path = mdir / "m.yaml"
    path.write_text(
        "jobs:\n  - {prompt: 'a: colon, \"quotes\" and unicode ✓', input_image: images/cat.jpg}\n"
        "  - {prompt: b, aspect_ratio: '1:1', seed: -1}\n"
    )
    original = load_manifest(path)
    rows = [dict(j.params) for j in original.jobs]  # no id, no output: derived again
    (mdir / "n.yaml").write_text(yaml.safe_dump({"jobs": rows}, allow_unicode=True))
    assert identity(load_manifest(mdir / "n.yaml")) == identity(original)

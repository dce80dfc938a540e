"""``batchflux validate``: text and JSON output, exit codes, --set and --price; every sample validates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchflux.cli import main
from batchflux.manifest import load_manifest

SAMPLES = Path(__file__).resolve().parents[2] / "sample_manifests"
SAMPLE_FILES = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".yaml", ".yml", ".csv"))


def test_there_are_the_promised_samples() -> None:
    names = {p.name for p in SAMPLE_FILES}
    assert {"demo.yaml", "catalog.yaml", "products.csv", "products.yaml", "folder.yaml"} <= names
    assert (SAMPLES / "images" / "SOURCES.md").is_file()


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=[p.name for p in SAMPLE_FILES])
def test_every_sample_manifest_validates(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = load_manifest(path)
    assert manifest.jobs
    assert manifest.warnings == ()
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{path}: OK, {len(manifest.jobs)} job")
    assert err == ""


def test_demo_uses_every_bundled_image_and_mixes_formats() -> None:
    jobs = load_manifest(SAMPLES / "demo.yaml").jobs
    assert {j.local_input.name for j in jobs if j.local_input} == {
        "astronaut.jpg",
        "cat.jpg",
        "coffee.jpg",
        "rocket.jpg",
    }
    assert {j.output_format for j in jobs} == {"jpg", "png"}
    assert "match_input_image" in {j.params["aspect_ratio"] for j in jobs}


def test_folder_sample_crosses_four_images_with_two_prompts() -> None:
    jobs = load_manifest(SAMPLES / "folder.yaml").jobs
    assert [j.id for j in jobs] == [
        f"{s}-{n}" for s in ("astronaut", "cat", "coffee", "rocket") for n in (1, 2)
    ]


def test_text_summary(capsys: pytest.CaptureFixture[str]) -> None:
    path = SAMPLES / "catalog.yaml"
    assert main(["validate", str(path), "--price", "0.085"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{path}: OK, 6 jobs for flux-kontext-max",
        "  aspect ratios:   4:5 ×2, 16:9 ×1, 9:16 ×1, 1:1 ×1, 21:9 ×1",
        "  output formats:  jpg ×5, png ×1",
        "  input images:    1 local (1 file to upload), 4 URL, 1 none",
        "  estimated cost:  $0.51 (6 × $0.085)",
    ]


def test_json_summary_with_set(capsys: pytest.CaptureFixture[str]) -> None:
    path = SAMPLES / "folder.yaml"
    code = main(["validate", str(path), "--json", "--set", "output_format=png", "--set", "aspect_ratio=1:1"])
    assert code == 0
    body = json.loads(capsys.readouterr().out)
    assert body["ok"] is True
    assert body["jobs"] == 8
    assert body["aspect_ratios"] == {"1:1": 8}  # --set beats the manifest's defaults:
    assert body["output_formats"] == {"png": 8}
    assert body["inputs"] == {"local_jobs": 8, "local_files": 4, "url_jobs": 0, "none": 0}
    assert body["estimated_cost"] == pytest.approx(0.8)


def test_errors_go_to_stderr_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("jobs:\n" + "".join(f"  - {{prompt: p{i}, seed: x}}\n" for i in range(60)))
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"{path}:2: jobs[0].seed: 'x' is not an integer"
    assert lines[50] == "… and 10 more"
    assert lines[51] == f"{path}: 60 problems (the first 50 shown); fix them and validate again"


def test_errors_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("jobs:\n  - {prompt: a, aspect_ratio: '16:10'}\n")
    assert main(["validate", str(path), "--json", "--set", "seed=nope"]) == 2
    body = json.loads(capsys.readouterr().out)
    assert body["ok"] is False
    assert body["total"] == 2
    assert body["problems"][0] == {
        "source": "--set",
        "line": None,
        "field": "seed",
        "message": "'nope' is not an integer",
    }
    assert body["problems"][1]["line"] == 2
    assert body["problems"][1]["field"] == "jobs[0].aspect_ratio"


@pytest.mark.parametrize(
    "argv",
    [
        ["validate"],
        ["validate", "x.yaml", "--set", "novalue"],
        ["validate", "x.yaml", "--price", "-1"],
        ["validate", "x.yaml", "--price", "nan"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--help"]) == 0
    out = capsys.readouterr().out
    assert "MANIFEST" in out
    assert "--set KEY=VALUE" in out
    assert "--price USD" in out

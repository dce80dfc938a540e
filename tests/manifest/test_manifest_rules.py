"""Every validation rule, as a table: a small YAML manifest and the exact problems it must produce.

Each manifest is written to ``m.yaml`` in a scratch directory (the cwd) beside ``images/``, so the
messages read exactly as a user sees them: ``m.yaml:LINE: FIELD: MESSAGE``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from batchflux.manifest import load_manifest

RATIOS = "match_input_image, 1:1, 16:9, 9:16, 4:3, 3:4, 3:2, 2:3, 4:5, 5:4, 21:9, 9:21, 2:1, 1:2"

CASES: list[tuple[str, str, list[str]]] = [
    ("valid", "jobs:\n  - prompt: hi\n", []),
    (
        "enum value",
        "jobs:\n  - prompt: a\n  - prompt: b\n  - prompt: c\n  - prompt: d\n    aspect_ratio: '16:10'\n",
        [f"m.yaml:6: jobs[3].aspect_ratio: '16:10' is not one of {RATIOS}"],
    ),
    (
        "enum case",
        "jobs:\n  - prompt: a\n    output_format: PNG\n",
        ["m.yaml:3: jobs[0].output_format: 'PNG' is not one of jpg, png (did you mean 'png'?)"],
    ),
    (
        "unknown parameter",
        "jobs:\n  - prompt: a\n    aspect: '1:1'\n",
        ["m.yaml:3: jobs[0].aspect: unknown parameter (did you mean 'aspect_ratio'?)"],
    ),
    (
        "not an integer",
        "jobs:\n  - prompt: a\n    seed: abc\n  - prompt: b\n    seed: 1.5\n",
        [
            "m.yaml:3: jobs[0].seed: 'abc' is not an integer",
            "m.yaml:5: jobs[1].seed: '1.5' is not an integer",
        ],
    ),
    (
        "integer ranges",
        "jobs:\n  - {prompt: a, safety_tolerance: 7}\n  - {prompt: b, safety_tolerance: -1}\n"
        "  - {prompt: c, seed: 2147483648}\n",
        [
            "m.yaml:2: jobs[0].safety_tolerance: 7 is above the maximum 6",
            "m.yaml:3: jobs[1].safety_tolerance: -1 is below the minimum 0",
            "m.yaml:4: jobs[2].seed: 2147483648 is above the maximum 2147483647",
        ],
    ),
    (
        "integers written as text still count",
        "jobs:\n  - {prompt: a, seed: '42', safety_tolerance: ' 1 '}\n",
        [],
    ),
    (
        "prompt required",
        "jobs:\n  - aspect_ratio: '1:1'\n",
        ["m.yaml:2: jobs[0].prompt: is required (no value here and no default)"],
    ),
    ("prompt empty", "jobs:\n  - prompt: ''\n", ["m.yaml:2: jobs[0].prompt: must not be empty"]),
    ("prompt blank", "jobs:\n  - prompt: '   '\n", ["m.yaml:2: jobs[0].prompt: must not be empty"]),
    (
        "prompt a list",
        "jobs:\n  - prompt: [a, b]\n",
        ["m.yaml:2: jobs[0].prompt: must be a single value, not a list"],
    ),
    (
        "safety_tolerance with input_image",
        "jobs:\n  - prompt: a\n    input_image: images/cat.jpg\n    safety_tolerance: 3\n",
        ["m.yaml:4: jobs[0].safety_tolerance: 3 is above 2, the most allowed with an input_image"],
    ),
    (
        "safety_tolerance from defaults, input_image from the job",
        "defaults:\n  safety_tolerance: 5\njobs:\n  - prompt: a\n"
        "  - prompt: b\n    input_image: images/cat.jpg\n",
        ["m.yaml:5: jobs[1].safety_tolerance: 5 is above 2, the most allowed with an input_image"],
    ),
    (
        "output_format against the extension",
        "jobs:\n  - {id: a, prompt: a, output_format: jpg, output: '{id}.png'}\n"
        "  - {id: b, prompt: b, output_format: png, output: 'b.txt'}\n"
        "  - {id: c, prompt: c, output_format: jpg, output: 'c.JPEG'}\n",
        [
            "m.yaml:2: jobs[0].output: 'a.png' ends in .png but output_format is jpg",
            "m.yaml:3: jobs[1].output: 'b.txt' does not end in .png (output_format is png); use .{ext}",
        ],
    ),
    (
        "duplicate ids",
        "jobs:\n  - {id: x, prompt: a}\n  - {id: y, prompt: b}\n  - {id: x, prompt: c}\n",
        ["m.yaml:4: jobs[2].id: duplicate id 'x' (first used at m.yaml:2)"],
    ),
    (
        "identical jobs derive the same id",
        "jobs:\n  - {prompt: a}\n  - {prompt: a}\n",
        [
            "m.yaml:3: jobs[1].id: same parameters as the job at m.yaml:2 (derived id '{ID}'); "
            "give each an explicit id (or another seed) to run both"
        ],
    ),
    (
        "two jobs, one output file",
        "jobs:\n  - {id: a, prompt: a, output: same.png}\n  - {id: b, prompt: b, output: Same.PNG}\n",
        [
            "m.yaml:3: jobs[1].output: 'Same.PNG' is also written by the job at m.yaml:2 "
            "(the names differ only in case)"
        ],
    ),
    (
        "output template leaves the run directory",
        "output: '../{id}.{ext}'\njobs:\n  - prompt: a\n",
        ["m.yaml:1: output: '../{id}.{ext}' would leave the run directory ('..')"],
    ),
    (
        "absolute output",
        "jobs:\n  - {prompt: a, output: '/tmp/{id}.{ext}'}\n",
        ["m.yaml:2: jobs[0].output: '/tmp/{id}.{ext}' is absolute; outputs stay inside the run directory"],
    ),
    (
        "output over the ledger",
        "jobs:\n  - {prompt: a, output: 'ledger.jsonl'}\n",
        ["m.yaml:2: jobs[0].output: 'ledger.jsonl' would overwrite the run's own ledger.jsonl"],
    ),
    (
        "output template fields",
        "output: '{id}/{colour}.{ext}'\njobs:\n  - prompt: a\n",
        [
            "m.yaml:1: output: '{id}/{colour}.{ext}': unknown field {colour}; use id, ext, index, "
            "aspect_ratio, input_image, output_format, prompt, safety_tolerance, seed"
        ],
    ),
    (
        "output template attribute access",
        "output: '{id.__class__}.{ext}'\njobs:\n  - prompt: a\n",
        ["m.yaml:1: output: '{id.__class__}.{ext}': {id.__class__} is not a plain field name"],
    ),
    (
        "output template without a value for this job",
        "output: '{seed}.{ext}'\njobs:\n  - {prompt: a, seed: 1}\n  - {prompt: b}\n",
        ["m.yaml:4: jobs[1].output: {seed} has no value for this job"],
    ),
    (
        "parameter values in file names are made safe",
        "output: '{aspect_ratio}/{index:03d}-{prompt}.{ext}'\n"
        "jobs:\n  - {prompt: 'a/../b', aspect_ratio: '4:5'}\n",
        [],
    ),
    (
        "input image problems",
        "jobs:\n  - {prompt: a, input_image: images/nope.jpg}\n  - {prompt: b, input_image: images}\n"
        "  - {prompt: c, input_image: 'file:///etc/hosts'}\n  - {prompt: d, input_image: 'ftp://h/x.jpg'}\n"
        "  - {prompt: e, input_image: 'https://'}\n  - {prompt: f, input_image: notes.txt}\n",
        [
            "m.yaml:2: jobs[0].input_image: 'images/nope.jpg': file not found",
            "m.yaml:3: jobs[1].input_image: 'images': is a directory, not an image file",
            "m.yaml:4: jobs[2].input_image: 'file:///etc/hosts': file:// URLs are not accepted; "
            "write the path itself",
            "m.yaml:5: jobs[3].input_image: 'ftp://h/x.jpg': only http(s), s3, gs or az URLs or local "
            "file paths are accepted, not ftp:",
            "m.yaml:6: jobs[4].input_image: 'https://' is not a valid URL",
            "m.yaml:7: jobs[5].input_image: 'notes.txt': is not an image Pillow can identify",
        ],
    ),
    (
        "a bad default input image is reported once",
        "defaults:\n  input_image: images/nope.jpg\njobs:\n  - prompt: a\n  - prompt: b\n",
        ["m.yaml:2: defaults.input_image: 'images/nope.jpg': file not found"],
    ),
    (
        "bad ids",
        "jobs:\n  - {id: 'a b!', prompt: a}\n  - {id: " + "x" * 129 + ", prompt: b}\n",
        [
            "m.yaml:2: jobs[0].id: 'a b!' may only hold letters, digits, '.', '_' and '-' (not ' ' '!')",
            "m.yaml:3: jobs[1].id: is 129 characters long; at most 128",
        ],
    ),
    (
        "manifest structure",
        "modle: x\nmodel: 'a/b'\ndefaults: [1]\njobs:\n  - just text\n",
        [
            "m.yaml:1: modle: unknown key (did you mean 'model'?); a manifest has model, defaults, output, "
            "jobs, jobs_csv, for_each",
            "m.yaml:2: model: 'a/b' is not a model slug (letters, digits, '.', '_', '-')",
            "m.yaml:3: defaults: must be a mapping, not a list",
            "m.yaml:5: jobs[0]: a job is a mapping of parameters, not a value",
        ],
    ),
    ("no jobs", "model: flux-kontext-max\n", ["m.yaml:1: no jobs: add jobs:, jobs_csv: or for_each:"]),
    (
        "duplicate YAML keys",
        "jobs:\n  - prompt: a\n    seed: 1\n    seed: 2\n",
        ["m.yaml:4: seed: duplicate key (first on line 3)"],
    ),
    (
        "defaults are checked once, where written",
        "defaults:\n  seed: x\n  colour: red\njobs:\n  - prompt: a\n  - prompt: b\n",
        [
            "m.yaml:2: defaults.seed: 'x' is not an integer",
            "m.yaml:3: defaults.colour: unknown parameter",
        ],
    ),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(
    mdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    problems: Callable[..., list[str]],
    body: str,
    expected: list[str],
) -> None:
    monkeypatch.chdir(mdir)
    (mdir / "notes.txt").write_text("not an image")
    Path("m.yaml").write_text(body)
    found = problems(Path("m.yaml"))
    if any("{ID}" in e for e in expected):  # a derived id: take it from the message, check its shape
        derived = found[0].split("derived id '")[1][:12] if found else ""
        assert len(derived) == 12
        assert all(c in "0123456789abcdef" for c in derived)
        expected = [e.replace("{ID}", derived) for e in expected]
    assert found == expected


def test_set_overrides_are_typed_and_applied_as_defaults(mdir: Path) -> None:
    path = mdir / "m.yaml"
    path.write_text(
        "defaults:\n  seed: 1\n  output_format: png\njobs:\n  - {prompt: a}\n  - {prompt: b, seed: 9}\n"
    )
    manifest = load_manifest(path, {"seed": "5", "output_format": "jpg"})
    assert [j.params["seed"] for j in manifest.jobs] == [5, 9]  # --set beats defaults:, the job beats --set
    assert [j.output for j in manifest.jobs] == [f"{j.id}.jpg" for j in manifest.jobs]
    manifest = load_manifest(path, {"output": "{index}-{id}.{ext}"})
    assert [j.output for j in manifest.jobs] == [f"{i}-{j.id}.png" for i, j in enumerate(manifest.jobs)]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"seed": "x"}, ["--set: seed: 'x' is not an integer"]),
        ({"sed": "1"}, ["--set: sed: unknown parameter (did you mean 'seed'?)"]),
        (
            {"output": "../{id}.{ext}"},
            ["--set: output: '../{id}.{ext}' would leave the run directory ('..')"],
        ),
        ({"input_image": "images/none.png"}, ["--set: input_image: 'images/none.png': file not found"]),
    ],
)
def test_bad_set_overrides(
    mdir: Path, problems: Callable[..., list[str]], overrides: dict[str, str], expected: list[str]
) -> None:
    path = mdir / "m.yaml"
    path.write_text("jobs:\n  - {prompt: a}\n  - {prompt: b}\n")
    assert problems(path, overrides) == expected


def test_model_without_schema_passes_parameters_through(mdir: Path) -> None:
    path = mdir / "m.yaml"
    path.write_text(
        "model: some-other-model\n"
        "jobs:\n  - {prompt: a, steps: 30, guidance: 3.5, loras: [x, y], flag: yes}\n"
    )
    manifest = load_manifest(path)
    assert manifest.warnings == ("model 'some-other-model' has no schema table; parameters are not checked",)
    (job,) = manifest.jobs
    assert job.model == "some-other-model"
    assert job.params == {"prompt": "a", "steps": 30, "guidance": 3.5, "loras": ["x", "y"], "flag": True}
    assert job.output == f"{job.id}.png"


def test_yaml_scalars_are_typed_by_the_schema_not_by_yaml(mdir: Path) -> None:
    """Unquoted 16:9 is a base-60 integer in YAML 1.1, 'yes' a boolean, 007 octal: the schema decides."""
    path = mdir / "m.yaml"
    path.write_text("jobs:\n  - {prompt: yes, aspect_ratio: 16:9, seed: 007}\n")
    (job,) = load_manifest(path).jobs
    assert job.params["prompt"] == "yes"
    assert job.params["aspect_ratio"] == "16:9"
    assert job.params["seed"] == 7


def test_null_means_not_given(mdir: Path) -> None:
    path = mdir / "m.yaml"
    path.write_text("defaults:\n  seed: 3\njobs:\n  - {prompt: a, seed: ~, aspect_ratio: }\n")
    (job,) = load_manifest(path).jobs
    assert job.params["seed"] == 3
    assert job.params["aspect_ratio"] == "16:9"  # the model's default


def test_anchors_and_merge_keys(mdir: Path) -> None:
    path = mdir / "m.yaml"
    path.write_text(
        "defaults: &base\n  output_format: jpg\n  seed: 1\n"
        "jobs:\n  - &first {prompt: a, aspect_ratio: '1:1'}\n"
        "  - <<: [*first, *base]\n    seed: 2\n    id: second\n"
    )
    first, second = load_manifest(path).jobs
    assert second.id == "second"
    assert second.params == {**first.params, "seed": 2}
    assert second.params["aspect_ratio"] == "1:1"
    assert second.output_format == "jpg"


def test_match_input_image_without_input_warns(mdir: Path) -> None:
    path = mdir / "m.yaml"
    path.write_text("defaults: {aspect_ratio: match_input_image}\njobs:\n  - {prompt: a}\n")
    assert load_manifest(path).warnings == (
        "1 job(s) ask for aspect_ratio match_input_image without an input_image",
    )


def test_every_problem_is_reported_not_just_the_first(mdir: Path, problems: Callable[..., list[str]]) -> None:
    path = mdir / "m.yaml"
    path.write_text("jobs:\n" + "".join(f"  - {{prompt: p{i}, seed: x{i}}}\n" for i in range(120)))
    from batchflux.manifest import ManifestError

    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.total == 120
    assert len(caught.value.problems) == 120
    text = str(caught.value).splitlines()
    assert len(text) == 51
    assert text[0] == "m.yaml:2: jobs[0].seed: 'x0' is not an integer".replace("m.yaml", str(path))
    assert text[-1] == "… and 70 more"

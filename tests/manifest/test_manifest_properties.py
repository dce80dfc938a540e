"""Properties: any manifest either loads (and then its jobs are sound) or raises ManifestError whose
problems are all located in a real file and line — never any other exception. And valid job lists
survive manifest → jobs → manifest (YAML and CSV) → jobs with the same ids and fingerprints.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchflux.manifest import ManifestError, load_manifest
from batchflux.manifest.identity import ID_PATTERN
from batchflux.manifest.templates import path_problem

SAMPLES = Path(__file__).resolve().parents[2] / "sample_manifests"
PARAMS = ["prompt", "input_image", "aspect_ratio", "output_format", "safety_tolerance", "seed"]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

INTERESTING = [
    "16:9", "1:1", "16:10", "match_input_image", "jpg", "png", "PNG", "images/cat.jpg", "images",
    "images/none.jpg", "https://example.com/a.jpg", "file:///etc/passwd", "data:x", "../x", "/abs",
    "{id}.{ext}", "{id}/{seed}.{ext}", "{foo}", "{", "ledger.jsonl", "", " ", "-1", "3", "7", "x",
    "yes", "~", "0x1F", "1e3", "2147483648", "a" * 130,
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(INTERESTING),
)
keys = st.one_of(st.sampled_from([*PARAMS, "id", "output", "glob", "<<"]), st.text(max_size=6))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
jobs = st.lists(st.dictionaries(keys, values, max_size=6), max_size=6)
for_each = st.dictionaries(
    st.sampled_from(["input_image", "prompt", "seed", "aspect_ratio", "output", "id", "nope"]),
    st.one_of(values, st.just({"glob": "images/*.jpg"}), st.lists(scalars, max_size=3)),
    max_size=3,
)
manifests = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["flux-kontext-max", "other-model", "a/b", ""]) | values,
        "defaults": st.dictionaries(keys, values, max_size=4) | values,
        "output": st.sampled_from(INTERESTING) | values,
        "jobs": jobs | values,
        "jobs_csv": st.sampled_from(["rows.csv", "missing.csv", "m.yaml", "images"]) | values,
        "for_each": for_each | values,
        "extra": values,
    },
)
overrides = st.dictionaries(
    st.sampled_from([*PARAMS, "output", "sed"]), st.sampled_from(INTERESTING), max_size=2
)
cells = st.one_of(st.text(max_size=10), st.sampled_from(INTERESTING))
csv_tables = st.tuples(
    st.lists(st.sampled_from([*PARAMS, "id", "output", "aspect", ""]), min_size=1, max_size=5),
    st.lists(st.lists(cells, max_size=6), max_size=6),
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("props")
    shutil.copytree(SAMPLES / "images", root / "images", copy_function=shutil.copyfile)
    (root / "rows.csv").write_text("prompt,seed\nfrom csv,1\n")
    return root


def line_count(path: Path) -> int:
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return 1
    return 1 + sum(text.count(c) for c in ("\n", "\r", "\x85", "\u2028", "\u2029"))


def assert_sound(path: Path, given_overrides: Mapping[str, str] | None = None) -> None:
    """The property: a sound manifest, or located problems — nothing else."""
    try:
        manifest = load_manifest(path, given_overrides)
    except ManifestError as exc:
        assert_located(path, exc)
        return
    assert manifest.jobs
    assert [j.index for j in manifest.jobs] == list(range(len(manifest.jobs)))
    assert len({j.id for j in manifest.jobs}) == len(manifest.jobs)
    assert len({j.output.casefold() for j in manifest.jobs}) == len(manifest.jobs)
    for job in manifest.jobs:
        assert ID_PATTERN.fullmatch(job.id)
        assert path_problem(job.output) is None
        assert len(job.fingerprint) == 32
        assert job.local_input is None or job.local_input.is_file()


def assert_located(path: Path, error: ManifestError) -> None:
    assert error.problems
    assert error.total >= len(error.problems)
    assert str(error)
    for problem in error.problems:
        assert problem.message
        if problem.source == "--set":
            assert problem.line is None
            continue
        source = Path(problem.source)
        assert source.resolve().parent == path.resolve().parent, problem
        if problem.line is not None:
            assert 1 <= problem.line <= line_count(source), problem


@FUZZ
@given(document=manifests, extra=overrides)
def test_random_yaml_manifests(workdir: Path, document: dict[str, Any], extra: dict[str, str]) -> None:
    path = workdir / "m.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    assert_sound(path, extra)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes(workdir: Path, data: bytes) -> None:
    for name in ("b.yaml", "b.csv"):
        (workdir / name).write_bytes(data)
        assert_sound(workdir / name)


@FUZZ
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=3), st.text(max_size=3)),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_samples(workdir: Path, edits: list[tuple[int, int, str]]) -> None:
    """Typos anywhere in a real manifest: delete a few characters, insert a few."""
    for name in ("demo.yaml", "catalog.yaml", "products.csv"):
        text = (SAMPLES / name).read_text()
        for position, delete, insert in edits:
            at = position % (len(text) + 1)
            text = text[:at] + insert + text[at + delete :]
        path = workdir / f"mut{Path(name).suffix}"
        path.write_text(text)
        assert_sound(path)


@FUZZ
@given(table=csv_tables, extra=overrides)
def test_random_csv(workdir: Path, table: tuple[list[str], list[list[str]]], extra: dict[str, str]) -> None:
    header, rows = table
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path = workdir / "r.csv"
    path.write_text(buffer.getvalue())
    assert_sound(path, extra)


prompts = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\x85"), min_size=1
).filter(lambda s: s.strip())
valid_jobs = st.lists(
    st.fixed_dictionaries(
        {"prompt": prompts},
        optional={
            "input_image": st.sampled_from(
                ["images/cat.jpg", "images/rocket.jpg", "https://example.com/a.jpg"]
            ),
            "aspect_ratio": st.sampled_from(["match_input_image", "1:1", "16:9", "21:9"]),
            "output_format": st.sampled_from(["jpg", "png"]),
            "safety_tolerance": st.integers(min_value=0, max_value=2),
            "seed": st.integers(min_value=-1, max_value=2**31 - 1),
        },
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda job: job["prompt"],
)


@FUZZ
@given(
    job_list=valid_jobs,
    template=st.sampled_from(["{id}.{ext}", "{index:04d}-{id}.{ext}", "{aspect_ratio}/{id}.{ext}"]),
)
def test_round_trip(workdir: Path, job_list: list[dict[str, Any]], template: str) -> None:
    first_path = workdir / "rt.yaml"
    first_path.write_text(yaml.safe_dump({"output": template, "jobs": job_list}, allow_unicode=True))
    first = load_manifest(first_path)
    written = [{"id": j.id, "output": j.output, **j.params} for j in first.jobs]
    (workdir / "rt2.yaml").write_text(yaml.safe_dump({"jobs": written}, allow_unicode=True))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["id", "output", *PARAMS])
    writer.writeheader()
    writer.writerows(written)
    (workdir / "rt2.csv").write_text(buffer.getvalue(), encoding="utf-8")
    expected = [(j.id, j.fingerprint, j.output, j.params) for j in first.jobs]
    for again in (load_manifest(workdir / "rt2.yaml"), load_manifest(workdir / "rt2.csv")):
        assert [(j.id, j.fingerprint, j.output, j.params) for j in again.jobs] == expected

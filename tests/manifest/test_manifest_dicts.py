"""Jobs given as Python mappings are validated exactly as manifest rows, and written back out as a CSV
manifest that loads into the same jobs (``load_jobs``, ``write_csv_manifest``)."""

from __future__ import annotations

import io
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchflux.manifest import ManifestError, load_jobs, load_manifest
from batchflux.manifest.job import Job
from batchflux.manifest.write import ManifestRow, NotWritable, csv_cells, write_csv_manifest


def problems_of(jobs: list[Any], base: Path | None = None) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_jobs(jobs, base_dir=base)
    return [str(p) for p in caught.value.problems]


def same_jobs(a: tuple[Job, ...], b: tuple[Job, ...]) -> None:
    assert [(j.id, j.fingerprint, j.output, j.local_input) for j in a] == [
        (j.id, j.fingerprint, j.output, j.local_input) for j in b
    ]
    for x, y in zip(a, b, strict=True):
        assert {k: v for k, v in x.params.items() if k != "input_image"} == {
            k: v for k, v in y.params.items() if k != "input_image"
        }


def test_mappings_and_csv_rows_make_the_same_jobs(mdir: Path) -> None:
    csv_text = (
        "id,input_image,prompt,aspect_ratio,seed,output\n"
        "cat,images/cat.jpg,Make it red,1:1,7,cats/{id}.{ext}\n"
        ",,A poster,,,\n"
    )
    (mdir / "m.csv").write_text(csv_text)
    from_csv = load_manifest(mdir / "m.csv")
    from_dicts = load_jobs(
        [
            {"id": "cat", "input_image": "images/cat.jpg", "prompt": "Make it red", "aspect_ratio": "1:1",
             "seed": "7", "output": "cats/{id}.{ext}"},
            {"prompt": "A poster", "seed": None},  # None: the default, like an empty cell
        ],
        base_dir=mdir,
    )  # fmt: skip
    same_jobs(from_csv.jobs, from_dicts.jobs)
    assert from_dicts.jobs[0].params["seed"] == 7  # typed by the schema, like a CSV cell
    assert from_dicts.jobs[1].source == "jobs[1]"


def test_every_problem_is_raised_at_once_named_by_position(mdir: Path) -> None:
    got = problems_of(
        [
            {"prompt": "ok", "seed": "abc"},
            "not a job",
            {"prompt": "x", "aspect": "1:1", "id": "a b"},
            {"prompt": ["a", "list"], "input_image": "images/missing.jpg"},
            {"prompt": "twin", "seed": 1},
            {"prompt": "twin", "seed": 1},
            {"seed": 3, "output": "../escape.png"},
            {"prompt": "y", "output_format": "webp", "safety_tolerance": True},
        ],
        mdir,
    )
    assert got == [
        "jobs[0].seed: 'abc' is not an integer",
        "jobs[1]: a job is a mapping of parameters, not str",
        "jobs[2].aspect: unknown parameter (did you mean 'aspect_ratio'?)",
        "jobs[2].id: 'a b' may only hold letters, digits, '.', '_' and '-' (not ' ')",
        "jobs[3].prompt: must be a single value, not a list",
        "jobs[3].input_image: 'images/missing.jpg': file not found",
        "jobs[5].id: same parameters as the job at jobs[4] (derived id 'fc3e536f5fa8'); "
        "give each an explicit id (or another seed) to run both",
        "jobs[6].output: '../escape.png' would leave the run directory ('..')",
        "jobs[6].prompt: is required (no value here and no default)",
        "jobs[7].output_format: 'webp' is not one of jpg, png",
        "jobs[7].safety_tolerance: True is not an integer",
    ]


def test_no_jobs_and_a_bad_override_are_problems_too(mdir: Path) -> None:
    assert problems_of([], mdir) == ["no jobs: the manifest lists none"]
    with pytest.raises(ManifestError) as caught:
        load_jobs([{"prompt": "x"}], overrides={"seed": "many"})
    assert [str(p) for p in caught.value.problems] == ["--set: seed: 'many' is not an integer"]


def test_local_inputs_are_relative_to_base_dir(mdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(mdir / "images")
    here = load_jobs([{"prompt": "x", "input_image": "cat.jpg"}])  # default: the current directory
    there = load_jobs([{"prompt": "x", "input_image": "images/cat.jpg"}], base_dir=mdir)
    assert here.jobs[0].local_input == there.jobs[0].local_input == (mdir / "images" / "cat.jpg").resolve()
    assert here.jobs[0].fingerprint == there.jobs[0].fingerprint  # content, not the path written


def test_the_written_manifest_loads_into_the_same_jobs(mdir: Path) -> None:
    jobs = load_jobs(
        [
            {"id": "cat", "input_image": "images/cat.jpg", "prompt": 'Say "hi",\nthen wave', "seed": -1},
            {"prompt": "=SUM(A1:A9) and a tab\there", "output": "deep/{aspect_ratio}/{id}.{ext}"},
            {"prompt": "url input", "input_image": "https://example.com/a.jpg", "output_format": "jpg"},
        ],
        base_dir=mdir,
    )
    dest = mdir / "elsewhere" / "retry.csv"
    dest.parent.mkdir()
    with dest.open("w", encoding="utf-8", newline="") as fh:
        assert write_csv_manifest(fh, (ManifestRow.of(j) for j in jobs.jobs), dest.parent) == 3
    text = dest.read_text()
    assert "../images/cat.jpg" in text  # relative to the new file's folder
    assert "'=SUM" not in text  # a manifest keeps values exactly (results.csv is the guarded one)
    same_jobs(jobs.jobs, load_manifest(dest).jobs)


def test_what_a_csv_manifest_cannot_hold_is_refused() -> None:
    other = ManifestRow("x", "some-other-model", {"prompt": "p"}, "x.png")
    with pytest.raises(NotWritable, match="for model 'some-other-model'"):
        csv_cells(other, Path())
    odd = ManifestRow("x", "flux-kontext-max", {"prompt": "p", "strength": 3}, "x.png")
    with pytest.raises(NotWritable, match="strength"):
        csv_cells(odd, Path())


_PROMPT = st.text(
    alphabet=st.one_of(st.characters(blacklist_categories=("Cs", "Cc")), st.sampled_from("\t\n\r\"',=+-@")),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() != "")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prompts=st.lists(_PROMPT, min_size=1, max_size=5),
    seeds=st.lists(st.integers(-(2**31), 2**31 - 1), min_size=5, max_size=5),
    folders=st.lists(st.text(string.ascii_letters, min_size=1, max_size=8), min_size=5, max_size=5),
)
def test_any_valid_jobs_round_trip_through_a_written_manifest(
    tmp_path: Path, prompts: list[str], seeds: list[int], folders: list[str]
) -> None:
    given_jobs = [  # literal braces in an output path, too: "{{x}}" in a template is "{x}"
        {"id": f"j{i}", "prompt": p, "seed": seeds[i], "output": f"{folders[i]}{{{{x}}}}/{{id}}.{{ext}}"}
        for i, p in enumerate(prompts)
    ]
    jobs = load_jobs(given_jobs, base_dir=tmp_path)
    assert "{x}" in jobs.jobs[0].output
    buffer = io.StringIO(newline="")
    write_csv_manifest(buffer, (ManifestRow.of(j) for j in jobs.jobs), tmp_path)
    path = tmp_path / "round.csv"
    path.write_bytes(buffer.getvalue().encode())
    same_jobs(jobs.jobs, load_manifest(path).jobs)
    assert [j.params["prompt"] for j in load_manifest(path).jobs] == prompts

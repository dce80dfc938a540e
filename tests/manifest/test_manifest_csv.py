"""CSV manifests and jobs_csv: quoting, BOM, CRLF, empty cells, typing, header problems, row lines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from batchflux.manifest import load_manifest


def write(path: Path, text: str, newline: str = "\n", bom: bool = False) -> Path:
    data = text.replace("\n", newline).encode()
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("bom", [False, True])
def test_quoting_embedded_commas_newlines_bom_crlf(mdir: Path, newline: str, bom: bool) -> None:
    path = write(
        mdir / "p.csv",
        'id,prompt,seed\nq1,"a, b and ""c""",1\nq2,"two\nlines",2\nq3,plain,3\n',
        newline,
        bom,
    )
    jobs = load_manifest(path).jobs
    assert [j.id for j in jobs] == ["q1", "q2", "q3"]
    assert jobs[0].params["prompt"] == 'a, b and "c"'
    assert jobs[1].params["prompt"] == f"two{newline}lines"
    assert [j.params["seed"] for j in jobs] == [1, 2, 3]
    assert [j.source for j in jobs] == [f"{path}:2", f"{path}:3", f"{path}:5"]  # q2 spans lines 3 and 4


def test_empty_cells_take_the_defaults(mdir: Path) -> None:
    path = write(mdir / "p.csv", "prompt,aspect_ratio,seed,output_format\na,,,\nb,1:1,  ,jpg\nc, 4:5 ,7,\n")
    jobs = load_manifest(path, {"seed": "11", "output_format": "jpg"}).jobs
    assert [j.params["aspect_ratio"] for j in jobs] == ["16:9", "1:1", "4:5"]
    assert [j.params["seed"] for j in jobs] == [11, 11, 7]
    assert [j.output_format for j in jobs] == ["jpg", "jpg", "jpg"]


def test_blank_lines_and_short_rows(mdir: Path) -> None:
    path = write(mdir / "p.csv", "prompt,seed,aspect_ratio\n\na\n\nb,2\n")
    jobs = load_manifest(path).jobs
    assert [(j.params["prompt"], j.params.get("seed")) for j in jobs] == [("a", None), ("b", 2)]
    assert [j.source.rsplit(":", 1)[1] for j in jobs] == ["3", "5"]


def test_tsv(mdir: Path) -> None:
    path = write(mdir / "p.tsv", "prompt\tseed\nhello, world\t4\n")
    (job,) = load_manifest(path).jobs
    assert job.params["prompt"] == "hello, world"
    assert job.params["seed"] == 4


CSV_CASES: list[tuple[str, str, list[str]]] = [
    (
        "typed cells",
        "prompt,seed,safety_tolerance,aspect_ratio\na,abc,1,1:1\nb,1,9,1:1\nc,1,1,16:10\n",
        [
            "p.csv:2: seed: 'abc' is not an integer",
            "p.csv:3: safety_tolerance: 9 is above the maximum 6",
            "p.csv:4: aspect_ratio: '16:10' is not one of match_input_image, 1:1, 16:9, 9:16, 4:3, 3:4, "
            "3:2, 2:3, 4:5, 5:4, 21:9, 9:21, 2:1, 1:2",
        ],
    ),
    (
        "header problems are reported once",
        "prompt,aspect,,prompt\na,1,2,3\nb,1,2,3\n",
        [
            "p.csv:1: aspect: unknown column (did you mean 'aspect_ratio'?)",
            "p.csv:1: column 3 has no name",
            "p.csv:1: prompt: column 4 repeats the column 'prompt'",
        ],
    ),
    ("too many cells", "prompt,seed\na,1\nb,2,3\n", ["p.csv:3: the row has 3 cells but the header has 2"]),
    (
        "prompt missing in a row",
        "id,prompt\nx,a\ny,\n",
        ["p.csv:3: prompt: is required (no value here and no default)"],
    ),
    (
        "ids and outputs",
        "id,prompt,output\nx,a,\nx,b,\n'q',c,\nz,d,../z.png\nw,e,one.png\nv,f,ONE.png\n",
        [
            "p.csv:3: id: duplicate id 'x' (first used at p.csv:2)",
            "p.csv:4: id: \"'q'\" may only hold letters, digits, '.', '_' and '-' (not \"'\")",
            "p.csv:5: output: '../z.png' would leave the run directory ('..')",
            "p.csv:7: output: 'ONE.png' is also written by the job at p.csv:6 "
            "(the names differ only in case)",
        ],
    ),
    (
        "row lines count embedded newlines",
        'prompt,seed\n"a\n\nb",1\nc,x\n',
        ["p.csv:5: seed: 'x' is not an integer"],
    ),
    ("empty file", "", ["p.csv: the file is empty; a CSV manifest needs a header row naming its columns"]),
    ("header only", "prompt,seed\n", ["p.csv: no jobs: the manifest lists none"]),
    (
        "an unclosed quote swallows the file",
        'prompt\n"' + "x\n" * 70_000,
        [
            "p.csv:65538: not readable as CSV: field larger than field limit (131072) (an unclosed quote?); "
            "stopped reading"
        ],
    ),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES])
def test_csv_rule(
    mdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    problems: Callable[..., list[str]],
    body: str,
    expected: list[str],
) -> None:
    monkeypatch.chdir(mdir)
    write(Path("p.csv"), body)
    assert problems(Path("p.csv")) == expected


def test_issue_example_products_csv_line_231(
    mdir: Path, monkeypatch: pytest.MonkeyPatch, problems: Callable[..., list[str]]
) -> None:
    monkeypatch.chdir(mdir)
    rows = [f"p{i},{'abc' if i == 229 else i}" for i in range(300)]
    write(Path("products.csv"), "prompt,seed\n" + "\n".join(rows) + "\n")
    assert problems(Path("products.csv")) == ["products.csv:231: seed: 'abc' is not an integer"]


def test_jobs_csv_takes_the_yaml_defaults_and_template(mdir: Path) -> None:
    sub = mdir / "data"
    sub.mkdir()
    (sub / "cat.jpg").write_bytes((mdir / "images" / "cat.jpg").read_bytes())
    write(sub / "rows.csv", "id,prompt,input_image,output_format\na,one,cat.jpg,\nb,two,,png\n")
    manifest = mdir / "m.yaml"
    manifest.write_text(
        "defaults: {output_format: jpg, seed: 5}\noutput: 'out/{id}.{ext}'\njobs_csv: data/rows.csv\n"
    )
    jobs = load_manifest(manifest).jobs
    assert [j.output for j in jobs] == ["out/a.jpg", "out/b.png"]
    assert [j.params["seed"] for j in jobs] == [5, 5]
    assert jobs[0].local_input == (sub / "cat.jpg").resolve()  # relative to the CSV, not the YAML
    assert jobs[1].local_input is None
    assert jobs[0].source == f"{mdir / 'data' / 'rows.csv'}:2"


def test_jobs_csv_problems_name_the_csv(
    mdir: Path, monkeypatch: pytest.MonkeyPatch, problems: Callable[..., list[str]]
) -> None:
    monkeypatch.chdir(mdir)
    write(Path("rows.csv"), "prompt,seed\na,x\n")
    Path("m.yaml").write_text("jobs:\n  - {prompt: b, seed: y}\njobs_csv: rows.csv\n")
    Path("n.yaml").write_text("jobs_csv: missing.csv\n")
    Path("o.yaml").write_text("jobs_csv: m.yaml\n")
    Path("p.yaml").write_text('jobs_csv: "a\\0.csv"\n')  # found by the random-manifest property test
    assert problems(Path("m.yaml")) == [
        "m.yaml:2: jobs[0].seed: 'y' is not an integer",
        "rows.csv:2: seed: 'x' is not an integer",
    ]
    assert problems(Path("n.yaml")) == ["n.yaml:1: jobs_csv: 'missing.csv': file not found"]
    assert problems(Path("o.yaml")) == ["o.yaml:1: jobs_csv: 'm.yaml': is not a .csv or .tsv file"]
    assert problems(Path("p.yaml")) == [
        "p.yaml:1: jobs_csv: 'a\\x00.csv': is not a file name (it holds a NUL character)"
    ]


def test_a_model_without_schema_keeps_csv_text(mdir: Path) -> None:
    write(mdir / "rows.csv", "prompt,steps\na,30\n")
    manifest = mdir / "m.yaml"
    manifest.write_text("model: other-model\njobs_csv: rows.csv\n")
    (job,) = load_manifest(manifest).jobs
    assert job.params == {"prompt": "a", "steps": "30"}

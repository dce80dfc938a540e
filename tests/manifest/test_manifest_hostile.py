"""Hostile files: bombs, junk, 2 GB files, bad encodings, odd file types — located problems, never a crash.

Every case also goes through ``batchflux validate`` (exit 2, problems on stderr, no traceback).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from batchflux.cli import main

TOP = "model, defaults, output, jobs, jobs_csv, for_each"
AS_UTF8 = "; save the file as UTF-8; stopped reading"
BILLION_LAUGHS = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)
)
MERGE_BOMB = "m0: &m0 {k0: v}\n" + "".join(
    f"m{i}: &m{i}\n  <<: [*m{i - 1}, *m{i - 1}]\n  k{i}: [*m{i - 1}, *m{i - 1}, *m{i - 1}, *m{i - 1}]\n"
    for i in range(1, 30)
)

YAML_CASES: list[tuple[str, str | bytes, list[str]]] = [
    (
        "billion laughs",
        BILLION_LAUGHS,
        ["h.yaml:6: aliases expand to more than 1000000 extra nodes (a 'billion laughs' document?)"],
    ),
    (
        "merge-key bomb",
        MERGE_BOMB,
        ["h.yaml:25: aliases expand to more than 1000000 extra nodes (a 'billion laughs' document?)"],
    ),
    (
        "recursive alias",
        "jobs: &j\n  - *j\n",
        ["h.yaml:2: alias *j refers to a node that contains it (recursive)"],
    ),
    ("deep nesting", "jobs: " + "[" * 100_000, ["h.yaml:1: nested deeper than 64 levels"]),
    (
        "python tag",
        "jobs:\n  - prompt: !!python/object/apply:os.system [echo hi]\n",
        [
            "h.yaml:2: YAML tag '!!python/object/apply:os.system' is not allowed; manifests hold plain data",
            "h.yaml:2: jobs[0].prompt: must be a single value, not a list",
        ],
    ),
    (
        "binary junk",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        ["h.yaml:1: not readable as text: invalid leading UTF-8 octet"],
    ),
    (
        "bad UTF-8",
        b"jobs:\n  - prompt: caf\xe9\n",
        ["h.yaml:2: not readable as text: incomplete UTF-8 octet sequence"],
    ),
    (
        "two documents",
        "jobs: [{prompt: a}]\n---\njobs: [{prompt: b}]\n",
        ["h.yaml:2: more than one YAML document ('---'); a manifest is one document"],
    ),
    (
        "syntax error",
        "jobs:\n  - prompt: a\n   seed: 1\n",
        ["h.yaml:3: YAML syntax error: did not find expected '-' indicator"],
    ),
    (
        "not a mapping",
        "just some text\n",
        [f"h.yaml:1: a manifest is a mapping of {TOP}; this is a value"],
    ),
    (
        "non-text keys",
        "jobs:\n  - {[a]: 1, prompt: x}\n",
        ["h.yaml:2: a mapping key must be text, not a list"],
    ),
    ("empty", "", ["h.yaml: the manifest is empty; it needs jobs:, jobs_csv: or for_each:"]),
    (
        "comments only",
        "# nothing\n",
        ["h.yaml: the manifest is empty; it needs jobs:, jobs_csv: or for_each:"],
    ),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in YAML_CASES], ids=[c[0] for c in YAML_CASES])
def test_hostile_yaml(
    mdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    problems: Callable[..., list[str]],
    body: str | bytes,
    expected: list[str],
) -> None:
    monkeypatch.chdir(mdir)
    Path("h.yaml").write_bytes(body.encode() if isinstance(body, str) else body)
    assert problems(Path("h.yaml")) == expected
    assert_cli_reports(capsys, "h.yaml", expected[0])


CSV_CASES: list[tuple[str, bytes, list[str]]] = [
    (
        "binary junk",
        b"prompt\n\x89PNG\r\n\x1a\n\xff\x00",
        [f"h.csv:2: not valid UTF-8 (byte 0x89 at offset 1 of the line){AS_UTF8}"],
    ),
    ("NUL bytes", b"prompt\na\x00b\n", ["h.csv:2: prompt: holds a control character (U+0000)"]),
    (
        "Latin-1 on line 3",
        b"prompt\nok\ncaf\xe9\nlater\n",
        [f"h.csv:3: not valid UTF-8 (byte 0xe9 at offset 4 of the line){AS_UTF8}"],
    ),
    ("UTF-16", "prompt\nhi\n".encode("utf-16"), ["h.csv:1: the file is UTF-16; save it as UTF-8"]),
    (
        "a 3 MiB line",
        b"prompt\n" + b"a" * (3 * 2**20) + b"\n",
        ["h.csv:2: line is longer than 1024 KiB; stopped reading"],
    ),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES])
def test_hostile_csv(
    mdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    problems: Callable[..., list[str]],
    body: bytes,
    expected: list[str],
) -> None:
    monkeypatch.chdir(mdir)
    Path("h.csv").write_bytes(body)
    assert problems(Path("h.csv")) == expected
    assert_cli_reports(capsys, "h.csv", expected[0])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("huge.yaml", "huge.yaml: is larger than 32 MiB; put long job lists in a CSV (jobs_csv:)"),
        ("huge.csv", "huge.csv:1: line is longer than 1024 KiB; stopped reading"),
    ],
)
def test_a_2_gb_single_line_file(
    mdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    problems: Callable[..., list[str]],
    name: str,
    expected: str,
) -> None:
    """A sparse 2 GiB file without a newline: only a bounded prefix is ever read."""
    monkeypatch.chdir(mdir)
    with open(name, "wb") as f:
        f.truncate(2 * 2**30)
    assert problems(Path(name)) == [expected]
    assert_cli_reports(capsys, name, expected)


def test_odd_file_types(
    mdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    problems: Callable[..., list[str]],
) -> None:
    monkeypatch.chdir(mdir)
    Path("dir.yaml").mkdir()
    os.mkfifo("fifo.yaml")  # opening it would block until a writer came
    Path("notes.txt").write_text("prompt: x\n")
    cases = {
        "dir.yaml": "dir.yaml: is a directory, not a manifest file",
        "fifo.yaml": "fifo.yaml: is not a regular file",
        "missing.yaml": "missing.yaml: file not found",
        "notes.txt": "notes.txt: unknown manifest type '.txt'; use .yaml, .yml, .csv, .tsv",
        "images": "images: is a directory, not a manifest file",
    }
    for name, expected in cases.items():
        assert problems(Path(name)) == [expected]
        assert_cli_reports(capsys, name, expected)


def test_unreadable_file(
    mdir: Path, monkeypatch: pytest.MonkeyPatch, problems: Callable[..., list[str]]
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    monkeypatch.chdir(mdir)
    Path("locked.yaml").write_text("jobs: []\n")
    Path("locked.yaml").chmod(0)
    assert problems(Path("locked.yaml")) == ["locked.yaml: cannot read: Permission denied"]


def assert_cli_reports(capsys: pytest.CaptureFixture[str], name: str, first: str) -> None:
    capsys.readouterr()
    assert main(["validate", name]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[0] == first
    assert "Traceback" not in err

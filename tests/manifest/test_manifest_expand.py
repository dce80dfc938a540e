"""for_each: a glob of inputs crossed with lists of values; ids from file stems."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from batchflux.manifest import load_manifest


def test_glob_crossed_with_prompts(mdir: Path) -> None:
    path = mdir / "m.yaml"
    path.write_text(
        "defaults: {output_format: jpg}\n"
        "for_each:\n  input_image: {glob: 'images/*.jpg'}\n  prompt: [first, second]\n  seed: 7\n"
    )
    jobs = load_manifest(path).jobs
    stems = ["astronaut", "cat", "coffee", "rocket"]
    assert [j.id for j in jobs] == [f"{s}-{n}" for s in stems for n in (1, 2)]
    assert [j.params["prompt"] for j in jobs] == ["first", "second"] * 4
    assert [j.params["input_image"] for j in jobs] == [f"images/{s}.jpg" for s in stems for _ in (1, 2)]
    assert {j.params["seed"] for j in jobs} == {7}
    assert [j.output for j in jobs] == [f"{j.id}.jpg" for j in jobs]
    assert [j.index for j in jobs] == list(range(8))
    assert all(j.local_input == (mdir / j.params["input_image"]).resolve() for j in jobs)


def test_single_prompt_keeps_the_bare_stem_and_two_lists_number_both(mdir: Path) -> None:
    path = mdir / "m.yaml"
    path.write_text("for_each:\n  input_image: {glob: 'images/c*.jpg'}\n  prompt: only\n")
    assert [j.id for j in load_manifest(path).jobs] == ["cat", "coffee"]
    path.write_text(
        "for_each:\n  prompt: [a, b]\n  input_image: {glob: 'images/cat.jpg'}\n"
        "  aspect_ratio: ['1:1', '4:5', '2:3']\n"
    )
    jobs = load_manifest(path).jobs
    assert [j.id for j in jobs] == [f"cat-{p}-{r}" for p in (1, 2) for r in (1, 2, 3)]
    assert [(j.params["prompt"], j.params["aspect_ratio"]) for j in jobs][:4] == [
        ("a", "1:1"),
        ("a", "4:5"),
        ("a", "2:3"),
        ("b", "1:1"),
    ]


def test_without_a_glob_ids_are_derived(mdir: Path) -> None:
    path = mdir / "m.yaml"
    path.write_text("for_each:\n  prompt: [a, b, c]\n  input_image: https://example.com/x.jpg\n")
    jobs = load_manifest(path).jobs
    assert len(jobs) == 3
    assert len({j.id for j in jobs}) == 3
    assert all(len(j.id) == 12 for j in jobs)


def test_recursive_glob_unsafe_stems_and_outputs(mdir: Path) -> None:
    (mdir / "images" / "deep").mkdir()
    (mdir / "images" / "deep" / "my photo.jpg").write_bytes((mdir / "images" / "cat.jpg").read_bytes())
    (mdir / "images" / ".hidden.jpg").write_bytes((mdir / "images" / "cat.jpg").read_bytes())
    path = mdir / "m.yaml"
    path.write_text(
        "for_each:\n  input_image: {glob: 'images/**/*.jpg'}\n  prompt: p\n  output: 'x/{id}.{ext}'\n"
    )
    jobs = load_manifest(path).jobs
    assert [j.id for j in jobs] == ["astronaut", "cat", "coffee", "my_photo", "rocket"]
    assert jobs[3].output == "x/my_photo.png"


FOR_EACH_CASES: list[tuple[str, str, list[str]]] = [
    (
        "no match",
        "for_each:\n  input_image: {glob: 'photos/*.png'}\n  prompt: p\n",
        ["m.yaml:2: for_each.input_image.glob: 'photos/*.png' matches no files (relative to {DIR})"],
    ),
    (
        "glob on a prompt",
        "for_each:\n  prompt: {glob: '*.txt'}\n",
        ["m.yaml:2: for_each.prompt: only input_image can take a glob"],
    ),
    (
        "id is made, not given",
        "for_each:\n  id: x\n  prompt: [a]\n",
        ["m.yaml:2: for_each.id: for_each makes ids from file stems (or the parameters); no id here"],
    ),
    (
        "bad values in a list",
        "for_each:\n  prompt: a\n  seed: [1, x, 3]\n",
        ["m.yaml:3: for_each.seed: 'x' is not an integer"],
    ),
    (
        "unknown key",
        "for_each:\n  promt: [a]\n",
        ["m.yaml:2: for_each.promt: unknown parameter (did you mean 'prompt'?)"],
    ),
    ("empty list", "for_each:\n  prompt: []\n", ["m.yaml:2: for_each.prompt: is an empty list"]),
    ("empty mapping", "for_each: {}\n", ["m.yaml:1: for_each: names no parameters to expand"]),
    (
        "a matched file that is not an image",
        "for_each:\n  input_image: {glob: 'images/*'}\n  prompt: p\n",
        ["m.yaml:2: for_each[notes].input_image: 'images/notes.txt': is not an image Pillow can identify"],
    ),
    (
        "same stem in two folders",
        "for_each:\n  input_image: {glob: '**/cat.jpg'}\n  prompt: p\n",
        ["m.yaml:2: for_each[cat].id: duplicate id 'cat' (first used at m.yaml:2)"],
    ),
    (
        "safety_tolerance with glob inputs",
        "for_each:\n  input_image: {glob: 'images/cat.jpg'}\n  prompt: p\n  safety_tolerance: 4\n",
        ["m.yaml:4: for_each[cat].safety_tolerance: 4 is above 2, the most allowed with an input_image"],
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in FOR_EACH_CASES], ids=[c[0] for c in FOR_EACH_CASES]
)
def test_for_each_rule(
    mdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    problems: Callable[..., list[str]],
    body: str,
    expected: list[str],
) -> None:
    monkeypatch.chdir(mdir)
    (mdir / "images" / "notes.txt").write_text("not an image")
    (mdir / "more").mkdir()
    (mdir / "more" / "cat.jpg").write_bytes((mdir / "images" / "cat.jpg").read_bytes())
    Path("m.yaml").write_text(body)
    assert problems(Path("m.yaml")) == [e.replace("{DIR}", str(mdir.resolve())) for e in expected]

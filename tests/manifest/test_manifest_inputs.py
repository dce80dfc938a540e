"""Input images: formats, header-only checks, content hashes, and each file read once per manifest."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from batchflux.manifest import ManifestError, inputs, load_manifest
from batchflux.manifest.inputs import BadInput, InputResolver, file_sha256


def make_image(path: Path, fmt: str, size: tuple[int, int] = (8, 6)) -> Path:
    Image.new("RGB", size, (200, 30, 60)).save(path, format=fmt)
    return path


@pytest.mark.parametrize(("name", "fmt"), [("a.png", "PNG"), ("a.webp", "WEBP"), ("a.gif", "GIF")])
def test_accepted_formats(tmp_path: Path, name: str, fmt: str) -> None:
    make_image(tmp_path / name, fmt, (10, 7))
    ref = InputResolver(tmp_path).resolve(name)
    assert ref.local is not None
    assert (ref.local.format, ref.local.width, ref.local.height) == (fmt, 10, 7)
    assert ref.local.sha256 == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: make_image(p, "BMP"), "'x.img': is a BMP image; use JPEG, PNG, WebP or GIF"),
        (lambda p: p.write_bytes(b""), "'x.img': is not an image Pillow can identify"),
        (
            lambda p: p.write_bytes(b"\xff\xd8\xff\xe0junk"),
            "'x.img': is not a readable image (Truncated File Read)",
        ),
    ],
    ids=["bmp", "empty", "truncated jpeg"],
)
def test_refused_files(tmp_path: Path, make: Callable[[Path], object], expected: str) -> None:
    make(tmp_path / "x.img")
    with pytest.raises(BadInput) as caught:
        InputResolver(tmp_path).resolve("x.img")
    assert str(caught.value) == expected


def test_header_only_a_truncated_body_still_identifies(tmp_path: Path) -> None:
    """Pillow reads the header; a file cut after it is accepted here (the API will judge the pixels)."""
    full = make_image(tmp_path / "full.png", "PNG", (300, 200)).read_bytes()
    (tmp_path / "cut.png").write_bytes(full[: len(full) // 2])
    ref = InputResolver(tmp_path).resolve("cut.png")
    assert ref.local is not None
    assert (ref.local.width, ref.local.height) == (300, 200)


def test_urls_pass_through_and_absolute_paths_work(tmp_path: Path) -> None:
    image = make_image(tmp_path / "abs.png", "PNG")
    resolver = InputResolver(tmp_path / "elsewhere")
    assert resolver.resolve("https://example.com/a.jpg?x=1").local is None
    assert resolver.resolve("HTTP://example.com:8080/a.jpg").local is None
    local = resolver.resolve(str(image)).local
    assert local is not None
    assert local.path == image


def test_file_sha256_follows_the_content(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    assert file_sha256(path) == hashlib.sha256(b"one").hexdigest()
    path.write_bytes(b"two, longer")  # new size (and mtime): not served from the cache
    assert file_sha256(path) == hashlib.sha256(b"two, longer").hexdigest()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 5))  # several read chunks
    assert file_sha256(big) == hashlib.sha256(big.read_bytes()).hexdigest()


def test_a_big_manifest_reads_each_image_once(mdir: Path) -> None:
    rows = [f"r{i},prompt {i},images/{'cat' if i % 2 else 'rocket'}.jpg" for i in range(2000)]
    (mdir / "m.csv").write_text("id,prompt,input_image\n" + "\n".join(rows) + "\n")
    inputs._probe.cache_clear()
    inputs._sha256.cache_clear()
    jobs = load_manifest(mdir / "m.csv").jobs
    assert len({j.local_input for j in jobs}) == 2
    assert inputs._probe.cache_info().misses == 2  # identified once per file
    assert inputs._sha256.cache_info().misses == 2  # hashed once per file
    for job in jobs[:10]:  # the engine's later calls cost a stat
        assert job.local_input is not None
        file_sha256(job.local_input)
    assert inputs._sha256.cache_info().misses == 2


def test_an_input_larger_than_the_limit(mdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "MAX_INPUT_BYTES", 1024)
    (mdir / "m.yaml").write_text("jobs:\n  - {prompt: p, input_image: images/cat.jpg}\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(mdir / "m.yaml")
    assert caught.value.problems[0].message == "'images/cat.jpg': is 19,803 bytes; the most accepted is 1,024"

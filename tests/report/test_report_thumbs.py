"""Thumbnails: bounded, made once, remade only when the source changes, never fatal."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from batchflux.report import write_report
from batchflux.report.thumbs import THUMB_SIZE, ensure_stored_thumb, ensure_thumb, ensure_thumbs


def snapshot(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_thumbnails_are_made_once_and_reused(
    tmp_path: Path, fabricate: Callable[..., Path], spec: Any
) -> None:
    out = fabricate(tmp_path / "out", [spec(f"j{i}") for i in range(10)] + [spec("x", outcome="failed")])
    write_report([out])
    first = snapshot(out / "thumbs")
    assert len(first) == 11 + 10, "11 inputs and 10 outputs"
    write_report([out])
    assert snapshot(out / "thumbs") == first, "second report: same files, not rewritten"


def test_a_replaced_image_gets_a_fresh_thumbnail(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    Image.new("RGB", (50, 50), (255, 0, 0)).save(src)
    first = ensure_thumb(src, tmp_path / "thumbs")
    Image.new("RGB", (60, 50), (0, 0, 255)).save(src)
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    second = ensure_thumb(src, tmp_path / "thumbs")
    assert first is not None
    assert second is not None
    assert first != second
    with Image.open(second) as im:
        assert im.getpixel((5, 5))[2] > 200, "the new, blue image"


def test_bounded_size_jpeg_transparency_on_white(tmp_path: Path) -> None:
    src = tmp_path / "big.png"
    Image.new("RGBA", (1600, 900), (0, 0, 0, 0)).save(src)
    thumb = ensure_thumb(src, tmp_path / "thumbs")
    assert thumb is not None
    with Image.open(thumb) as im:
        assert im.format == "JPEG"
        assert im.mode == "RGB"
        assert max(im.size) == THUMB_SIZE
        assert im.size[0] / im.size[1] > 1.7
        assert min(im.getpixel((10, 10))) > 240


def test_unreadable_sources_get_no_thumbnail(tmp_path: Path) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    folder = tmp_path / "folder.png"
    folder.mkdir()
    made = ensure_thumbs(
        [(junk, tmp_path / "t"), (folder, tmp_path / "t"), (tmp_path / "gone.png", tmp_path / "t")]
    )
    assert set(made.values()) == {None}
    assert not list(tmp_path.glob("t/*")), "no thumbnail, no temp file left behind"


def test_many_sources_in_threads_each_distinct_pair_once(tmp_path: Path) -> None:
    sources = []
    for i in range(20):
        p = tmp_path / f"s{i}.png"
        Image.new("RGB", (40, 30), (i * 10, 0, 0)).save(p)
        sources.append(p)
    pairs = [(p, tmp_path / "t") for p in sources] * 3
    made = ensure_thumbs(pairs, workers=4)
    assert len(made) == 20
    assert all(made.values())
    assert len(list((tmp_path / "t").iterdir())) == 20


def test_a_corrupt_output_still_gets_its_card(
    tmp_path: Path, fabricate: Callable[..., Path], spec: Any
) -> None:
    out = fabricate(tmp_path / "out", [spec("a")])
    (out / "a.png").write_bytes(b"garbage")
    page = write_report([out]).read_text(encoding="utf-8")
    assert '"oh":"./a.png"' in page, "the file is still linked"
    assert '"ot"' not in page, "but has no thumbnail"


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    src = tmp_path / "portrait.jpg"
    im = Image.new("RGB", (800, 400), (200, 30, 30))
    exif = im.getexif()
    exif[0x0112] = 6  # held sideways: shown rotated 90 degrees
    im.save(src, exif=exif.tobytes())
    thumb = ensure_thumb(src, tmp_path / "t")
    assert thumb is not None
    with Image.open(thumb) as t:
        assert t.size == (THUMB_SIZE // 2, THUMB_SIZE)


def test_an_image_that_left_the_disk_shows_the_thumbnail_made_before_it_went(
    tmp_path: Path, fabricate: Callable[..., Path], spec: Any
) -> None:
    """As in a bucket's spool: the thumbnail is made from the image's bytes, the image removed; the
    report finds the thumbnail from the ledger (sha256, size) and links the image where it was."""
    out = fabricate(tmp_path / "out", [spec("kept"), spec("gone"), spec("lost")])
    gone = out / "gone.png"
    made = ensure_stored_thumb(gone, gone.read_bytes(), out / "thumbs")
    gone.unlink()
    (out / "lost.png").unlink()  # left the disk with no thumbnail made
    page = write_report([out]).read_text(encoding="utf-8")
    found = re.search(r'id="jobs-data"[^>]*>(.*?)</script>', page, re.S)
    assert found is not None
    cards = {c["id"]: c for c in json.loads(found.group(1))}
    assert made is not None
    assert cards["gone"]["ot"] == f"./thumbs/{made.name}"
    assert cards["gone"]["oh"] == "./gone.png"
    assert not cards["gone"].get("om")
    assert cards["kept"]["ot"].startswith("./thumbs/")
    assert cards["lost"]["om"] is True
    assert cards["lost"].get("ot") is None

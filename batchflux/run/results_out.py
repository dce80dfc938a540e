"""Result rows written out: JSON lines, a spreadsheet-safe CSV, atomically replaced run files, and
the image dimensions the rows carry.

- **JSON lines**: one object per row, keys in column order, UTF-8 (not ASCII-escaped), values
  exactly as they are.
- **CSV**: a header row, RFC 4180 quoting (a cell with a comma, quote or line break is quoted),
  ``\\r\\n`` line ends; files start with a UTF-8 byte-order mark so that Excel reads them as UTF-8
  (Python: ``encoding="utf-8-sig"``), standard output does not. Empty cells for nulls. A text cell
  that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``, so
  that a spreadsheet shows a prompt or a server's error as text and never runs it as a formula
  (OWASP's advice for CSV injection); numbers are written as numbers. The JSON lines keep every
  value exactly.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from PIL import Image

from batchflux.files.durable import fsync_dir

FORMATS = ("jsonl", "csv")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


def write_jsonl(fh: TextIO, rows: Iterable[dict[str, Any]]) -> int:
    written = 0
    for row in rows:
        fh.write(_ENCODER.encode(row))
        fh.write("\n")
        written += 1
    return written


def write_jsonl_each(fh: TextIO, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Pass the rows on, writing each as a JSON line on the way (two files from one pass)."""
    for row in rows:
        fh.write(_ENCODER.encode(row))
        fh.write("\n")
        yield row


def write_csv(fh: TextIO, rows: Iterable[dict[str, Any]], header: Sequence[str]) -> int:
    """``fh`` opened with ``newline=""``. Rows' keys are ``header`` (missing ones are empty)."""
    out = csv.writer(fh, lineterminator="\r\n")
    out.writerow(header)
    written = 0
    plain = _PLAIN
    for row in rows:
        out.writerow([v if type(v) in plain else csv_cell(v) for v in map(row.get, header)])
        written += 1
    return written


_PLAIN = frozenset({int, float, type(None)})  # written as they are (None as an empty cell)


def csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    return _ENCODER.encode(value)  # a list or mapping (a parameter of a model without a schema)


def write_rows(fh: TextIO, rows: Iterable[dict[str, Any]], fmt: str, header: Sequence[str]) -> int:
    return write_csv(fh, rows, header) if fmt == "csv" else write_jsonl(fh, rows)


@contextlib.contextmanager
def atomic_text(path: Path, *, bom: bool = False) -> Iterator[TextIO]:
    """A text file (UTF-8, ``newline=""``) that replaces ``path`` only once written and synced:
    readers see the old file or the new one. Streamed, so a big file is never held in memory."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def image_dims(out_dir: str, output: str) -> tuple[int, int] | None:
    """The :data:`~batchflux.run.results.Dimensions` of a file on disk, from its header: PNG and
    JPEG (what the model writes) are read here, anything else by Pillow (header only). None for a
    missing or unreadable file, or a path that would leave its run directory."""
    if os.path.isabs(output) or output.startswith("/") or ".." in output.replace("\\", "/").split("/"):
        return None
    path = os.path.join(out_dir, output)
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return None
    try:
        head = os.read(fd, HEAD_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
    found = png_size(head) or jpeg_size(head)
    return found if found is not None else _pillow_size(path)


HEAD_BYTES = 64 * 1024  # a JPEG's size comes after its metadata; past this, Pillow looks
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
_PNG = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers (baseline, progressive, lossless, arithmetic): they hold the size.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # markers without a length: TEM, RSTn, SOI


def png_size(head: bytes) -> tuple[int, int] | None:
    if len(head) < 24 or not head.startswith(_PNG) or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def jpeg_size(head: bytes) -> tuple[int, int] | None:
    """Walk the JPEG's marker segments to its start-of-frame; None if not within ``head``."""
    if not head.startswith(b"\xff\xd8"):
        return None
    i, end = 2, len(head)
    while i + 4 <= end:
        if head[i] != 0xFF:
            return None  # not a marker where one must be: leave it to Pillow
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker in _SOF:
            if i + 9 > end:
                return None
            height = int.from_bytes(head[i + 5 : i + 7], "big")
            width = int.from_bytes(head[i + 7 : i + 9], "big")
            return (width, height) if width and height else None
        if marker == 0xDA:  # the scan began without a frame header
            return None
        i += 2 + int.from_bytes(head[i + 2 : i + 4], "big")
    return None


def _pillow_size(path: str) -> tuple[int, int] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except Exception:  # missing, unreadable, not an image: the row just has no dimensions
        return None
    return int(width), int(height)

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
from pathlib import Path, PurePosixPath
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
    for row in rows:
        out.writerow([csv_cell(row.get(name)) for name in header])
        written += 1
    return written


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
    """The :data:`~batchflux.run.results.Dimensions` of a file on disk: Pillow reads the header
    only. None for a missing or unreadable file, or a path that would leave its run directory."""
    rel = PurePosixPath(output)
    if rel.is_absolute() or ".." in rel.parts:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(Path(out_dir) / rel) as image:
                width, height = image.size
    except Exception:  # missing, unreadable, not an image: the row just has no dimensions
        return None
    return int(width), int(height)

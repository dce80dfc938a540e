"""Write ``report.html``: read the run directories, make thumbnails, render, write atomically.

This is the report's only I/O; :mod:`.model`, :mod:`.timeline` and :mod:`.render` are pure.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from batchflux.files.durable import atomic_write_text
from batchflux.files.layout import LEDGER_FILENAME, REPORT_FILENAME, SUMMARY_FILENAME, THUMB_DIRNAME
from batchflux.files.secrets import Redactor
from batchflux.ledger import LedgerCorrupt
from batchflux.ledger.requests import read_costs
from batchflux.ledger.reviews import merge_reviews
from batchflux.report.model import build_model
from batchflux.report.render import Links, card_data, render_page
from batchflux.report.rows import JobRow, RunDir
from batchflux.report.thumbs import ensure_thumbs, stored_thumb_name
from batchflux.report.timeline import timeline_svg

API_KEY_ENV = "SEGMIND_API_KEY"

log = logging.getLogger("batchflux.report")


class ReportError(ValueError):
    """The report cannot be made: no ledger, an unreadable or corrupt one. The message says which."""


def write_report(
    out_dirs: Sequence[Path], *, dest: Path | None = None, secrets_to_hide: Sequence[str] = ()
) -> Path:
    """Write the HTML report of one output directory, or of several merged (shards of one batch).

    ``dest`` defaults to ``out_dirs[0] / "report.html"``; image links are relative to its folder.
    Thumbnails go to each directory's ``thumbs/``; an output that is not on this disk (a bucket run
    directory's spool let it go) gets the thumbnail made before it left, found by its content, and
    its card links where it lies beside the report. Returns the path written. Raises
    :class:`ReportError` when a directory has no readable ledger.
    """
    if not out_dirs:
        raise ReportError("no output directory given")
    run_dirs = [read_run_dir(Path(d)) for d in out_dirs]
    model = build_model(run_dirs)
    dest = Path(dest) if dest is not None else Path(out_dirs[0]) / REPORT_FILENAME
    dest_dir = dest.absolute().parent

    wanted: list[tuple[Path, Path]] = []
    for row in model.rows:
        thumb_dir = row.out_dir / THUMB_DIRNAME
        wanted += [(p, thumb_dir) for p in (row.input_path, row.output_path) if p is not None and p.is_file()]
    thumbs = ensure_thumbs(wanted)
    stored = {row.key: t for row in model.rows if (t := _stored_thumb(row)) is not None}
    cards = [card_data(row, _links(row, thumbs, stored.get(row.key), dest_dir)) for row in model.rows]

    page = render_page(
        model,
        cards,
        timeline_svg=timeline_svg(model.timeline),
        nonce=secrets.token_urlsafe(18),
        generated=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
    )
    page = redact(page, [*secrets_to_hide, os.environ.get(API_KEY_ENV, "")])
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dest, page)
    made = sum(1 for t in thumbs.values() if t is not None) + len(stored)
    log.info("report: %d jobs, %d thumbnails, written to %s", len(model.rows), made, dest)
    return dest


def read_run_dir(out_dir: Path) -> RunDir:
    ledger = out_dir / LEDGER_FILENAME
    if not out_dir.is_dir():
        raise ReportError(f"{out_dir}: no such directory")
    if not ledger.is_file():
        raise ReportError(f"{out_dir}: no {LEDGER_FILENAME} here; is this a batchflux output directory?")
    try:
        replay, costs = read_costs(ledger)
        merge_reviews(replay, out_dir)
    except LedgerCorrupt as exc:
        raise ReportError(str(exc)) from exc
    except (OSError, UnicodeError) as exc:
        raise ReportError(f"{ledger}: cannot read the ledger ({exc})") from exc
    summary = _read_summary(out_dir / SUMMARY_FILENAME)
    return RunDir(path=out_dir, replay=replay, summary=summary, costs=costs)


def relative_href(target: Path, base_dir: Path) -> str | None:
    """``target`` as a URL relative to ``base_dir``: each segment percent-encoded, always starting
    with ``./`` or ``../`` so that no segment can read as a URL scheme."""
    try:
        rel = os.path.relpath(target.absolute(), base_dir)
    except ValueError:  # another drive on Windows: no relative path exists
        return None
    parts = Path(rel).parts
    href = "/".join(quote(p, safe="") if p not in (".", "..") else p for p in parts)
    return href if href.startswith("../") else f"./{href}"


def redact(text: str, secrets_: Sequence[str]) -> str:
    # A short string would blank unrelated text; keys are 19 characters.
    return Redactor(s for s in secrets_ if len(s) >= 8)(text)


def _stored_thumb(row: JobRow) -> Path | None:
    """The content-named thumbnail of an output that is not on this disk, if it was made."""
    p = row.output_path
    if p is None or row.output_sha256 is None or row.output_size is None or p.is_file():
        return None
    thumb = row.out_dir / THUMB_DIRNAME / stored_thumb_name(row.output_sha256, row.output_size)
    return thumb if thumb.is_file() else None


def _links(
    row: JobRow, thumbs: Mapping[tuple[Path, Path], Path | None], stored: Path | None, dest_dir: Path
) -> Links:
    thumb_dir = row.out_dir / THUMB_DIRNAME

    def thumb(p: Path | None) -> str | None:
        made = thumbs.get((p, thumb_dir)) if p is not None else None
        return relative_href(made, dest_dir) if made is not None else None

    input_ok = row.input_path is not None and (row.input_path, thumb_dir) in thumbs
    output_ok = row.output_path is not None and (row.output_path, thumb_dir) in thumbs
    if stored is not None:  # the image lies in the store, beside the report as on disk
        output_thumb = relative_href(stored, dest_dir)
    else:
        output_thumb = thumb(row.output_path) if output_ok else None
    output_ok = output_ok or stored is not None
    return Links(
        input_thumb=thumb(row.input_path) if input_ok else None,
        input_full=relative_href(row.input_path, dest_dir) if input_ok and row.input_path else None,
        output_thumb=output_thumb,
        output_full=relative_href(row.output_path, dest_dir) if output_ok and row.output_path else None,
        output_missing=row.status == "done" and not output_ok,
    )


def _read_summary(path: Path) -> Mapping[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("report: ignoring unreadable %s (%s)", path, exc)
        return None
    return data if isinstance(data, dict) else None

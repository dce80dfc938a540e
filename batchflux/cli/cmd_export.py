"""``batchflux export OUT [OUT ...]``: one row per job — or the chosen jobs as a manifest to run again."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO, TypeVar

from batchflux.cli.remote import add_out_targets, reading_run_dirs
from batchflux.cli.runopts import add_set_option
from batchflux.manifest import ManifestError
from batchflux.manifest.write import NotWritable, write_csv_manifest
from batchflux.run.console import QuietStream
from batchflux.run.exitcodes import ExitCode
from batchflux.run.export import Export, ExportError, prepare_export
from batchflux.run.results import REVIEW_STATUSES, STATUSES
from batchflux.run.results_out import FORMATS, atomic_text, write_rows

T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "export",
        help="one row per job (results.jsonl / results.csv), or failed jobs as a manifest to rerun",
        description=(
            "Write one row per manifest job, in manifest order — id, status, output file, sha256, size, "
            "dimensions, parameters, request id, timings, cost and failure — from the ledgers of one or more "
            "run directories (the shards of one batch are merged). The manifest is the one the directories' "
            "last run read (recorded in the ledger), unless --manifest names another. With --as-manifest, "
            "the chosen jobs are written as a CSV manifest that reruns exactly them. Safe while a run is "
            "going."
        ),
    )
    add_out_targets(parser)
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="jsonl (one JSON object a line) or csv; default: from -o's suffix, else jsonl",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="write to FILE, replaced atomically (default: standard output)",
    )
    parser.add_argument(
        "--status",
        default=None,
        metavar="LIST",
        help=f"only rows with these statuses, comma-separated: {', '.join(STATUSES)}; or with these "
        f"verdicts: {', '.join(REVIEW_STATUSES)} (default: all)",
    )
    parser.add_argument(
        "--as-manifest",
        action="store_true",
        help="write the chosen jobs as a CSV manifest (ids, parameters, output paths; local inputs "
        "relative to FILE's folder) that batchflux validate accepts and batchflux run reruns",
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        default=None,
        metavar="FILE",
        help="the manifest the rows follow (default: the one the directories' last run read)",
    )
    add_set_option(parser)
    parser.set_defaults(handler=run)


@reading_run_dirs("export")
def run(args: argparse.Namespace) -> int:
    try:
        statuses = _statuses(args.status)
    except ValueError as exc:
        return _fail(str(exc))
    fmt = args.format or (
        "csv" if args.output is not None and args.output.suffix.lower() == ".csv" else "jsonl"
    )
    if args.as_manifest and args.format == "jsonl":
        return _fail("--as-manifest writes a CSV manifest; leave out --format jsonl")
    if args.as_manifest and args.output is not None and args.output.suffix.lower() != ".csv":
        return _fail(f"--as-manifest writes a CSV manifest: name it FILE.csv, not {args.output.name}")
    try:
        export = prepare_export(args.out, manifest=args.manifest, overrides=dict(args.set) or None)
    except ExportError as exc:
        return _fail(str(exc))
    except ManifestError as exc:
        return _fail(f"the manifest does not load:\n{exc}")
    try:
        count = _write(args, export, fmt, statuses)
    except NotWritable as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write {args.output or 'the output'}: {exc.strerror or exc}")
    if args.output is not None:
        what = "job" if args.as_manifest else "row"
        print(f"export: {count} {what}{'' if count == 1 else 's'} → {args.output}", file=sys.stderr)
    return ExitCode.OK


def _write(args: argparse.Namespace, export: Export, fmt: str, statuses: frozenset[str] | None) -> int:
    dest: Path | None = args.output
    with _opened(dest, bom=fmt == "csv" or args.as_manifest) as fh:
        if args.as_manifest:
            base = (dest.parent if dest is not None else Path()).resolve()
            return write_csv_manifest(fh, _while_read(fh, export.manifest_rows(statuses)), base)
        return write_rows(fh, _while_read(fh, export.rows(statuses)), fmt, export.header)


@contextlib.contextmanager
def _opened(dest: Path | None, *, bom: bool) -> Iterator[TextIO]:
    """``dest`` replaced atomically, or the console (no byte-order mark there)."""
    if dest is not None:
        with atomic_text(dest, bom=bom) as fh:
            yield fh
        return
    yield sys.stdout
    sys.stdout.flush()


def _while_read(fh: TextIO, items: Iterable[T]) -> Iterator[T]:
    """Stop producing rows once nobody reads them (``batchflux export OUT | head``)."""
    for item in items:
        if isinstance(fh, QuietStream) and fh.gone:
            return
        yield item


def _statuses(text: str | None) -> frozenset[str] | None:
    if text is None:
        return None
    chosen = frozenset(s.strip() for s in text.split(",") if s.strip())
    unknown = chosen - set(STATUSES) - set(REVIEW_STATUSES)
    if unknown or not chosen:
        raise ValueError(
            f"--status: unknown status {', '.join(sorted(unknown)) or '(none)'}; "
            f"use {', '.join(STATUSES + REVIEW_STATUSES)}"
        )
    return chosen


def _fail(message: str) -> int:
    print(f"batchflux export: {message}", file=sys.stderr)
    return ExitCode.USAGE

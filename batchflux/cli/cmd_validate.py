"""``batchflux validate MANIFEST [--set k=v] [--json] [--price USD]``: check everything, spend nothing.

Success: the job count, counts by aspect ratio and output format, local inputs and the estimated
cost; exit 0. Problems: every one with file:line: field (the first 50 and a count), exit 2.
``--json`` prints one object on stdout either way.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from batchflux.cli.runopts import add_set_option, usd
from batchflux.manifest import ManifestError, load_manifest
from batchflux.manifest.problems import SHOWN_IN_MESSAGE
from batchflux.manifest.summary import ManifestSummary, summarize
from batchflux.run.exitcodes import ExitCode


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a manifest and estimate its cost; nothing is submitted",
        description=(
            "Read a YAML or CSV manifest, check every job against the model's parameter table, the input "
            "images and the output paths, and report every problem at once with file, line and field. "
            "On success, print the job count, counts by aspect ratio and format, and the estimated cost."
        ),
    )
    parser.add_argument("manifest", type=Path, metavar="MANIFEST", help="a .yaml/.yml or .csv/.tsv manifest")
    add_set_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument(
        "--price", type=usd, metavar="USD", help="price per image for the estimate (default: the model's)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    overrides = dict(args.set)
    try:
        manifest = load_manifest(args.manifest, overrides)
    except ManifestError as exc:
        _print_problems(args, exc)
        return ExitCode.USAGE
    summary = summarize(manifest, args.price)
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False))
    else:
        print(_text(args.manifest, summary))
        for warning in summary.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return ExitCode.OK


def _print_problems(args: argparse.Namespace, exc: ManifestError) -> None:
    if args.json:
        body = {
            "ok": False,
            "manifest": str(args.manifest),
            "total": exc.total,
            "problems": [p.as_dict() for p in exc.problems],
        }
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return
    print(str(exc), file=sys.stderr)
    noun = "problem" if exc.total == 1 else "problems"
    more = f" (the first {SHOWN_IN_MESSAGE} shown)" if exc.total > SHOWN_IN_MESSAGE else ""
    them = "it" if exc.total == 1 else "them"
    print(f"{args.manifest}: {exc.total} {noun}{more}; fix {them} and validate again", file=sys.stderr)


def _text(path: Path, s: ManifestSummary) -> str:
    def counts(values: dict[str, int]) -> str:
        return ", ".join(f"{key} ×{n}" for key, n in values.items()) or "-"

    noun = "job" if s.jobs == 1 else "jobs"
    files = "file" if s.local_input_files == 1 else "files"
    return "\n".join(
        (
            f"{path}: OK, {s.jobs} {noun} for {s.model}",
            f"  aspect ratios:   {counts(s.aspect_ratios)}",
            f"  output formats:  {counts(s.output_formats)}",
            f"  input images:    {s.local_input_jobs} local ({s.local_input_files} {files} to upload), "
            f"{s.url_input_jobs} URL, {s.no_input_jobs} none",
            f"  estimated cost:  {_usd(s.estimated_cost)} ({s.jobs} × {_usd(s.price_per_image)})",
        )
    )


def _usd(amount: float) -> str:
    cents = f"{amount:,.2f}"
    return f"${cents}" if float(cents.replace(",", "")) == amount else f"${amount:,.4f}".rstrip("0")

"""``batchflux report OUT [OUT...] [--open]``: write the HTML gallery of one or more run directories."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path
from typing import Any

from batchflux.cli.remote import add_out_targets, reading_run_dirs
from batchflux.files.layout import THUMB_DIRNAME
from batchflux.report import REPORT_FILENAME, ReportError, write_report
from batchflux.run.exitcodes import ExitCode


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write report.html: a before/after gallery of a run, with timings and failures",
        description=(
            "Write a self-contained HTML report of a run directory: counts by outcome, quota use, spend, "
            "a timeline, and a card per job with its input and output thumbnails, prompt, parameters, "
            "status and failure reason. Several directories (shards of one batch) are merged into one page."
        ),
    )
    add_out_targets(parser)
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"where to write the report (default: OUT/{REPORT_FILENAME} of the first OUT)",
    )
    parser.add_argument("--open", action="store_true", help="open the report in the web browser afterwards")
    parser.set_defaults(handler=run)


@reading_run_dirs("report", write_back=True, fetch=(THUMB_DIRNAME + "/",))
def run(args: argparse.Namespace) -> int:
    try:
        path = write_report(args.out, dest=args.output)
    except ReportError as exc:
        print(f"batchflux report: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except OSError as exc:
        print(f"batchflux report: cannot write the report: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    print(f"report: {path}")
    if args.open:
        webbrowser.open(path.absolute().as_uri())
    return ExitCode.OK

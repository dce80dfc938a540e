"""``batchflux run MANIFEST``: submit, poll, fetch and download every job; resumable."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from batchflux.cli.runopts import EXIT_CODES_HELP, UsageError, add_run_options, run_options
from batchflux.cli.session import execute_run
from batchflux.run.exitcodes import ExitCode


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run a manifest (resumes when the output directory has a ledger)",
        description="Run every job of MANIFEST through Segmind's async v2 API. Rerunning the same command "
        "resumes: nothing finished is redone, nothing in flight is resubmitted. The API key is read from "
        "SEGMIND_API_KEY.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("manifest", metavar="MANIFEST", help="a YAML or CSV manifest")
    add_run_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    key = os.environ.get("SEGMIND_API_KEY", "").strip()
    if not key and not args.dry_run:
        print(
            "error: set SEGMIND_API_KEY to your Segmind API key (see docs/tutorial/first-batch.md)",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    try:
        options = run_options(args, api_key=key or "unused-for-dry-run")
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    return execute_run(
        options,
        grace=args.grace,
        no_progress=args.no_progress,
        log_format=args.log_format,
        verbose=args.verbose,
    )

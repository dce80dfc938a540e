"""Run directories in a bucket for the commands that read them (``status``, ``report``,
``export``, ``review``): each URL is read into a temporary spool (its ledger segments and run
files) and the command reads that; ``report`` ships the report it wrote back to the bucket, and
``review`` its verdicts (the handler gets the bucket directories as ``args.remotes``). Local paths
pass through untouched."""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from batchflux.run.exitcodes import ExitCode
from batchflux.rundir import RunDir, TargetError, is_url, open_run_dir
from batchflux.rundir.store import StoreUnavailable

Handler = Callable[[argparse.Namespace], int]


def out_target(text: str) -> Path | str:
    """An ``OUT`` argument: a bucket URL stays a string (a Path would fold ``s3://b`` into ``s3:/b``)."""
    return text if is_url(text) else Path(text)


def add_out_targets(parser: argparse.ArgumentParser) -> None:
    """The ``OUT...`` positional of the commands that read run directories, local or in a bucket."""
    parser.add_argument(
        "out",
        nargs="+",
        type=out_target,
        metavar="OUT",
        help="run directory (holds ledger.jsonl), or its bucket URL",
    )


def reading_run_dirs(
    command: str, *, write_back: bool = False, fetch: tuple[str, ...] = ()
) -> Callable[[Handler], Handler]:
    """``args.out`` (paths and URLs) becomes local directories for the wrapped handler, with the
    files under each ``fetch`` prefix brought in too (beyond what a restore brings)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run(args: argparse.Namespace) -> int:
            if not any(is_url(t) for t in args.out):
                return handler(args)
            with tempfile.TemporaryDirectory(prefix="batchflux-read-") as tmp:
                remotes: list[RunDir] = []
                local: list[Path] = []
                try:
                    for i, target in enumerate(args.out):
                        if not is_url(target):
                            local.append(Path(target))
                            continue
                        rundir = open_run_dir(target, spool=Path(tmp) / str(i))
                        rundir.restore()
                        for prefix in fetch:
                            rundir.fetch(prefix)
                        remotes.append(rundir)
                        local.append(rundir.local)
                except TargetError as exc:
                    print(f"batchflux {command}: {exc}", file=sys.stderr)
                    return ExitCode.USAGE
                except StoreUnavailable as exc:
                    print(f"batchflux {command}: {exc}", file=sys.stderr)
                    return ExitCode.TEMPFAIL
                names = [str(t) for t in args.out]
                code = handler(
                    argparse.Namespace(**{**vars(args), "out": local, "out_names": names, "remotes": remotes})
                )
                if write_back and code == ExitCode.OK:
                    try:
                        for rundir in remotes:
                            # Not final: only the lease holder compacts the ledger's segments; a
                            # reader's compaction could race a runner's and put back a shorter one.
                            rundir.ship()
                            print(f"{command}: shipped to {rundir.where}")
                    except StoreUnavailable as exc:
                        print(f"batchflux {command}: {exc}", file=sys.stderr)
                        return ExitCode.TEMPFAIL
                return code

        return run

    return wrap

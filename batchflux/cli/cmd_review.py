"""``batchflux review OUT [OUT...]``: approve or reject each edit in the browser; or, from a script,
``--approve-all-unreviewed`` and ``--reject ID...``. An OUT in a bucket is reviewed from a restored
spool; its review log is merged into the bucket's after the scripted verdicts, and every
:data:`~batchflux.review.server.SHIP_EVERY_S` and at the stop while the page is served."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import webbrowser
from typing import Any

from batchflux.cli.remote import add_out_targets, reading_run_dirs
from batchflux.files.durable import WriteFailed
from batchflux.ledger import LedgerCorrupt
from batchflux.report import ReportError
from batchflux.run.exitcodes import ExitCode
from batchflux.rundir import RunDir
from batchflux.rundir.store import StoreUnavailable


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "review",
        help="approve or reject each edit in the browser; verdicts go to the run's record",
        description=(
            "Serve a review page for one or more run directories (shards are merged) on 127.0.0.1: every "
            "job's before and after in manifest order, failed jobs with their reason. The keyboard does it "
            "all: j/k move, a approves, r rejects, u clears, n writes a note, ? shows the keys. Verdicts are "
            "saved at once as 'reviewed' events in OUT/reviews.jsonl, beside the ledger (a run may work on "
            "the directory meanwhile). The page's URL carries a random token; without it every path "
            "answers 403. Ctrl-C stops the server. 'batchflux run MANIFEST --redo-rejected' submits the "
            "rejected jobs again. An OUT in a bucket (s3://...) is read into a temporary spool; its "
            "verdicts are merged into the bucket's review log every few seconds and at the stop, never "
            "put over another reviewer's."
        ),
    )
    add_out_targets(parser)
    parser.add_argument(
        "--port", type=int, default=0, metavar="N", help="the port to listen on (default: a free one)"
    )
    parser.add_argument("--no-open", action="store_true", help="print the URL, do not open a browser")
    parser.add_argument(
        "--approve-all-unreviewed",
        action="store_true",
        help="no page: approve every image that has no verdict yet, then exit",
    )
    parser.add_argument(
        "--reject",
        nargs="+",
        default=[],
        metavar="ID",
        help="no page: reject these jobs' images (DIR/ID when merged directories share an id), then exit",
    )
    parser.add_argument(
        "--note", default="", metavar="TEXT", help="the note to give with --reject/--approve-all-unreviewed"
    )
    parser.set_defaults(handler=run)


@reading_run_dirs("review")
def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        return _fail(f"--port {args.port}: not a port number")
    try:
        if args.reject or args.approve_all_unreviewed:
            return _scripted(args)
        return _serve(args)
    except ReportError as exc:
        return _fail(str(exc))
    except LedgerCorrupt as exc:
        return _fail(str(exc))
    except WriteFailed as exc:
        return _fail(str(exc))
    except StoreUnavailable as exc:
        print(f"batchflux review: {exc}", file=sys.stderr)
        return ExitCode.TEMPFAIL


def _ship(remotes: list[RunDir]) -> None:
    for rundir in remotes:
        rundir.ship_reviews()


def _scripted(args: argparse.Namespace) -> int:
    from batchflux.review.scripted import give_verdicts

    done = give_verdicts(
        args.out, approve_unreviewed=args.approve_all_unreviewed, reject=args.reject, note=args.note
    )
    if done.unknown:
        return _fail(f"no such job: {', '.join(done.unknown)}; nothing was recorded")
    if done.no_image:
        return _fail(f"no image to review: {', '.join(done.no_image)}; nothing was recorded")
    remotes: list[RunDir] = vars(args).get("remotes", [])
    _ship(remotes)
    print(f"review: {done.rejected} rejected, {done.approved} approved")
    for rundir in remotes:
        print(f"review: shipped to {rundir.where}")
    return ExitCode.OK


def _serve(args: argparse.Namespace) -> int:
    from batchflux.review.images import StoredImages
    from batchflux.review.server import serve

    def ready(url: str) -> None:
        print(f"review: {url}  (Ctrl-C stops)", flush=True)
        if not args.no_open:
            with contextlib.suppress(Exception):  # no browser here: the printed URL is enough
                webbrowser.open(url)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        images = await asyncio.to_thread(StoredImages, remotes) if remotes else None
        await serve(
            args.out, port=args.port, ready=ready, stop=stop, ship=ship if remotes else None, images=images
        )

    remotes: list[RunDir] = vars(args).get("remotes", [])

    def ship() -> None:
        _ship(remotes)

    try:
        asyncio.run(main())
    except OSError as exc:  # the port is taken, or not ours to bind
        return _fail(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}")
    print("review: stopped; verdicts are in each OUT/reviews.jsonl", file=sys.stderr)
    return ExitCode.OK


def _fail(message: str) -> int:
    print(f"batchflux review: {message}", file=sys.stderr)
    return ExitCode.USAGE

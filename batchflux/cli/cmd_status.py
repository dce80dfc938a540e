"""``batchflux status OUT [OUT ...] [--json]``: where a batch stands, read from its ledgers; with
``--spend``, what it really cost (:mod:`.spend_view`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any

from batchflux.cli.remote import add_out_targets, reading_run_dirs
from batchflux.cli.runopts import add_base_url, add_history_url
from batchflux.cli.spend_view import EXIT_CODES_HELP, run_spend
from batchflux.ledger import LedgerCorrupt
from batchflux.ledger.resume import RETENTION_S
from batchflux.run.exitcodes import ExitCode
from batchflux.run.state import LastRun, NoLedger, RunStatus, load_status

# How the states read in text; --json uses the JobState values themselves.
STATE_LABELS = {
    "downloaded": "done",
    "submitted": "submitted",
    "completed": "to download",
    "failed": "failed",
    "expired": "expired",
    "intent": "unconfirmed submit",
    "pending": "not submitted",
}
EXIT_MEANINGS = {
    0: "ok",
    1: "some jobs failed",
    2: "usage error",
    3: "stopped",
    4: "locked",
    130: "interrupted",
}


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="where a run stands: counts, failures by cause, in-flight requests and their expiry",
        description=(
            "Read the ledger of one or more run directories (the shards of one batch are merged) and show "
            "counts by state, failures grouped by cause with an example each, requests in flight with the "
            "time left before the server forgets them (1 h after submission), possible duplicate charges, "
            "expirations, and the last run's start, end and exit code. Safe while a run is going. "
            "With --spend, set the ledgers against the account's request history instead: what the "
            "requests they hold really cost, and the requests paid twice (the API key is read from "
            "SEGMIND_API_KEY)."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_out_targets(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument(
        "--limit",
        type=int,
        default=20,
        metavar="N",
        help="in-flight requests to list, soonest expiry first (with --spend: requests paid twice)",
    )
    parser.add_argument(
        "--retention",
        type=float,
        metavar="SECONDS",
        help="how long the server keeps a request after submission (default: what the last run was "
        f"told with --retention, else {RETENTION_S:g}; for emulators)",
    )
    spend = parser.add_argument_group("spend")
    spend.add_argument(
        "--spend",
        action="store_true",
        help="ask the request history what the batch cost: the requests the ledgers hold with their "
        "real cost, the requests paid twice (named by job), the totals beside the ledgers' estimate",
    )
    add_base_url(spend)
    add_history_url(spend)
    parser.set_defaults(handler=run)


@reading_run_dirs("status")
def run(args: argparse.Namespace) -> int:
    if args.spend:
        return run_spend(args)
    try:
        status = load_status(args.out, now=time.time(), retention_s=args.retention)
        if getattr(args, "out_names", None):  # read from buckets: name them as the user did
            status = dataclasses.replace(status, out_dirs=tuple(args.out_names))
    except (NoLedger, LedgerCorrupt) as exc:
        print(f"batchflux status: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except OSError as exc:
        print(f"batchflux status: cannot read the ledger: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    limit = max(0, args.limit)
    if args.json:
        print(json.dumps(status.to_json(limit), indent=2))
    else:
        print(render(status, limit))
    return ExitCode.OK


def render(status: RunStatus, limit: int = 20) -> str:
    now = status.now
    lines = [", ".join(status.out_dirs)]
    counts = [f"{n} {STATE_LABELS.get(state, state)}" for state, n in status.by_state.items() if n]
    lines.append(f"jobs: {status.jobs}" + (f" ({', '.join(counts)})" if counts else ""))
    if status.failures:
        lines.append("failures by cause:")
        width = max(len(f.cause) for f in status.failures)
        for f in status.failures:
            example = f"{f.example_job}: {_clip(f.example_error)}"
            lines.append(f"  {f.cause:<{width}}  {f.count:>6}  e.g. {example}")
    lines.append(
        f"in flight: {len(status.in_flight)}" + (" (soonest expiry first)" if status.in_flight else "")
    )
    shown = status.in_flight[:limit]
    jw = max((len(req.job_id) for req in shown), default=0)
    rw = max((len(req.request_id) for req in shown), default=0)
    for req in shown:
        lines.append(
            f"  {req.job_id:<{jw}}  {req.request_id:<{rw}}  {req.status or '?':<10}  "
            f"submitted {_iso(req.submitted_at)}  expires in {_duration(req.seconds_left(now))}"
        )
    if len(status.in_flight) > len(shown):
        lines.append(f"  … and {len(status.in_flight) - len(shown)} more")
    if status.past_retention:
        lines.append(
            f"past retention without a result: {status.past_retention} "
            "(the next run resubmits them, counted as expired)"
        )
    lines.append(f"possible duplicate charges (ambiguous submits): {status.possible_duplicates}")
    if status.actual_spend_requests:
        n = status.actual_spend_requests
        lines.append(
            f"actual spend known: ${status.actual_spend_usd:,.2f} for {n} request{'s' if n != 1 else ''} "
            "the request history priced (--spend asks it about every request)"
        )
    lines.append(f"expirations: {status.expirations}")
    r = status.reviews
    if any(r.values()):
        redo = " (run MANIFEST --redo-rejected submits the rejected again)" if r.get("rejected") else ""
        lines.append(
            f"reviews: {r.get('approved', 0)} approved, {r.get('rejected', 0)} rejected, "
            f"{r.get('unreviewed', 0)} images not reviewed yet{redo}"
        )
    lines.extend(_last_run_line(run, several=len(status.out_dirs) > 1) for run in status.last_runs)
    if not status.last_runs:
        lines.append("last run: none recorded")
    lines.extend(f"note: {tail}" for tail in status.torn_tails)
    if status.duplicate_ids:
        lines.append(
            f"note: {status.duplicate_ids} job ids appear in more than one directory (the latest one counts)"
        )
    return "\n".join(lines)


def _last_run_line(run: LastRun, *, several: bool) -> str:
    where = f" [{run.out_dir}]" if several else ""
    text = f"last run{where}: started {_iso(run.started_at)}"
    if run.finished_at is not None:
        took = _duration(run.finished_at - run.started_at)
        code = (
            "?"
            if run.exit_code is None
            else f"{run.exit_code} ({EXIT_MEANINGS.get(run.exit_code, 'unknown')})"
        )
        text += f", ended {_iso(run.finished_at)} after {took}, exit {code}"
    else:
        who = "" if run.pid is None else f"; pid {run.pid}" + (f" on {run.host}" if run.host else "")
        text += f", still running / killed (no run_finished{who})"
    if run.runs > 1:
        text += f"; {run.runs} runs in all"
    return text


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


def _duration(seconds: float) -> str:
    s = max(0, int(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {sec:02d}s" if m else f"{sec}s"


def _clip(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"

"""The options ``run`` and ``demo`` share, and their translation into :class:`RunOptions`."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from batchflux.cli.remote import out_target
from batchflux.engine.breaker import OUTAGE_AFTER_S
from batchflux.engine.config import EngineConfig
from batchflux.engine.pacing import Rate, parse_rate
from batchflux.ledger.events import FAILURE_CAUSES
from batchflux.ledger.resume import RETENTION_S
from batchflux.run.runner import DEFAULT_BASE_URL, RunOptions
from batchflux.run.shard import parse_shard

EXIT_CODES_HELP = """\
exit codes:
  0    every job done, every image on disk
  1    run finished; some jobs failed permanently (summary.json lists them)
  2    usage or manifest error; nothing was submitted
  3    stopped by the API or a cap: auth, credits, budget (--max-cost, --max-jobs); resumable
  4    another run holds the lock for this output directory
  75   a temporary failure: the API or media host unreachable, the disk full or
       read-only; unsubmitted jobs stay pending; resumable, retry later
  130  interrupted by a signal; resumable
"""


class UsageError(Exception):
    """A bad option value: printed as one line, exit 2."""


def _set_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def usd(text: str) -> float:
    """An argparse type for an amount of money: a finite number, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be an amount of 0 or more, got {text!r}")
    return value


def add_set_option(p: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE`` (repeatable): defaults for every job, shared by run and validate."""
    p.add_argument(
        "--set",
        metavar="KEY=VALUE",
        type=_set_pair,
        action="append",
        default=[],
        help="a default parameter for every job, e.g. --set output_format=jpg (repeatable)",
    )


def add_base_url(group: argparse._ActionsContainer) -> None:
    """``--base-url``: the API base, for ``run``, ``demo`` and ``status --spend``."""
    group.add_argument(
        "--base-url", metavar="URL", help=f"API base (default: $BATCHFLUX_BASE_URL or {DEFAULT_BASE_URL})"
    )


def add_history_url(group: argparse._ActionsContainer) -> None:
    """``--history-url``: where Segmind's request history is read."""
    group.add_argument(
        "--history-url",
        metavar="URL",
        help="Segmind's request history (default: $BATCHFLUX_HISTORY_URL, Segmind's, or "
        "{base}/inference-request/request-history with --base-url)",
    )


def api_urls(args: argparse.Namespace) -> tuple[str, str | None]:
    """The API base and the request history's URL (None: the client's default for that base),
    from the options, else the environment."""
    base = args.base_url or os.environ.get("BATCHFLUX_BASE_URL") or DEFAULT_BASE_URL
    return base, args.history_url or os.environ.get("BATCHFLUX_HISTORY_URL") or None


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        metavar="DIR|URL",
        type=out_target,
        help="run directory: a path (default: out/<manifest stem>/), or a bucket prefix "
        "s3://BUCKET/PREFIX, gs://…, az://… (needs the [s3] extra)",
    )
    p.add_argument(
        "--spool",
        metavar="DIR",
        type=Path,
        help="with a bucket --out: the local side (ledger first, images before upload); "
        "default under the user's cache directory, one per URL; may vanish between runs",
    )
    add_set_option(p)
    pace = p.add_argument_group("pacing")
    pace.add_argument(
        "--rpm",
        type=int,
        metavar="N",
        help="the account's quota: never more than N submits in any 60 s (short for --rate N/60s)",
    )
    pace.add_argument(
        "--rate",
        metavar="N/PERIOD",
        help="a windowed quota, e.g. 60/6s or 1000/1h; without --rpm/--rate the submit rate "
        "adapts to the server's 429s",
    )
    pace.add_argument(
        "--max-in-flight",
        type=int,
        default=256,
        metavar="N",
        help="requests submitted but not yet resolved (default 256)",
    )
    pace.add_argument(
        "--shard",
        metavar="K/N",
        help="run shard K (0-based) of N: a stable part of the jobs; paces at the rate ÷ N",
    )
    caps = p.add_argument_group("spending")
    caps.add_argument("--max-jobs", type=int, metavar="N", help="submit at most N new requests this run")
    caps.add_argument("--max-cost", type=usd, metavar="USD", help="stop submitting before spending more")
    caps.add_argument("--price", type=usd, metavar="USD", help="price per image (default: the model's)")
    caps.add_argument(
        "--no-credit-check",
        action="store_true",
        help="skip the pre-flight check that the balance covers the jobs to submit",
    )
    caps.add_argument(
        "--dry-run",
        action="store_true",
        help="validate, read the ledger, print what would happen and the cost; submit nothing",
    )
    res = p.add_argument_group("resume")
    res.add_argument(
        "--retry-failed",
        nargs="?",
        const="",
        metavar="CAUSES",
        help="submit failed jobs again: all, or only these causes "
        f"(comma-separated: {', '.join(FAILURE_CAUSES)})",
    )
    res.add_argument(
        "--redo-rejected",
        action="store_true",
        help="submit the jobs whose image was rejected in batchflux review again, each with a new "
        "derived seed (unless the manifest changed the job); the rejected image is kept as "
        "<stem>.rejected-N.<ext>",
    )
    res.add_argument(
        "--fresh",
        action="store_true",
        help="start over: move the old ledger aside (it is kept) and submit everything",
    )
    api = p.add_argument_group("API")
    add_base_url(api)
    api.add_argument(
        "--upload-url",
        metavar="URL",
        help="upload endpoint (default: Segmind's, or {base}/upload-asset with --base-url)",
    )
    add_history_url(api)
    api.add_argument(
        "--no-history",
        action="store_true",
        help="never ask the request history: resubmit open submits and expired requests as-is",
    )
    api.add_argument(
        "--history-wait",
        type=float,
        default=EngineConfig().history_wait_s,
        metavar="SECONDS",
        help="how long a request's record may take to land in the request history: a submit not "
        "found there is looked up once more this long after its answer was lost (at resume: after its "
        "run stopped, or this run's start if it was killed), before it is paid again (default %(default)g)",
    )
    api.add_argument(
        "--inline-inputs",
        action="store_true",
        help="send local input images as data URIs instead of uploading them",
    )
    api.add_argument(
        "--upload-inputs",
        action="store_true",
        help="send input images in a bucket (s3://, gs://, az://) through Segmind's upload host "
        "instead of as signed GET URLs (valid 3 h)",
    )
    api.add_argument(
        "--retention",
        type=float,
        default=RETENTION_S,
        metavar="SECONDS",
        help=f"how long the API keeps a request ({RETENTION_S:g}); change only for an emulator",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--no-progress", action="store_true", help="no progress bars (off anyway when not a TTY)"
    )
    out.add_argument("--log-format", choices=("text", "json"), default="text", help="batchflux.log format")
    out.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    out.add_argument(
        "--metrics-file",
        type=Path,
        metavar="PATH",
        help="write Prometheus gauges here at the end (node_exporter textfile collector)",
    )
    out.add_argument("--no-report", action="store_true", help="do not write report.html at the end")
    out.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="after SIGINT/SIGTERM/SIGHUP or an outage, follow in-flight requests this long (default 30)",
    )
    out.add_argument(
        "--outage-after",
        type=float,
        default=OUTAGE_AFTER_S,
        metavar="SECONDS",
        help="when every call to the API (or the media host) has failed this long, stop submitting, "
        f"drain for --grace and exit 75; unsubmitted jobs stay pending (default {OUTAGE_AFTER_S:g})",
    )


def _rate(args: argparse.Namespace) -> Rate | None:
    if args.rpm is not None and args.rate is not None:
        raise UsageError("give --rpm or --rate, not both")
    if args.rpm is not None:
        if args.rpm < 1:
            raise UsageError("--rpm must be at least 1")
        return Rate(args.rpm, 60.0)
    if args.rate is not None:
        try:
            return parse_rate(args.rate)
        except ValueError as exc:
            raise UsageError(f"--rate: {exc}") from None
    return None


def _retry_failed(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    causes = frozenset(c.strip() for c in value.split(",") if c.strip() and c.strip() != "all")
    unknown = causes - set(FAILURE_CAUSES)
    if unknown:
        raise UsageError(
            f"--retry-failed: unknown cause(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(FAILURE_CAUSES)}"
        )
    return causes


def run_options(args: argparse.Namespace, *, api_key: str) -> RunOptions:
    rate = _rate(args)
    shard = None
    if args.shard:
        try:
            shard = parse_shard(args.shard)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if rate is not None:
            limit, period = shard.share_window(rate.limit, rate.period)
            rate = Rate(limit, period)
    if args.outage_after <= 0 or args.grace < 0:
        raise UsageError("--outage-after must be positive and --grace not negative")
    if not math.isfinite(args.history_wait) or args.history_wait < 0:
        raise UsageError("--history-wait must be 0 or more seconds")
    for name in ("max_in_flight", "max_jobs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    engine = EngineConfig(
        rate=rate,
        max_in_flight=args.max_in_flight,
        retention_s=args.retention,
        inline_inputs=args.inline_inputs,
        max_new_submits=args.max_jobs,
        max_cost_usd=args.max_cost,
        outage_after_s=args.outage_after,
        drain_s=args.grace,
        history=not args.no_history,
        history_wait_s=args.history_wait,
    )
    base_url, history_url = api_urls(args)
    return RunOptions(
        manifest=Path(args.manifest),
        api_key=api_key,
        out_dir=args.out,
        spool=args.spool,
        upload_inputs=args.upload_inputs,
        overrides=dict(args.set),
        base_url=base_url,
        upload_url=args.upload_url,
        history_url=history_url,
        engine=engine,
        shard=shard,
        retry_failed=_retry_failed(args.retry_failed),
        fresh=args.fresh,
        redo_rejected=args.redo_rejected,
        dry_run=args.dry_run,
        credit_check=not args.no_credit_check,
        price=args.price,
        report=not args.no_report,
        metrics_file=args.metrics_file,
    )

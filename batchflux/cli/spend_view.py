"""``batchflux status --spend OUT...``: the key, the ledgers, the request history, the text."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import date

from batchflux.cli.runopts import api_urls
from batchflux.ledger import LedgerCorrupt
from batchflux.run.exitcodes import ExitCode
from batchflux.run.spend import SpendReport, SpendUnavailable, read_spend_dir, report_json, spend_report
from batchflux.run.state import NoLedger

EXIT_CODES_HELP = """\
exit codes:
  0    read and printed
  2    usage error: no ledger, an unreadable one, no SEGMIND_API_KEY (with --spend)
  3    with --spend: the request history refused (401/403: the API key is wrong) or cannot
       answer at that URL (404, an answer of an unknown shape)
  75   with --spend: the request history is unreachable or failing (5xx, timeouts, 429s
       after a few tries); try again later
"""


def _say(line: str) -> None:
    print(f"batchflux status: {line}", file=sys.stderr)


def run_spend(args: argparse.Namespace) -> int:
    key = os.environ.get("SEGMIND_API_KEY", "").strip()
    if not key:
        _say("--spend asks the request history: set SEGMIND_API_KEY to your Segmind API key")
        return ExitCode.USAGE
    try:
        dirs = [read_spend_dir(path) for path in args.out]
    except (NoLedger, LedgerCorrupt) as exc:
        _say(str(exc))
        return ExitCode.USAGE
    except OSError as exc:
        _say(f"cannot read the ledger: {exc}")
        return ExitCode.USAGE
    base_url, history_url = api_urls(args)
    try:
        report = asyncio.run(
            spend_report(dirs, api_key=key, base_url=base_url, history_url=history_url, now=time.time())
        )
    except SpendUnavailable as exc:
        _say(str(exc))
        return exc.exit_code
    except ValueError as exc:  # an unusable --base-url / --history-url
        _say(f"--base-url / --history-url: {exc}")
        return ExitCode.USAGE
    if args.json:
        print(json.dumps(report_json(report), indent=2))
    else:
        print(render_spend(report, max(0, args.limit)))
    return ExitCode.OK


def render_spend(report: SpendReport, limit: int = 20) -> str:
    t = report.tally
    pages = f"{report.history_calls} page{_s(report.history_calls)}"
    lines = [
        f"{', '.join(report.out_dirs)}: {', '.join(report.models)}, requests of {_windows(report.windows)} "
        f"({pages} of the request history, {report.rows} rows)"
    ]
    if not report.complete:
        lines.append("note: the request history kept sending full pages; what is below is incomplete")
    several = len(report.out_dirs) > 1
    ledger, holds = ("the ledgers", "hold") if several else ("the ledger", "holds")
    unpriced = t.known_no_cost + t.known_not_listed
    known = f"requests {ledger} {holds}: {t.known}, {_usd(t.known_cost_usd)}"
    if unpriced:
        parts = []
        if t.known_no_cost:
            parts.append(f"{t.known_no_cost} without a cost yet")
        if t.known_not_listed:
            parts.append(f"{t.known_not_listed} not listed")
        known += f" ({t.known_priced} priced; {', '.join(parts)})"
    lines.append(known)
    lines.append(
        f"paid twice: {len(t.duplicates)} request{_s(len(t.duplicates))} made by submits that never heard "
        f"their answer, {_usd(t.duplicates_cost_usd)}"
    )
    shown = t.duplicates[:limit]
    jw = max((len(d.job_id) for d in shown), default=0)
    for d in shown:
        when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(d.created_at)) if d.created_at else "?"
        cost = _usd(d.cost_usd) if d.cost_usd is not None else "no cost yet"
        where = f"  [{d.out_dir}]" if several else ""
        lines.append(f"  {d.job_id:<{jw}}  {d.request_id}  {when}  {d.status or '?':<9}  {cost}{where}")
    if len(t.duplicates) > len(shown):
        lines.append(f"  … and {len(t.duplicates) - len(shown)} more (--json lists them all)")
    if t.elsewhere:
        lines.append(
            f"same body, not sent from {ledger}: {t.elsewhere}, {_usd(t.elsewhere_cost_usd)} (another "
            "directory of the same jobs, a ledger moved aside by --fresh, another client)"
        )
    if t.not_landed:
        lines.append(f"not landed yet: {t.not_landed} (records incomplete; ask again later to match them)")
    if t.other:
        lines.append(
            f"other requests of the model those days: {t.other}, {_usd(t.other_cost_usd)} (not this batch's)"
        )
    actual = f"actual spend: {_usd(t.actual_usd)}"
    if t.unpriced:
        actual += f" so far ({t.unpriced} not priced yet)"
    lines.append(
        f"{actual}; {ledger}'{'' if several else 's'} estimate: {_usd(t.estimate_usd)} for "
        f"{t.billable_submits} billable submits, {t.possible_duplicates} possible duplicate "
        f"charge{_s(t.possible_duplicates)}"
    )
    return "\n".join(lines)


def _windows(windows: Sequence[tuple[date, date]]) -> str:
    if not windows:
        return "no dates (nothing ran)"
    return ", ".join(a.isoformat() if a == b else f"{a.isoformat()} to {b.isoformat()}" for a, b in windows)


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _usd(value: float) -> str:
    return f"${value:,.2f}"

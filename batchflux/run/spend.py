"""``batchflux status --spend``: run directories set against the account's request history.

Reads each directory's ledger (:func:`~batchflux.ledger.requests.read_ledger`), lists the
history's rows for the batch's model over the ledgers' dates — from the first ``run_started`` to
the last event, in windows of at most 31 days, pages of 100, oldest first — and hands them to
:func:`~batchflux.ledger.spend.tally_spend`. The calls are bounded by the rows of those days, not
by the jobs: one call per 100 rows, and never one per request.

Unlike a run, which goes on without the history, this command exists to ask it: a failure is a
:class:`SpendUnavailable` with one line for the user and the exit code — ``STOPPED`` (3) when the
history refuses (401/403: the key is wrong; a 404, another 4xx, an answer of an unknown shape:
it cannot answer here), ``TEMPFAIL`` (75) when it is unreachable or failing (5xx, timeouts,
connection errors, 429s) after a few tries.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp

from batchflux.api import (
    ApiClient,
    ApiError,
    Fatal,
    HistoryPage,
    HistoryQuery,
    HistoryRow,
    HistoryUnavailable,
    RateLimited,
    Transient,
    policy,
)
from batchflux.api.history import MAX_PER_PAGE
from batchflux.files.layout import LEDGER_FILENAME
from batchflux.ledger.requests import RequestLog, read_ledger
from batchflux.ledger.spend import SpendTally, spend_windows, tally_spend
from batchflux.manifest.schema import price_for
from batchflux.run.exitcodes import ExitCode
from batchflux.run.state import NoLedger
from batchflux.run.summary import iso_utc

ATTEMPTS = 4  # tries of one page through 5xx and transport errors
RATE_LIMITED_ATTEMPTS = 8  # ... and through 429s, each waited out
MAX_PAGES = 1000  # pages of one window (100 000 rows): past that, the tally says it is incomplete
DEFAULT_MODEL = "flux-kontext-max"


class SpendUnavailable(Exception):
    """The request history could not be read: ``str()`` is the line for the user."""

    def __init__(self, message: str, exit_code: ExitCode) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class SpendDir:
    """One run directory as read for the tally."""

    name: str
    log: RequestLog
    span: tuple[float, float] | None  # first run_started .. last event (unix); None: nothing ran
    models: frozenset[str]


@dataclass(frozen=True, slots=True)
class SpendReport:
    out_dirs: tuple[str, ...]
    models: tuple[str, ...]
    windows: tuple[tuple[date, date], ...]
    history_calls: int  # pages asked for
    rows: int  # rows listed, before de-duplication
    complete: bool  # every window was listed to its end
    tally: SpendTally


def read_spend_dir(path: Path) -> SpendDir:
    """Raises :class:`~batchflux.run.state.NoLedger`, ``LedgerCorrupt`` and ``OSError``."""
    ledger = path / LEDGER_FILENAME
    if not ledger.is_file():
        raise NoLedger(ledger)
    log = RequestLog(keep_intents=True)
    replay = read_ledger(ledger, log)
    ends = [rec.last_ts for rec in replay.jobs.values()]
    ends += [run.finished_at if run.finished_at is not None else run.started_at for run in replay.runs]
    starts = [run.started_at for run in replay.runs] or [rec.first_ts for rec in replay.jobs.values()]
    span = (min(starts), max(ends)) if starts and ends else None
    models = frozenset(i.model for i in log.intents) | frozenset(
        rec.model for rec in replay.jobs.values() if rec.model
    )
    return SpendDir(str(path), log, span, models)


PageFetch = Callable[[HistoryQuery], Awaitable[HistoryPage]]


async def list_rows(
    fetch: PageFetch,
    model: str,
    windows: Sequence[tuple[date, date]],
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
    max_pages: int = MAX_PAGES,
) -> tuple[list[HistoryRow], int, bool]:
    """The model's rows over ``windows``, oldest first: (rows, pages asked for, complete). A window
    ends at a short page, when the envelope says no more follow, or when a full page brings no
    request not seen before (a server that ignores ``page``)."""
    rng = rng or random.Random()
    rows: list[HistoryRow] = []
    seen: set[str] = set()
    calls = 0
    complete = True
    for first, last in windows:
        for page in range(1, max_pages + 1):
            query = HistoryQuery(
                page=page, per_page=MAX_PER_PAGE, from_date=first, to_date=last, model_name=model,
                sort_by="model_created", sort_order="asc",
            )  # fmt: skip
            got = await _ask(fetch, query, sleep, rng)
            calls += 1
            rows.extend(got.rows)
            new = {r.request_id for r in got.rows if r.request_id} - seen
            seen |= new
            if len(got.rows) < MAX_PER_PAGE or not got.more:
                break
            if not new:
                complete = False
                break
        else:
            complete = False
    return rows, calls, complete


async def _ask(
    fetch: PageFetch, query: HistoryQuery, sleep: Callable[[float], Awaitable[None]], rng: random.Random
) -> HistoryPage:
    failures = limited = 0
    while True:
        try:
            return await fetch(query)
        except RateLimited as exc:
            limited += 1
            if limited >= RATE_LIMITED_ATTEMPTS:
                raise SpendUnavailable(
                    f"the request history kept answering 429 (rate limited); try again later ({exc})",
                    ExitCode.TEMPFAIL,
                ) from exc
            await sleep(policy.rate_limit_delay(exc, limited, rng))
        except Transient as exc:
            failures += 1
            if failures >= ATTEMPTS:
                raise SpendUnavailable(
                    f"the request history is unreachable or failing ({exc}); try again later",
                    ExitCode.TEMPFAIL,
                ) from exc
            await sleep(policy.backoff_delay(failures, base=0.2, cap=5.0, rng=rng))
        except Fatal as exc:
            if exc.kind in ("auth", "forbidden"):
                message = f"the request history refused the API key ({exc}); check SEGMIND_API_KEY"
            else:
                message = f"cannot ask the request history: {exc}"
            raise SpendUnavailable(message, ExitCode.STOPPED) from exc
        except HistoryUnavailable as exc:
            raise SpendUnavailable(
                f"the request history cannot answer here ({exc}); is --history-url right?",
                ExitCode.STOPPED,
            ) from exc
        except ApiError as exc:
            raise SpendUnavailable(f"the request history failed: {exc}", ExitCode.STOPPED) from exc


async def spend_report(
    dirs: Sequence[SpendDir],
    *,
    api_key: str,
    base_url: str,
    history_url: str | None,
    now: float,
    timeout_s: float = 30.0,
) -> SpendReport:
    """List the history over the directories' dates and tally it. Raises :class:`SpendUnavailable`,
    and ``ValueError`` for an unusable URL."""
    spans = [d.span for d in dirs if d.span is not None]
    windows = spend_windows(spans, now)
    models = sorted(set().union(*(d.models for d in dirs))) or [DEFAULT_MODEL]
    rows: list[HistoryRow] = []
    calls = 0
    complete = True
    async with aiohttp.ClientSession() as session:
        client = ApiClient(
            session, api_key=api_key, base_url=base_url, history_url=history_url, timeout_s=timeout_s
        )
        for model in models:
            got, asked, whole = await list_rows(client.history, model, windows)
            rows += got
            calls += asked
            complete = complete and whole
    tally = tally_spend(
        [(d.name, d.log) for d in dirs],
        rows,
        price_usd=price_for(models[0]),  # for a request whose run recorded no price
    )
    return SpendReport(
        out_dirs=tuple(d.name for d in dirs),
        models=tuple(models),
        windows=tuple(windows),
        history_calls=calls,
        rows=len(rows),
        complete=complete,
        tally=tally,
    )


def report_json(report: SpendReport) -> dict[str, Any]:
    """The report as ``status --spend --json`` prints it."""
    t = report.tally
    return {
        "out_dirs": list(report.out_dirs),
        "models": list(report.models),
        "windows": [[first.isoformat(), last.isoformat()] for first, last in report.windows],
        "history_calls": report.history_calls,
        "history_rows": report.rows,
        "complete": report.complete,
        "known": {
            "requests": t.known,
            "cost_usd": round(t.known_cost_usd, 6),
            "priced": t.known_priced,
            "no_cost_yet": t.known_no_cost,
            "not_listed": t.known_not_listed,
        },
        "duplicates": {
            "count": len(t.duplicates),
            "cost_usd": round(t.duplicates_cost_usd, 6),
            "requests": [
                {
                    "job": d.job_id,
                    "out_dir": d.out_dir,
                    "request_id": d.request_id,
                    "created_at": iso_utc(d.created_at) if d.created_at is not None else None,
                    "status": d.status,
                    "cost_usd": d.cost_usd,
                }
                for d in t.duplicates
            ],
        },
        "elsewhere": {"count": t.elsewhere, "cost_usd": round(t.elsewhere_cost_usd, 6)},
        "not_landed": t.not_landed,
        "other": {"count": t.other, "cost_usd": round(t.other_cost_usd, 6)},
        "actual_usd": round(t.actual_usd, 6),
        "unpriced": t.unpriced,
        "estimate": {
            "usd": round(t.estimate_usd, 6),
            "billable_submits": t.billable_submits,
            "possible_duplicates": t.possible_duplicates,
        },
    }

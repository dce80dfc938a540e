"""What a batch really cost, the ledgers set against the account's request history (pure).

``batchflux status --spend`` lists the history's rows for the batch's model over the ledgers'
dates (:func:`spend_windows`), then :func:`tally_spend` sorts every row, de-duplicated on
``request_id`` (a request with several outputs is listed once per output, each row carrying the
whole cost):

- **known** — a request some ledger holds (every ``submitted`` of every job, not only the latest):
  its cost is the row's ``credits_deduction``, else what the ledger recorded; without either it
  has *no cost yet* (its record has not landed, it is still pending) or is *not listed* (not
  among the rows of these dates);
- **duplicate** — a request no ledger holds that a POST of theirs made without hearing the answer:
  paid a second time, named by the job. Only a POST whose ``submit_intent`` never got an answer
  (the ledgers' possible duplicate charges) can have made one, and each at most one; a row is
  such a POST's request by the matching rules of :mod:`.reconcile` (the same parameters, the
  input as sent, created no earlier than the POST less the clock skew; the nearest after it);
- **elsewhere** — a request with a job's body that no POST of these ledgers can have made:
  another run directory of the same jobs, a ledger moved aside by ``--fresh``, another client;
- **not landed** — a request no ledger holds whose record is not complete yet: it cannot be
  matched now; asking again later can;
- **other** — the model's other requests in those days: not this batch's.

The ledgers' own estimate sits beside it: the price of each request's run × the requests they
hold, less those the server FAILED (refunded), and the submits they count as possible duplicates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from batchflux.ledger.reconcile import CLOCK_SKEW_S, MAX_WINDOW_DAYS, Intent, R, Row, candidate, rank
from batchflux.ledger.requests import RequestLog


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A request no ledger holds whose body is a job's: paid twice."""

    job_id: str
    out_dir: str
    request_id: str
    created_at: float | None  # unix
    status: str | None
    cost_usd: float | None  # None: not priced yet


@dataclass(frozen=True, slots=True)
class SpendTally:
    known: int  # requests the ledgers hold
    known_cost_usd: float
    known_priced: int  # ... of them with a cost (the history's, else the ledger's)
    known_no_cost: int  # listed by the history without a cost yet
    known_not_listed: int  # not among the history's rows, and no cost in the ledger
    duplicates: tuple[Duplicate, ...]  # oldest first
    duplicates_cost_usd: float
    elsewhere: int  # rows no ledger holds with a job's body that none of their POSTs can have made
    elsewhere_cost_usd: float
    not_landed: int  # rows no ledger holds whose record has not landed: cannot be matched yet
    other: int  # the model's other requests in those days
    other_cost_usd: float
    billable_submits: int  # the ledgers' count of paid requests
    estimate_usd: float  # ... at the price of the run that sent each
    possible_duplicates: int  # submits the ledgers count as possibly paid twice

    @property
    def actual_usd(self) -> float:
        """What the history says the batch cost: its requests and the duplicates of them."""
        return self.known_cost_usd + self.duplicates_cost_usd

    @property
    def unpriced(self) -> int:
        """Requests of the batch without a cost yet: the actual figure is a floor until they have one."""
        pending = sum(1 for d in self.duplicates if d.cost_usd is None)
        return self.known_no_cost + self.known_not_listed + pending


def tally_spend(
    logs: Sequence[tuple[str, RequestLog]],
    rows: Iterable[Row],
    *,
    price_usd: float,
    skew_s: float = CLOCK_SKEW_S,
) -> SpendTally:
    """Sort the history's ``rows`` against the ledgers' request logs (folded with their intents),
    each named by its directory. ``price_usd`` prices a request whose run recorded no price."""
    unique: dict[str, Row] = {}
    nameless = 0
    for row in rows:
        if row.request_id is None:
            nameless += 1
        else:
            unique.setdefault(row.request_id, row)
    held: dict[str, str] = {}  # request id -> directory
    for out_dir, log in logs:
        for rid in log.requests:
            held.setdefault(rid, out_dir)

    known_cost = 0.0
    priced = no_cost = not_listed = billable = 0
    estimate = 0.0
    counted: set[str] = set()
    for _, log in logs:
        for rid, req in log.requests.items():
            if rid in counted:  # the same request in two directories: one request
                continue
            counted.add(rid)
            listed = unique.get(rid)
            cost = listed.credits_deduction if listed is not None else None
            if cost is None:
                cost = log.costs.get(rid)
            if cost is not None:
                priced += 1
                known_cost += cost
            elif listed is None:
                not_listed += 1
            else:
                no_cost += 1
            if rid not in log.server_failed:
                billable += 1
                estimate += req.price_usd if req.price_usd is not None else price_usd

    unheld = [row for rid, row in unique.items() if rid not in held]
    landed = [row for row in unheld if row.model_status is not None and row.request_body is not None]
    lost = [(out_dir, intent) for out_dir, log in logs for intent in log.unanswered()]
    made = _made_by(lost, landed, skew_s)
    duplicates = [
        Duplicate(i.job_id, d, r.request_id or "", r.created_at, r.model_status, r.credits_deduction)
        for (d, i), r in made
    ]
    duplicates.sort(key=lambda d: (d.created_at if d.created_at is not None else math.inf, d.request_id))
    taken = {d.request_id for d in duplicates}
    bodies = _IntentIndex([(out_dir, i) for out_dir, log in logs for i in log.intents])
    elsewhere: list[Row] = []
    other: list[Row] = []
    for row in landed:
        if row.request_id not in taken:
            (elsewhere if bodies.fits(row, skew_s) else other).append(row)
    return SpendTally(
        known=len(held),
        known_cost_usd=known_cost,
        known_priced=priced,
        known_no_cost=no_cost,
        known_not_listed=not_listed,
        duplicates=tuple(duplicates),
        duplicates_cost_usd=sum(d.cost_usd or 0.0 for d in duplicates),
        elsewhere=len(elsewhere),
        elsewhere_cost_usd=sum(r.credits_deduction or 0.0 for r in elsewhere),
        not_landed=nameless + len(unheld) - len(landed),
        other=len(other),
        other_cost_usd=sum(r.credits_deduction or 0.0 for r in other),
        billable_submits=billable,
        estimate_usd=estimate,
        possible_duplicates=len(lost),
    )


def _made_by(
    lost: Sequence[tuple[str, Intent]], rows: Sequence[R], skew_s: float
) -> list[tuple[tuple[str, Intent], R]]:
    """Which unanswered POST made which row: each POST at most one row and each row one POST;
    the POSTs served oldest first, each taking the row that fits it best (:func:`.reconcile.rank`)."""
    by_prompt: dict[str | None, list[R]] = {}
    for row in rows:
        by_prompt.setdefault(_prompt_of(row.request_body), []).append(row)
    made: list[tuple[tuple[str, Intent], R]] = []
    used: set[str] = set()
    for out_dir, intent in sorted(lost, key=lambda p: (p[1].at, p[1].job_id, p[0])):
        fits = [
            r
            for r in by_prompt.get(_prompt_of(intent.params), ())
            if r.request_id not in used and candidate(intent, r, skew_s=skew_s)
        ]
        if fits:
            best = min(fits, key=lambda r: rank(intent, r))
            used.add(best.request_id or "")
            made.append(((out_dir, intent), best))
    return made


class _IntentIndex:
    """POSTs of the ledgers by prompt (a row's prompt narrows the search at once)."""

    def __init__(self, intents: Iterable[tuple[str, Intent]]) -> None:
        self._by_prompt: dict[str | None, list[Intent]] = {}
        for _, intent in intents:
            self._by_prompt.setdefault(_prompt_of(intent.params), []).append(intent)

    def fits(self, row: Row, skew_s: float) -> bool:
        """Some POST of the ledgers sent the body ``row`` carries (created after it, less the skew)."""
        pool = self._by_prompt.get(_prompt_of(row.request_body), ())
        return any(candidate(intent, row, skew_s=skew_s) for intent in pool)


def spend_windows(
    spans: Iterable[tuple[float, float]], now: float, *, skew_s: float = CLOCK_SKEW_S
) -> list[tuple[date, date]]:
    """The date windows (UTC, both ends inclusive, at most 31 days each) that cover the spans
    (unix start and end, each widened by the clock skew), no later than today: overlapping spans
    share days, and days between spans are not asked for."""
    today = _day(now + skew_s)
    ranges = sorted((_day(start - skew_s), min(_day(end + skew_s), today)) for start, end in spans)
    merged: list[tuple[date, date]] = []
    for first, last in ranges:
        if last < first:
            continue
        if merged and first <= merged[-1][1] + timedelta(days=1):
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    windows: list[tuple[date, date]] = []
    for first, last in merged:
        while first <= last:
            end = min(last, first + timedelta(days=MAX_WINDOW_DAYS - 1))
            windows.append((first, end))
            first = end + timedelta(days=1)
    return windows


def _prompt_of(body: Mapping[str, Any] | None) -> str | None:
    prompt = body.get("prompt") if body is not None else None
    return prompt if isinstance(prompt, str) else None


def _day(unix: float) -> date:
    return datetime.fromtimestamp(unix, tz=UTC).date()

"""What a batch really cost, the ledgers set against the account's request history (pure).

``batchflux status --spend`` lists the history's rows for the batch's model over the ledgers'
dates (:func:`spend_windows`), then :func:`tally_spend` sorts every row, de-duplicated on
``request_id`` (a request with several outputs is listed once per output, each row carrying the
whole cost):

- **known** — a request some ledger holds (every ``submitted`` of every job, not only the latest):
  its cost is the row's ``credits_deduction``, else what the ledger recorded; without either it
  has *no cost yet* (its record has not landed, it is still pending) or is *not listed* (not
  among the rows of these dates);
- **duplicate** — a request no ledger holds whose body is one a job sent (the matching rules of
  :mod:`.reconcile`: same parameters, the input as sent, created no earlier than the POST that
  could have made it less the clock skew): paid a second time, named by the job whose POST it
  most likely was;
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

from batchflux.ledger.reconcile import CLOCK_SKEW_S, MAX_WINDOW_DAYS, Intent, Row, candidate, rank
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
    possible_duplicates: int = 0,
    skew_s: float = CLOCK_SKEW_S,
) -> SpendTally:
    """Sort the history's ``rows`` against the ledgers' request logs, each named by its directory.
    ``price_usd`` prices a request whose run recorded no price."""
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

    intents = _IntentIndex(logs)
    duplicates: list[Duplicate] = []
    not_landed, other, other_cost = nameless, 0, 0.0
    for rid, row in unique.items():
        if rid in held:
            continue
        if row.model_status is None or row.request_body is None:
            not_landed += 1
            continue
        found = intents.best(row, skew_s)
        if found is None:
            other += 1
            other_cost += row.credits_deduction or 0.0
            continue
        out_dir, intent = found
        duplicates.append(
            Duplicate(intent.job_id, out_dir, rid, row.created_at, row.model_status, row.credits_deduction)
        )
    duplicates.sort(key=lambda d: (d.created_at if d.created_at is not None else math.inf, d.request_id))
    return SpendTally(
        known=len(held),
        known_cost_usd=known_cost,
        known_priced=priced,
        known_no_cost=no_cost,
        known_not_listed=not_listed,
        duplicates=tuple(duplicates),
        duplicates_cost_usd=sum(d.cost_usd or 0.0 for d in duplicates),
        not_landed=not_landed,
        other=other,
        other_cost_usd=other_cost,
        billable_submits=billable,
        estimate_usd=estimate,
        possible_duplicates=possible_duplicates,
    )


class _IntentIndex:
    """Every POST the ledgers recorded, by prompt (a row's prompt narrows the search at once)."""

    def __init__(self, logs: Sequence[tuple[str, RequestLog]]) -> None:
        self._by_prompt: dict[str | None, list[tuple[str, Intent]]] = {}
        for out_dir, log in logs:
            for intent in log.intents:
                prompt = intent.params.get("prompt")
                key = prompt if isinstance(prompt, str) else None
                self._by_prompt.setdefault(key, []).append((out_dir, intent))

    def best(self, row: Row, skew_s: float) -> tuple[str, Intent] | None:
        """The POST that most likely made ``row``: among those whose body it carries, the nearest
        before it (then the smaller job id)."""
        body = row.request_body
        prompt = body.get("prompt") if body is not None else None
        pool = self._by_prompt.get(prompt if isinstance(prompt, str) else None, ())
        fits = [(d, i) for d, i in pool if candidate(i, row, skew_s=skew_s)]
        if not fits:
            return None
        return min(fits, key=lambda f: (rank(f[1], row), f[1].job_id))


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


def ledger_costs(logs: Iterable[RequestLog]) -> Mapping[str, float]:
    """Request id -> what the ledgers recorded it cost (``credits_deduction``), their own requests only."""
    costs: dict[str, float] = {}
    for log in logs:
        for rid, cost in log.known_costs().items():
            costs.setdefault(rid, cost)
    return costs


def _day(unix: float) -> date:
    return datetime.fromtimestamp(unix, tz=UTC).date()

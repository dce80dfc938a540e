"""The request history at work: an open intent is looked up before it is paid again, and a request
past its hour is read before it is resubmitted. What the answers mean is decided in
:mod:`batchflux.ledger.reconcile`; this stage asks and acts.

- **Intents** — at resume, every open ``submit_intent``; in a run, a submit that got no answer
  (:meth:`HistoryStage.recover`). Intents due together share one scan of the list: the model's
  rows, newest first, pages of 100, only as far back as the oldest intent. Found: the request is
  adopted (``submitted`` with ``recovered: true``) and carried on as if its answer had come. Not
  found before its record can have landed — ``history_wait_s`` after the latest moment the request
  can have been created (:mod:`batchflux.ledger.landing`: when the answer was lost; at resume, when
  the intent's run stopped, or this run's start if it was killed), never after the intent, which
  a 429 can put a whole window before its POST — looked up once more then. Otherwise it is
  submitted again, as without the history, and counted as a possible duplicate charge. Every "not
  found" is logged with what was asked (model, dates, since when, pages and rows read).
- **Expired requests** — at resume, those past retention; in a run, a 404 on status or result.
  One ``history_record`` call each: COMPLETED → the result is recorded (``via: "history"``) and
  downloaded; FAILED → the job fails with the server's error; anything else → resubmitted and
  counted as expired, as without the history.

Every call waits at the shared 429 gate. Any failure of the history (a 404, 5xx or transport
errors after a few tries, an unknown envelope) falls back to the behaviour without it and is said
once, in one warning line; a 401 or 403 stops the run as it does anywhere. A failure that is the
history host's (nothing it was asked succeeded meanwhile) spends no try: the call waits in the
host's line (:mod:`.hosts`) until it answers again or its breaker decides it is down, and only
then falls back; the history is an aid, so its outage does not stop the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from batchflux.api import (
    ApiError,
    Fatal,
    HistoryQuery,
    HistoryRow,
    HistoryUnavailable,
    RateLimited,
    Transient,
)
from batchflux.api.policy import classify_failure_text
from batchflux.engine.state import EngineState
from batchflux.engine.tracks import Track
from batchflux.ledger import EventType
from batchflux.ledger.landing import Landing, answer_lost, at_resume
from batchflux.ledger.reconcile import (
    ExpiredOutcome,
    Holdings,
    Intent,
    Lookup,
    Verdict,
    expired_outcome,
    input_sent,
    lookup_for,
    match_intents,
    scan_done,
    scan_windows,
)
from batchflux.ledger.records import JobRecord, RunRecord
from batchflux.ledger.resume import Decision
from batchflux.manifest.job import Job

log = logging.getLogger("batchflux.engine")
A = TypeVar("A")
T = TypeVar("T")

# Tries of a history call through 5xx and transport errors before falling back. Falling back on an
# ambiguous submit pays it again, so the history gets as many tries as a status call: at 3, a fault
# mix of 30 % failed calls paid a job twice in 1 run of 7 ("could not answer (HTTP 500)").
ATTEMPTS = 8
LIMITED_ATTEMPTS = 12  # … and through 429s, each waited out at the gate
MAX_SCAN_PAGES = 50  # pages of 100 rows in one scan; past that, what is not found is resubmitted
EXPIRED_WORKERS = 4  # history_record calls under way at once
STOP_CHECK_S = 1.0  # an in-run lookup waiting for its second look notices a stop this soon


class NoAnswer(Exception):
    """The request history could not answer a call: do as without it."""


@dataclass(eq=False, slots=True)
class _Look:
    """An intent to look up: from the resume plan (``decision``) or a submit under way (``answer``)."""

    intent: Intent
    job: Job
    landing: Landing  # a "not found" is trusted from landing.trusted_from(history_wait_s)
    due: float  # unix
    last: bool  # the look after the landing wait: a miss now is final
    decision: Decision | None = None
    answer: asyncio.Future[HistoryRow | None] | None = None


@dataclass(slots=True)
class Asked:
    """What one scan asked the list for one model: for the log line of a "not found"."""

    model: str
    since: float  # unix: rows created before this were not read
    began: float  # unix: when the scan began
    dates: list[str] = field(default_factory=list)  # "from..to" of each date window
    pages: int = 0
    rows: int = 0

    def text(self) -> str:
        return (f"asked at {utc(self.began)} for {self.model} created since {utc(self.since)}, dates "
                f"{', '.join(self.dates)}: {self.pages} page(s), {self.rows} row(s) read")  # fmt: skip


class HistoryStage:
    def __init__(
        self,
        engine: EngineState,
        *,
        resubmit: Callable[[Decision], Awaitable[None]],
        expire: Callable[[Track, str], None],
    ) -> None:
        self.e = engine
        self.enabled = engine.cfg.history
        self.holdings: Holdings | None = None
        self._submit = resubmit  # the feeder's path for a decision to submit (it may wait for room)
        self._resubmit_q: asyncio.Queue[Decision] = asyncio.Queue()
        self._expire = expire  # the fetcher's path for a request whose record is gone
        self._looks: list[_Look] = []
        self._wake = asyncio.Event()
        self._expired_q: asyncio.Queue[tuple[Track, Decision | None]] = asyncio.Queue()
        self._costed: set[str] = set()
        self._warned = False
        self._runs: Sequence[RunRecord] = ()

    def use_ledger(
        self, jobs: Iterable[Job], records: Mapping[str, JobRecord], runs: Sequence[RunRecord] = ()
    ) -> None:
        """Who holds which request, from the manifest's jobs and every record of the ledger; and
        the ledger's earlier runs, which say until when an open intent's POST can have left
        (without them: until now)."""
        self.holdings = Holdings.of(jobs, records)
        self._runs = runs

    def hold(self, job: Job, request_id: str) -> None:
        if self.holdings is not None:
            self.holdings.hold(job.id, request_id)

    # ---- entry points ----------------------------------------------------------------------

    async def resubmit_worker(self) -> None:
        """Hands the feeder's path the decisions to submit after all. The lookups never wait for
        room in the submit queue themselves: submit workers may be waiting for a lookup."""
        while True:
            await self._submit(await self._resubmit_q.get())

    def _resubmit(self, d: Decision) -> None:
        self._resubmit_q.put_nowait(d)

    def takes(self, d: Decision) -> bool:
        """The resume decision asks the history before it is submitted (and this stage owns it now)."""
        if not self.enabled:
            return False
        kind = lookup_for(d)
        if kind is None or d.record is None:
            return False
        if kind is Lookup.INTENT:
            intent, now = Intent.of(d.job, d.record), self.e.wall()
            landing = at_resume(intent.at, self._runs, now)
            self._add(_Look(intent, d.job, landing, now, False, decision=d))
        else:
            self._expired_q.put_nowait((Track(job=d.job, request_id=d.record.request_id or ""), d))
        return True

    async def recover(self, job: Job, sent: Mapping[str, Any], at: float) -> HistoryRow | None:
        """A submit of ``job`` under the intent of ``at`` (unix) got no answer, just now: its
        request's history row, or None when the history has none (once its record can have
        landed, counted from now) or cannot answer."""
        if not self.enabled:
            return None
        intent = Intent(
            job.id, job.model, job.params, job.local_input is not None, input_sent(job.params, sent), at
        )
        answer: asyncio.Future[HistoryRow | None] = asyncio.get_running_loop().create_future()
        now = self.e.wall()
        self._add(_Look(intent, job, answer_lost(now), now, False, answer=answer))
        return await answer

    def expired(self, track: Track) -> None:
        """A request of this run answered 404: read its record before resubmitting it."""
        self._expired_q.put_nowait((track, None))

    # ---- intents ---------------------------------------------------------------------------

    def _add(self, look: _Look) -> None:
        self._looks.append(look)
        self._wake.set()

    async def intent_worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._settle_waiting_on_stop()
            now = self.e.wall()
            due = [k for k in self._looks if k.due <= now]
            if not due:
                self._wake.clear()
                timer = None
                if self._looks:
                    delay = min(k.due for k in self._looks) - now
                    if any(k.answer is not None for k in self._looks):
                        delay = min(delay, STOP_CHECK_S)
                    timer = loop.call_later(delay, self._wake.set)
                try:
                    await self._wake.wait()
                finally:
                    if timer is not None:
                        timer.cancel()
                continue
            self._looks = [k for k in self._looks if k.due > now]
            await self._look(due)

    def _settle_waiting_on_stop(self) -> None:
        """Stopping: a submit waiting for a second look gets its answer now (none), so the drain
        need not wait for it; its intent stays open for the next run."""
        if not self.e.stopping:
            return
        waiting = [k for k in self._looks if k.answer is not None]
        self._looks = [k for k in self._looks if k.answer is None]
        for look in waiting:
            if look.answer is not None and not look.answer.done():
                look.answer.set_result(None)

    async def _look(self, due: list[_Look]) -> None:
        asked: dict[str, Asked] = {}
        began = self.e.wall()  # a "not found" counts from when the scan began, not when it ended
        rows = await self._scan([k.intent for k in due], asked, began)
        if self.holdings is None:
            self.holdings = Holdings()
        found = match_intents([k.intent for k in due], rows or (), self.holdings)
        for look in due:
            row = found.get(look.job.id)
            landed_by = look.landing.trusted_from(self.e.cfg.history_wait_s)
            if row is not None and row.request_id:
                self.hold(look.job, row.request_id)
                self._found(look, row)
                continue
            final = look.landing.final(began, self.e.cfg.history_wait_s)
            again = rows is not None and not look.last and not self.e.stopping and not final
            if rows is not None:
                self._say_not_found(look, asked[look.intent.model], landed_by, again=again)
            if again:
                look.due = landed_by  # the record may not have landed yet: look once more then
                look.last = True
                self._add(look)
            else:
                self._not_found(look)

    def _say_not_found(self, look: _Look, asked: Asked, landed_by: float, *, again: bool) -> None:
        """A "not found", with what was asked: enough to explain a duplicate charge afterwards."""
        then = "looking once more then" if again else "not found, final"
        log.info(
            "%s: not found in the request history (%s); its request can have been created until %s "
            "(%s), its record has landed by %s: %s",
            look.job.id, asked.text(), utc(look.landing.sent_by), look.landing.basis, utc(landed_by), then,
        )  # fmt: skip

    def _found(self, look: _Look, row: HistoryRow) -> None:
        e, job = self.e, look.job
        rid = row.request_id or ""
        e.stats.recovered_submits += 1
        self._cost(row)
        log.info("%s: its request %s was found in the request history; not paid again", job.id, rid)
        if look.answer is not None:
            if not look.answer.done():
                look.answer.set_result(row)
            return
        assert look.decision is not None
        e.stats.recovered_resumed += 1
        sub = e.client.submission_for(rid)
        born = row.created_at if row.created_at is not None else look.intent.at
        e.event(
            EventType.SUBMITTED, job, request_id=rid, status_url=sub.status_url,
            response_url=sub.response_url, submitted_at=born, recovered=True, **cost_field(row),
        )  # fmt: skip
        age = max(0.0, e.wall() - born)
        if age >= e.cfg.retention_s:  # its v2 record is gone too: the row is all there is
            self._settle(Track(job=job, request_id=rid), look.decision, row, written_submitted=True)
            return
        now = e.clock()
        track = Track(
            job=job,
            request_id=rid,
            status_url=sub.status_url,
            response_url=sub.response_url,
            submitted_mono=now - age,
            deadline=now - age + e.cfg.retention_s,
        )
        e.inflight.force()
        e.hold(track)
        e.active += 1
        e.scheduler.add(track, now)

    def _not_found(self, look: _Look) -> None:
        if look.answer is not None:
            if not look.answer.done():
                look.answer.set_result(None)
            return
        assert look.decision is not None
        log.info("%s: no request of its open submit in the request history; submitting it again "
                 "(a possible duplicate charge)", look.job.id)  # fmt: skip
        self._resubmit(look.decision)

    async def _scan(
        self, intents: Sequence[Intent], asked: dict[str, Asked], began: float
    ) -> list[HistoryRow] | None:
        """The rows that can be these intents' requests; None when the history cannot answer.
        ``asked`` gets what was asked of each model."""
        rows: list[HistoryRow] = []
        by_model: dict[str, list[Intent]] = {}
        for intent in intents:
            by_model.setdefault(intent.model, []).append(intent)
        for model, group in by_model.items():
            windows = scan_windows([i.at for i in group], self.e.wall())
            what = asked[model] = Asked(model, min(w.since for w in windows), began)
            for window in windows:
                what.dates.append(f"{window.from_date}..{window.to_date}")
                for page in range(1, MAX_SCAN_PAGES + 1):
                    query = HistoryQuery(
                        page=page, from_date=window.from_date, to_date=window.to_date, model_name=model
                    )
                    try:
                        got = await self._ask("history", self.e.client.history, query)
                    except NoAnswer:
                        return None
                    rows.extend(got.rows)
                    what.pages += 1
                    what.rows += len(got.rows)
                    if not got.more or scan_done(got.rows, window.since):
                        break
                else:
                    log.warning("request history: stopped after %d pages of %s; what was not found "
                                "in them is submitted again", MAX_SCAN_PAGES, model)  # fmt: skip
        return rows

    # ---- expired requests ------------------------------------------------------------------

    async def expired_worker(self) -> None:
        while True:
            track, decision = await self._expired_q.get()
            try:
                row = await self._ask("history_record", self.e.client.history_record, track.request_id)
            except NoAnswer:
                self._fallback_expired(track, decision, "no history record to read")
                continue
            self._settle(track, decision, row)

    def _settle(
        self,
        track: Track,
        decision: Decision | None,
        row: HistoryRow | None,
        *,
        written_submitted: bool = False,
    ) -> None:
        """Act on an expired request's record. ``decision``: it came from the resume plan (the
        track is not counted as active yet); None: a request of this run (it is)."""
        e, job = self.e, track.job
        outcome = expired_outcome(track.request_id, row, now=e.wall())
        if row is not None:
            self._cost(row)
        if outcome.verdict is Verdict.FETCH:
            assert outcome.output_url is not None
            e.event(
                EventType.RESULT, job, request_id=track.request_id, output_url=outcome.output_url, metrics={},
                completed_at=e.wall(), via="history", **cost_of(outcome),
            )  # fmt: skip
            e.stats.recovered_results += 1
            log.info("%s: request %s past its hour, fetched from its history record",
                     job.id, track.request_id)  # fmt: skip
            track.output_url = outcome.output_url
            track.via_history = True
            if decision is None:
                e.release(track)
            else:
                e.active += 1
            e.download_q.put(e.clock(), track)
        elif outcome.verdict is Verdict.FAIL:
            self._fail(track, decision, outcome)
        elif decision is None:
            self._expire(track, f"its history record says {outcome.why}")
        else:
            self._fallback_expired(track, decision, f"its history record says {outcome.why}",
                                         written_submitted=written_submitted)  # fmt: skip

    def _fail(self, track: Track, decision: Decision | None, outcome: ExpiredOutcome) -> None:
        e, job = self.e, track.job
        error = outcome.error or "FAILED"
        cause = classify_failure_text(error)
        e.event(
            EventType.FAILED, job, request_id=track.request_id, cause=cause, error=error, http_status=None,
            **cost_of(outcome),
        )  # fmt: skip
        e.stats.server_failed += 1
        e.record_failure(job, cause, error, track.request_id)
        if decision is None:
            e.finish(track)
        else:
            e.pending -= 1
            e.touch()

    def _fallback_expired(
        self, track: Track, decision: Decision | None, why: str, *, written_submitted: bool = False
    ) -> None:
        if decision is None:
            self._expire(track, why)
            return
        log.info("%s: request %s expired before its result was fetched (%s); resubmitting",
                 track.job.id, track.request_id, why)  # fmt: skip
        if written_submitted:  # adopted just now: the plan's record predates it
            self.e.event(EventType.EXPIRED, track.job, request_id=track.request_id)
            decision = replace(decision, reason="expired")
        self._resubmit(decision)

    # ---- calls -----------------------------------------------------------------------------

    async def _ask(self, kind: str, fn: Callable[[A], Awaitable[T]], arg: A) -> T:
        """One history call through the pacer (its 429 gate; the quota's window once the server counts
        history calls), a few tries through 5xx and transport errors.
        :class:`NoAnswer` when the history cannot answer (said once per run); a 401/403 also
        stops the run."""
        e = self.e
        host = e.history_host
        attempt = limited = 0
        retry = False
        failed_at: float | None = None
        while True:
            if not await host.turn(keep_trying=False, retry=retry):  # its host is down, or the run stopping
                raise self._unavailable(kind, Transient(host.describe()))
            slot = await e.pacer.admit(kind, urgent=True)  # paced too, once the quota counts it
            sent = e.clock()
            try:
                answer = await fn(arg)
            except RateLimited as exc:
                e.pacer.answered(slot)
                host.succeeded()
                limited += 1
                e.rate_limited(exc, limited, kind, slot)
                if limited < LIMITED_ATTEMPTS:
                    continue
                raise self._unavailable(kind, exc) from exc
            except Transient as exc:
                e.pacer.answered(slot)
                own = e.host_failed(host, exc, sent if failed_at is None else failed_at)
                failed_at = e.clock()
                if e.stopping:
                    raise self._unavailable(kind, exc) from exc
                retry = not own
                if retry:
                    continue  # the host's trouble: wait in its line (until its breaker decides)
                attempt += 1
                if attempt < ATTEMPTS:
                    e.stats.retries[kind] += 1
                    await asyncio.sleep(e.backoff(attempt))
                    continue
                raise self._unavailable(kind, exc) from exc
            except Fatal as exc:
                host.succeeded()
                e.fatal(exc)
                raise NoAnswer(str(exc)) from exc
            except (HistoryUnavailable, ApiError) as exc:
                e.pacer.answered(slot)
                host.succeeded()
                raise self._unavailable(kind, exc) from exc
            e.pacer.answered(slot)
            host.succeeded()
            e.pacer.accepted(kind, slot=slot)
            return answer

    def _unavailable(self, kind: str, exc: ApiError) -> NoAnswer:
        self.e.stats.history_fallbacks += 1
        if not self._warned:
            self._warned = True
            log.warning("the request history could not answer (%s); open submits and expired requests "
                        "are submitted again as without it", exc)  # fmt: skip
        else:
            log.debug("request history %s: %s", kind, exc)
        return NoAnswer(str(exc))

    def _cost(self, row: HistoryRow) -> None:
        rid, cost = row.request_id, row.credits_deduction
        if rid and cost is not None and rid not in self._costed:
            self._costed.add(rid)
            self.e.stats.history_cost_usd += cost
            self.e.stats.history_cost_requests += 1


def utc(unix: float) -> str:
    """A time for a log line: ISO 8601 UTC to the second."""
    return datetime.fromtimestamp(unix, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cost_field(row: HistoryRow) -> dict[str, float]:
    return {} if row.credits_deduction is None else {"credits_deduction": row.credits_deduction}


def cost_of(outcome: ExpiredOutcome) -> dict[str, float]:
    return {} if outcome.cost_usd is None else {"credits_deduction": outcome.cost_usd}

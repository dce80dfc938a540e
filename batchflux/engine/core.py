"""The engine: bounded stages in one TaskGroup, joined by bounded queues.

    feeder ─┬─> upload ─> submit ──> poll schedule ─> poll ─> result (EDF) ─> download (EDF)
            └────────────────^            ^  (resumed requests enter here)   ^ (resumed results)

Ledger discipline: ``submit_intent`` is appended before every POST that could create a request,
``submitted`` (the request_id) right after it and before anything else touches the request.
Job failures are ledger events and counters; only bugs propagate out of the TaskGroup.

Stopping: :meth:`Engine.request_stop` stops submitting (workers waiting to submit are cancelled;
a POST already on the wire is never cancelled) and drains in-flight requests; :meth:`Engine.abort`
cancels everything at once. Both leave a resumable ledger.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from batchflux import policy
from batchflux.api import (
    Ambiguous,
    ApiClient,
    ApiError,
    DownloadError,
    Expired,
    Fatal,
    JobFailed,
    OutOfCredits,
    RateLimited,
    Transient,
)
from batchflux.engine.config import EngineConfig
from batchflux.engine.deadlines import DeadlineQueue
from batchflux.engine.inputs import InputResolver
from batchflux.engine.latency import LatencyModel
from batchflux.engine.stats import EngineStats
from batchflux.engine.tracks import PollScheduler, Track
from batchflux.job import Job
from batchflux.ledger import Event, EventType, JobState, LedgerWriter
from batchflux.pacing import AdaptiveRate, PauseGate, SlidingWindowLimiter
from batchflux.progress import Progress
from batchflux.resume import Action, Decision

log = logging.getLogger("batchflux.engine")
T = TypeVar("T")
A = TypeVar("A")


class InFlight:
    """Requests submitted and not yet resolved. :meth:`acquire` waits below the cap (FIFO);
    :meth:`force` admits a request already on the server (resume); :meth:`release` is sync."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.count = 0
        self.peak = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        while self.count >= self.cap:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            finally:
                if fut in self._waiters:
                    self._waiters.remove(fut)
        self.force()

    def force(self) -> None:
        self.count += 1
        self.peak = max(self.peak, self.count)

    def release(self) -> None:
        self.count -= 1
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                break


class Engine:
    def __init__(
        self,
        *,
        config: EngineConfig,
        client: ApiClient,
        ledger: LedgerWriter,
        out_dir: Path,
        progress: Progress,
        rng: random.Random | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = config
        self.client = client
        self.ledger = ledger
        self.out_dir = out_dir
        self.progress = progress
        self.rng = rng or random.Random()
        self.wall = wall
        self.stats = EngineStats()
        self.stop_reason: str | None = None  # "auth", "credits", "budget", "interrupted", …
        self.stop_detail: str = ""
        self._loop = asyncio.get_running_loop()
        self.clock = self._loop.time
        self.gate = PauseGate(self.clock)
        self.limiter = SlidingWindowLimiter(config.rate, self.clock) if config.rate else None
        self.adaptive = None if config.rate else AdaptiveRate(self.clock)
        self.latency = LatencyModel(config.poll)
        self.inflight = InFlight(config.max_in_flight)
        self.inputs = InputResolver(client.upload, inline=config.inline_inputs)
        self.scheduler = PollScheduler(self.clock)
        self._upload_q: asyncio.Queue[Job] = asyncio.Queue(maxsize=64)
        # Unbounded so a poll worker can hand back an expired job without blocking; the feeder is
        # held to ``_feed_room`` queued jobs instead.
        self._submit_q: asyncio.Queue[tuple[Job, dict[str, Any] | None, bool]] = asyncio.Queue()
        self._feed_room = asyncio.Semaphore(64)
        self._fed = False
        self._poll_q: asyncio.Queue[Track] = asyncio.Queue(maxsize=config.poll_workers * 2)
        self._result_q: DeadlineQueue[Track] = DeadlineQueue()
        self._download_q: DeadlineQueue[Track] = DeadlineQueue()
        self._pending = 0  # work items not yet downloaded or failed
        self._active = 0  # requests on the server or results waiting for download
        self._new_submits = 0
        self._changed = asyncio.Event()
        self._stopping = False
        self._aborted = False
        self._critical: set[asyncio.Task[Any]] = set()  # tasks with a POST on the wire
        self._pre_submit: list[asyncio.Task[None]] = []
        self._expirations: dict[str, int] = {}  # job id → requests of it that expired this run

    # ---- control -------------------------------------------------------------------------

    def request_stop(self, reason: str = "interrupted", detail: str = "", grace: float | None = None) -> None:
        """Stop submitting; drain what is in flight (for ``grace`` seconds, if given)."""
        if self.stop_reason is None:
            self.stop_reason, self.stop_detail = reason, detail
        if not self._stopping:
            self._stopping = True
            for task in self._pre_submit:
                if task not in self._critical:
                    task.cancel()
            log.info("stopped submitting (%s); %d requests in flight", self.stop_reason, self._active)
        if grace is not None:
            self._loop.call_later(grace, self.abort)
        self._changed.set()

    def abort(self, reason: str | None = None, detail: str = "") -> None:
        if reason and self.stop_reason is None:
            self.stop_reason, self.stop_detail = reason, detail
        self._stopping = True
        self._aborted = True
        self._changed.set()

    @property
    def in_flight(self) -> int:
        return self.inflight.count

    # ---- the run -------------------------------------------------------------------------

    async def run(self, decisions: Sequence[Decision]) -> EngineStats:
        self.stats.total = len(decisions)
        tasks: list[asyncio.Task[None]] = []
        async with asyncio.TaskGroup() as tg:
            tasks.append(tg.create_task(self.ledger.sync_forever()))
            tasks.append(tg.create_task(self.scheduler.run(self._poll_q.put)))
            self._pre_submit.append(tg.create_task(self._feed(decisions)))
            for n, worker in (
                (self.cfg.upload_workers, self._upload_worker),
                (self.cfg.submit_workers, self._submit_worker),
            ):
                self._pre_submit.extend(tg.create_task(worker()) for _ in range(n))
            for n, worker in (
                (self.cfg.poll_workers, self._poll_worker),
                (self.cfg.result_workers, self._result_worker),
                (self.cfg.download_workers, self._download_worker),
            ):
                tasks.extend(tg.create_task(worker()) for _ in range(n))
            tasks.append(tg.create_task(self._report_progress()))
            await self._until_finished()
            for task in (*tasks, *self._pre_submit):
                task.cancel()
        self.ledger.sync()
        return self.stats

    async def _until_finished(self) -> None:
        while not (
            self._aborted
            or (self._pending <= 0 and self._fed)
            or (self._stopping and self._active == 0 and not self._critical)
        ):
            self._changed.clear()
            await self._changed.wait()

    def _touch(self) -> None:
        self._changed.set()

    async def _report_progress(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.progress.update_postfix(
                in_flight=self.inflight.count,
                quota=self.limiter.used() if self.limiter else None,
                rate_limited=self.stats.rate_limited,
            )

    # ---- feeding -------------------------------------------------------------------------

    async def _feed(self, decisions: Sequence[Decision]) -> None:
        # Requests already on the server first: they must not wait behind new submits.
        for d in decisions:
            if d.action is Action.POLL:
                self._pending += 1
                self._resume_poll(d)
            elif d.action is Action.DOWNLOAD:
                self._pending += 1
                self._resume_download(d)
            elif d.action is Action.SKIP:
                self.stats.skipped += 1
                self.progress.done(skipped=True)
            elif d.action is Action.FAILED:
                self.stats.kept_failed += 1
                self.progress.failed(kept=True)
        to_submit = [d for d in decisions if d.action is Action.SUBMIT]
        self._pending += len(to_submit)
        self._fed = True
        self._touch()
        for d in to_submit:
            rec = d.record
            if d.reason == "expired" and rec is not None and rec.state is JobState.SUBMITTED:
                self._event(EventType.EXPIRED, d.job, request_id=rec.request_id)
            if d.reason == "expired":
                self.stats.resubmitted_expired += 1
            elif d.reason == "ambiguous":
                self.stats.resubmitted_ambiguous += 1
            if d.job.local_input is not None:
                await self._upload_q.put(d.job)
            else:
                await self._feed_room.acquire()
                self._submit_q.put_nowait((d.job, None, True))

    def _resume_poll(self, d: Decision) -> None:
        rec = d.record
        assert rec is not None
        assert rec.request_id
        assert rec.submitted_at is not None
        now, wall = self.clock(), self.wall()
        track = Track(
            job=d.job,
            request_id=rec.request_id,
            status_url=rec.status_url or "",
            response_url=rec.response_url or "",
            submitted_unix=rec.submitted_at,
            submitted_mono=now - (wall - rec.submitted_at),
        )
        track.deadline = track.submitted_mono + self.cfg.retention_s
        self.inflight.force()
        track.holds_slot = True
        self._active += 1
        self.stats.repolled += 1
        self.scheduler.add(track, now)

    def _resume_download(self, d: Decision) -> None:
        rec = d.record
        assert rec is not None
        assert rec.output_url
        track = Track(job=d.job, request_id=rec.request_id or "", output_url=rec.output_url)
        self._active += 1
        self.stats.redownloaded += 1
        self._download_q.put(0.0, track)

    # ---- upload and submit ---------------------------------------------------------------

    async def _upload_worker(self) -> None:
        while True:
            job = await self._upload_q.get()
            path = job.local_input
            assert path is not None
            try:
                url = await self._call("upload", self.inputs.resolve, path)
            except (OSError, ApiError) as exc:
                if isinstance(exc, Fatal):
                    self._fatal(exc)
                    return
                self._fail_unsubmitted(job, "input", f"input image {job.local_input}: {exc}")
                continue
            params = dict(job.params)
            params["input_image"] = url
            await self._feed_room.acquire()
            self._submit_q.put_nowait((job, params, True))

    async def _submit_worker(self) -> None:
        while not self._stopping:
            job, params, fed = await self._submit_q.get()
            if fed:
                self._feed_room.release()
            await self.inflight.acquire()
            try:
                slot = await self._pace()
            except BaseException:
                self.inflight.release()
                raise
            if self._stopping or not self._within_budget():
                self.inflight.release()
                return
            if params is None:
                params = dict(job.params)
            me = asyncio.current_task()
            assert me is not None
            self._critical.add(me)
            try:
                await self._submit(job, params, slot)
            finally:
                self._critical.discard(me)
                self._touch()

    def _within_budget(self) -> bool:
        cap = self.cfg.max_new_submits
        if cap is not None and self._new_submits >= cap:
            self.request_stop("budget", f"--max-jobs {cap} reached")
            return False
        cost_cap = self.cfg.max_cost_usd
        if cost_cap is not None and (self._new_submits + 1) * self.cfg.price_usd > cost_cap + 1e-9:
            self.request_stop("budget", f"--max-cost ${cost_cap:.2f} reached")
            return False
        return True

    async def _pace(self) -> list[float] | None:
        slot = await self.limiter.acquire() if self.limiter else None
        if self.adaptive:
            await self.adaptive.wait()
        await self.gate.wait()
        return slot

    async def _submit(self, job: Job, params: dict[str, Any], slot: list[float] | None) -> None:
        """One job's submit, with its retries. Runs to the end even while stopping: a POST on the
        wire must have its outcome recorded."""
        attempt = 0  # 5xx / connection failures: nothing was created
        ambiguous = 0
        self._intent(job)
        self._new_submits += 1
        while True:
            try:
                try:
                    sub = await self.client.submit(job.model, params)
                finally:
                    # The server saw the POST no later than now: count its window from here.
                    if slot is not None and self.limiter is not None:
                        self.limiter.settle(slot)
            except RateLimited as exc:
                self._rate_limited(exc, attempt)
                if self.adaptive:
                    self.adaptive.on_rate_limited()
                if self._stopping:
                    return self._not_submitted(job, "stopping after a 429")
                slot = await self._pace()
                continue
            except Transient as exc:
                attempt += 1
                if attempt >= self.cfg.submit_attempts or self._stopping:
                    return self._fail_submit(job, "transport", f"submit failed {attempt} times: {exc}")
                self.stats.retries["submit"] += 1
                await asyncio.sleep(self._backoff(attempt))
                slot = await self._pace()  # every POST spends quota, retries too
                continue
            except Ambiguous as exc:
                ambiguous += 1
                self.stats.ambiguous += 1
                log.warning("%s: no answer to submit (%s); a possible duplicate charge", job.id, exc)
                if ambiguous > self.cfg.ambiguous_resubmits or self._stopping:
                    # Leave the intent open: the next run resubmits it, counted as ambiguous.
                    return self._unresolved(job)
                self.stats.retries["submit"] += 1
                await asyncio.sleep(self._backoff(ambiguous))
                slot = await self._pace()
                self._intent(job)
                continue
            except JobFailed as exc:
                return self._fail_submit(job, exc.cause, exc.error, http_status=exc.http_status)
            except OutOfCredits as exc:
                self._not_submitted(job, "insufficient credits")
                self.request_stop("credits", str(exc))
                return None
            except Fatal as exc:
                self._not_submitted(job, str(exc))
                self._fatal(exc)
                return None
            break
        if self.adaptive:
            self.adaptive.on_success()
        now, wall = self.clock(), self.wall()
        self._event(
            EventType.SUBMITTED,
            job,
            request_id=sub.request_id,
            status_url=sub.status_url,
            response_url=sub.response_url,
            submitted_at=wall,
        )
        self.stats.submitted += 1
        self.progress.submitted()
        track = Track(
            job=job,
            request_id=sub.request_id,
            status_url=sub.status_url,
            response_url=sub.response_url,
            submitted_mono=now,
            submitted_unix=wall,
            deadline=now + self.cfg.retention_s,
            holds_slot=True,
        )
        self._active += 1
        self.scheduler.add(track, now + self.latency.first_delay())
        return None

    def _intent(self, job: Job) -> None:
        params = dict(job.params)
        self._event(
            EventType.SUBMIT_INTENT,
            job,
            fingerprint=job.fingerprint,
            model=job.model,
            params=params,
            input=str(job.local_input) if job.local_input else params.get("input_image"),
            output=job.output,
        )

    # ---- poll, result, download ----------------------------------------------------------

    async def _poll_worker(self) -> None:
        while True:
            track = await self._poll_q.get()
            try:
                st = await self._call("status", self.client.status, track.status_url)
            except (Transient, RateLimited):
                self.scheduler.add(track, self.clock() + self.cfg.backoff_cap_s)
                continue
            except ApiError as exc:
                await self._request_error(track, exc)
                continue
            self.stats.status_calls += 1
            track.polls += 1
            age = self.clock() - track.submitted_mono
            if st.status == "COMPLETED":
                self._observe_latency(track, age)
                self._result_q.put(track.deadline, track)
                continue
            if st.status != track.last_status:
                track.last_status = st.status
                self._event(EventType.STATE, track.job, request_id=track.request_id, status=st.status)
            track.last_unfinished_age = age
            step = self.latency.next_delay(age, track.last_step)
            track.last_step = step
            self.scheduler.add(track, self.clock() + step)

    def _observe_latency(self, track: Track, age: float) -> None:
        estimate = (track.last_unfinished_age + age) / 2 if track.last_unfinished_age else age
        self.latency.observe(estimate)
        self.stats.latencies.append(estimate)

    async def _result_worker(self) -> None:
        while True:
            track = await self._result_q.get()
            try:
                res = await self._call("result", self.client.result, track.response_url)
            except (Transient, RateLimited):
                self._result_q.put(track.deadline, track)
                await asyncio.sleep(self._backoff(2))
                continue
            except ApiError as exc:
                await self._request_error(track, exc)
                continue
            if not res.output:  # not terminal after all: back to polling
                self.scheduler.add(track, self.clock() + self.latency.next_delay(0.0, track.last_step))
                continue
            track.output_url = res.output
            self._event(
                EventType.RESULT,
                track.job,
                request_id=track.request_id,
                output_url=res.output,
                metrics=res.metrics,
                completed_at=self.wall(),
            )
            self._release(track)
            self._download_q.put(self.clock(), track)

    async def _download_worker(self) -> None:
        while True:
            track = await self._download_q.get()
            await self._download(track)

    async def _download(self, track: Track) -> None:
        job = track.job
        dest = (self.out_dir / job.output).resolve()
        if not dest.is_relative_to(self.out_dir.resolve()):
            why = f"output path {job.output!r} leaves the run directory"
            return self._finish_failed(track, "invalid", why)
        for attempt in range(1, self.cfg.download_attempts + 1):
            await self.gate.wait()
            try:
                got = await self.client.download(track.output_url, dest, output_format=job.output_format)
            except DownloadError as exc:
                if not exc.retryable or attempt == self.cfg.download_attempts:
                    return self._finish_failed(track, "download", f"download failed: {exc}")
                self.stats.retries["download"] += 1
                await asyncio.sleep(self._backoff(attempt))
                continue
            self._event(
                EventType.DOWNLOADED,
                job,
                request_id=track.request_id,
                path=job.output,
                size=got.size,
                sha256=got.sha256,
            )
            self.stats.downloaded += 1
            self.progress.done()
            self._finish(track)
            return None
        return None

    # ---- outcomes ------------------------------------------------------------------------

    async def _request_error(self, track: Track, exc: ApiError) -> None:
        if isinstance(exc, JobFailed):
            self.stats.server_failed += 1
            self._release(track)
            self._finish_failed(track, exc.cause, exc.error, http_status=exc.http_status)
        elif isinstance(exc, Expired):
            job = track.job
            self.stats.expired += 1
            self._event(EventType.EXPIRED, job, request_id=track.request_id)
            self._release(track)
            n = self._expirations[job.id] = self._expirations.get(job.id, 0) + 1
            if n <= self.cfg.expired_resubmits and not self._stopping:
                log.warning("%s: request %s expired before its result was fetched; resubmitting",
                            job.id, track.request_id)  # fmt: skip
                self._active -= 1
                self.stats.resubmitted_expired += 1
                self._submit_q.put_nowait((job, await self._params_for(job), False))
            else:
                why = f"request {track.request_id} expired before its result was fetched ({exc})"
                self._finish_failed(track, "expired", why)
        elif isinstance(exc, Fatal):
            self._fatal(exc)
        else:
            self._release(track)
            self._finish_failed(track, "server", str(exc))

    async def _params_for(self, job: Job) -> dict[str, Any]:
        params = dict(job.params)
        if job.local_input is not None:
            params["input_image"] = await self.inputs.resolve(job.local_input)
        return params

    def _release(self, track: Track) -> None:
        if track.holds_slot:
            track.holds_slot = False
            self.inflight.release()

    def _finish(self, track: Track) -> None:
        self._active -= 1
        self._pending -= 1
        self._touch()

    def _finish_failed(self, track: Track, cause: str, error: str, http_status: int | None = None) -> None:
        self._event(
            EventType.FAILED, track.job, request_id=track.request_id or None,
            cause=cause, error=error, http_status=http_status,
        )  # fmt: skip
        self._record_failure(track.job, cause, error, track.request_id)
        self._finish(track)

    def _fail_submit(self, job: Job, cause: str, error: str, http_status: int | None = None) -> None:
        self._event(EventType.FAILED, job, request_id=None, cause=cause, error=error, http_status=http_status)
        self._record_failure(job, cause, error, None)
        self._pending -= 1
        self.inflight.release()
        self._touch()

    def _fail_unsubmitted(self, job: Job, cause: str, error: str) -> None:
        self._event(EventType.FAILED, job, request_id=None, cause=cause, error=error, http_status=None)
        self._record_failure(job, cause, error, None)
        self._pending -= 1
        self._touch()

    def _record_failure(self, job: Job, cause: str, error: str, request_id: str | None) -> None:
        self.stats.failed[cause] += 1
        self.stats.failures.append({"job": job.id, "cause": cause, "error": error, "request_id": request_id})
        self.progress.failed()
        log.warning("%s failed (%s): %s", job.id, cause, error)

    def _not_submitted(self, job: Job, why: str) -> None:
        """The POST certainly created nothing: close the intent so no duplicate is counted."""
        self._event(EventType.STATE, job, request_id=None, status="NOT_SUBMITTED", reason=why)
        self._new_submits -= 1
        self._pending -= 1
        self.stats.unsubmitted += 1
        self.inflight.release()
        self._touch()

    def _unresolved(self, job: Job) -> None:
        """Gave up re-sending a submit that got no answer: the intent stays open for resume."""
        self._pending -= 1
        self.stats.unresolved += 1
        self.inflight.release()
        self._touch()

    def _fatal(self, exc: Fatal) -> None:
        log.error("stopping: %s", exc)
        self.abort(exc.kind, str(exc))

    def _rate_limited(self, exc: RateLimited, attempt: int) -> None:
        self.stats.rate_limited += 1
        delay = policy.rate_limit_delay(exc, attempt, self.rng)
        self.gate.pause_for(delay)

    def _backoff(self, attempt: int) -> float:
        cfg = self.cfg
        return policy.backoff_delay(attempt, base=cfg.backoff_base_s, cap=cfg.backoff_cap_s, rng=self.rng)

    def _event(self, kind: EventType, job: Job, **data: Any) -> None:
        self.ledger.append(Event(kind, job.id, data))

    async def _call(self, kind: str, fn: Callable[[A], Awaitable[T]], arg: A) -> T:
        """A safe-to-retry call (GET, upload): pause on 429, back off on 5xx/transport, bounded."""
        attempt = 0
        while True:
            await self.gate.wait()
            try:
                return await fn(arg)
            except RateLimited as exc:
                attempt += 1
                self._rate_limited(exc, attempt)
                if attempt >= self.cfg.get_attempts * 4:
                    raise
            except Transient:
                attempt += 1
                if attempt >= self.cfg.get_attempts:
                    raise
                self.stats.retries[kind] += 1
                await asyncio.sleep(self._backoff(attempt))

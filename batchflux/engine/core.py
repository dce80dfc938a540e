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
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from batchflux import policy
from batchflux.api import (
    ApiClient,
    Fatal,
    RateLimited,
    Transient,
)
from batchflux.engine.config import EngineConfig
from batchflux.engine.deadlines import DeadlineQueue
from batchflux.engine.fetch import FetchStage
from batchflux.engine.inflight import InFlight
from batchflux.engine.inputs import InputResolver
from batchflux.engine.latency import LatencyModel
from batchflux.engine.stats import EngineStats
from batchflux.engine.submit import SubmitStage
from batchflux.engine.tracks import PollScheduler, Track
from batchflux.job import Job
from batchflux.ledger import Event, EventType, JobState, LedgerWriter
from batchflux.pacing import AdaptiveRate, PauseGate, SlidingWindowLimiter
from batchflux.progress import Progress
from batchflux.resume import Action, Decision
from batchflux.summary import FailedJob

log = logging.getLogger("batchflux.engine")
T = TypeVar("T")
A = TypeVar("A")


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
        self.out_root = out_dir.resolve()
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
        self.on_server = 0  # requests submitted, no result yet
        self.scouting: set[Track] = set()  # polled while the latency model is still learning
        self.held: list[Track] = []  # submitted, first poll waiting for the model
        self.inputs = InputResolver(client.upload, inline=config.inline_inputs)
        self.scheduler = PollScheduler(self.clock)
        self.upload_q: asyncio.Queue[Job] = asyncio.Queue(maxsize=64)
        # Unbounded so a poll worker can hand back an expired job without blocking; the feeder is
        # held to ``_feed_room`` queued jobs instead.
        self.submit_q: asyncio.Queue[tuple[Job, bool]] = asyncio.Queue()  # (job, came from the feeder)
        self.feed_room = asyncio.Semaphore(64)
        self._fed = False
        self.poll_q: asyncio.Queue[Track] = asyncio.Queue(maxsize=config.poll_workers * 2)
        self.result_q: DeadlineQueue[Track] = DeadlineQueue()
        self.download_q: DeadlineQueue[Track] = DeadlineQueue()
        self.pending = 0  # work items not yet downloaded or failed
        self.active = 0  # requests on the server or results waiting for download
        self.new_submits = 0
        self._changed = asyncio.Event()
        self.stopping = False
        self._aborted = False
        self.critical: set[asyncio.Task[Any]] = set()  # tasks with a POST on the wire
        self._pre_submit: list[asyncio.Task[None]] = []
        self.expirations: dict[str, int] = {}  # job id → requests of it that expired this run
        self.submitter = SubmitStage(self)
        self.fetcher = FetchStage(self)

    # ---- control -------------------------------------------------------------------------

    def request_stop(self, reason: str = "interrupted", detail: str = "", grace: float | None = None) -> None:
        """Stop submitting; drain what is in flight (for ``grace`` seconds, if given)."""
        if self.stop_reason is None:
            self.stop_reason, self.stop_detail = reason, detail
        if not self.stopping:
            self.stopping = True
            for task in self._pre_submit:
                if task not in self.critical:
                    task.cancel()
            log.info("stopped submitting (%s); %d requests in flight, %d submits on the wire",
                     self.stop_reason, self.on_server, len(self.critical))  # fmt: skip
        if grace is not None:
            self._loop.call_later(grace, self.abort)
        self._changed.set()

    def abort(self, reason: str | None = None, detail: str = "") -> None:
        if reason and self.stop_reason is None:
            self.stop_reason, self.stop_detail = reason, detail
        self.stopping = True
        self._aborted = True
        self._changed.set()

    @property
    def in_flight(self) -> int:
        """Requests on the server without a result yet (not the submit workers that hold an
        in-flight slot while they wait for the rate limiter)."""
        return self.on_server

    # ---- the run -------------------------------------------------------------------------

    async def run(self, decisions: Sequence[Decision]) -> EngineStats:
        self.stats.total = len(decisions)
        tasks: list[asyncio.Task[None]] = []
        async with asyncio.TaskGroup() as tg:
            tasks.append(tg.create_task(self.ledger.sync_forever()))
            tasks.append(tg.create_task(self.scheduler.run(self.poll_q.put)))
            self._pre_submit.append(tg.create_task(self._feed(decisions)))
            for n, worker in (
                (self.cfg.upload_workers, self.submitter.upload_worker),
                (self.cfg.submit_workers, self.submitter.submit_worker),
            ):
                self._pre_submit.extend(tg.create_task(worker()) for _ in range(n))
            for n, worker in (
                (self.cfg.poll_workers, self.fetcher.poll_worker),
                (self.cfg.result_workers, self.fetcher.result_worker),
                (self.cfg.download_workers, self.fetcher.download_worker),
            ):
                tasks.extend(tg.create_task(worker()) for _ in range(n))
            tasks.append(tg.create_task(self._report_progress()))
            await self._until_finished()
            for task in (*tasks, *self._pre_submit):
                task.cancel()
        self.ledger.sync()
        self.stats.peak_in_flight = self.inflight.peak
        self._show_progress()
        return self.stats

    def _finished(self) -> bool:
        return (
            self._aborted
            or (self.pending <= 0 and self._fed)
            or (self.stopping and self.active == 0 and not self.critical)
        )

    async def _until_finished(self) -> None:
        while not self._finished():
            self._changed.clear()
            await self._changed.wait()

    def touch(self) -> None:
        """The counts changed: wake the run's end only when it has come (not once per job)."""
        if self._finished():
            self._changed.set()

    async def _report_progress(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self._show_progress()

    def _show_progress(self) -> None:
        self.progress.update_postfix(
            in_flight=self.on_server,
            quota=self.limiter.used() if self.limiter else None,
            rate_limited=self.stats.rate_limited,
        )

    # ---- feeding -------------------------------------------------------------------------

    async def _feed(self, decisions: Sequence[Decision]) -> None:
        # Requests already on the server first: they must not wait behind new submits.
        for d in decisions:
            if d.action is Action.POLL:
                self.pending += 1
                self._resume_poll(d)
            elif d.action is Action.DOWNLOAD:
                self.pending += 1
                self._resume_download(d)
            elif d.action is Action.SKIP:
                self.stats.skipped += 1
                self.progress.done(skipped=True)
            elif d.action is Action.FAILED:
                self.stats.kept_failed += 1
                self.progress.failed(kept=True)
        to_submit = [d for d in decisions if d.action is Action.SUBMIT]
        self.pending += len(to_submit)
        self._fed = True
        self.touch()
        for d in to_submit:
            rec = d.record
            if d.reason == "expired" and rec is not None and rec.state is JobState.SUBMITTED:
                self.event(EventType.EXPIRED, d.job, request_id=rec.request_id)
            if d.reason == "expired":
                self.stats.resubmitted_expired += 1
            if d.job.local_input is not None:
                await self.upload_q.put(d.job)
            else:
                await self.feed_room.acquire()
                self.submit_q.put_nowait((d.job, True))

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
            submitted_mono=now - (wall - rec.submitted_at),
        )
        track.deadline = track.submitted_mono + self.cfg.retention_s
        self.inflight.force()
        self.hold(track)
        self.active += 1
        self.scheduler.add(track, now)

    def _resume_download(self, d: Decision) -> None:
        rec = d.record
        assert rec is not None
        assert rec.output_url
        track = Track(job=d.job, request_id=rec.request_id or "", output_url=rec.output_url)
        self.active += 1
        self.download_q.put(0.0, track)

    # ---- shared by the stages ------------------------------------------------------------

    def schedule_first_poll(self, track: Track) -> None:
        """A new request's first status call: from the latency model once it knows enough; until
        then only a few scout requests are polled and the rest are held for the model."""
        if self.latency.ready:
            self.scheduler.add(track, max(self.clock(), track.submitted_mono + self.latency.first_delay()))
        elif self.latency.admits_scout(len(self.scouting)):
            self.scouting.add(track)
            self.scheduler.add(track, track.submitted_mono + self.latency.first_delay())
        else:
            self.held.append(track)

    def release_held(self) -> None:
        """The scouts taught the model enough: give every held request its first poll."""
        held, self.held = self.held, []
        self.scouting.clear()
        for track in held:
            self.schedule_first_poll(track)

    def hold(self, track: Track) -> None:
        """The track's request is on the server and holds an in-flight slot until released."""
        track.holds_slot = True
        self.on_server += 1

    def release(self, track: Track) -> None:
        if track.holds_slot:
            track.holds_slot = False
            self.on_server -= 1
            self.inflight.release()
        if track in self.scouting:  # a scout that failed or expired: another request takes its place
            self.scouting.discard(track)
            if self.held and not self.latency.ready:
                self.schedule_first_poll(self.held.pop(0))

    def finish(self, track: Track) -> None:
        self.release(track)
        self.active -= 1
        self.pending -= 1
        self.touch()

    def finish_failed(self, track: Track, cause: str, error: str, http_status: int | None = None) -> None:
        self.event(
            EventType.FAILED, track.job, request_id=track.request_id or None,
            cause=cause, error=error, http_status=http_status,
        )  # fmt: skip
        self.record_failure(track.job, cause, error, track.request_id, http_status)
        self.finish(track)

    def record_failure(
        self, job: Job, cause: str, error: str, request_id: str | None, http_status: int | None = None
    ) -> None:
        self.stats.failed[cause] += 1
        self.stats.failures.append(FailedJob(job.id, cause, error, http_status, request_id))
        self.progress.failed()
        log.warning("%s failed (%s): %s", job.id, cause, error)

    def fatal(self, exc: Fatal) -> None:
        if not self._aborted:  # concurrent calls all hear it; say it once
            log.error("stopping: %s", exc)
        self.abort(exc.kind, str(exc))

    def rate_limited(self, exc: RateLimited, attempt: int) -> None:
        self.stats.rate_limited += 1
        delay = policy.rate_limit_delay(exc, attempt, self.rng)
        self.gate.pause_for(delay)

    def backoff(self, attempt: int) -> float:
        cfg = self.cfg
        return policy.backoff_delay(attempt, base=cfg.backoff_base_s, cap=cfg.backoff_cap_s, rng=self.rng)

    def event(self, kind: EventType, job: Job, **data: Any) -> None:
        self.ledger.append(Event(kind, job.id, data))

    async def call(self, kind: str, fn: Callable[[A], Awaitable[T]], arg: A) -> T:
        """A safe-to-retry call (GET, upload): pause on 429, back off on 5xx/transport, bounded."""
        attempt = 0
        while True:
            await self.gate.wait()
            try:
                return await fn(arg)
            except RateLimited as exc:
                attempt += 1
                self.rate_limited(exc, attempt)
                if attempt >= self.cfg.get_attempts * 4:
                    raise
            except Transient:
                attempt += 1
                if attempt >= self.cfg.get_attempts:
                    raise
                self.stats.retries[kind] += 1
                await asyncio.sleep(self.backoff(attempt))

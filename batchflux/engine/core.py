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
import functools
from collections.abc import Sequence

from batchflux.engine.fetch import FetchStage
from batchflux.engine.history import EXPIRED_WORKERS, HistoryStage
from batchflux.engine.state import EngineState
from batchflux.engine.stats import EngineStats
from batchflux.engine.submit import SubmitStage
from batchflux.engine.tracks import Track
from batchflux.files.durable import WriteFailed
from batchflux.ledger import EventType, JobState
from batchflux.ledger.resume import Action, Decision


class Engine(EngineState):
    """The engine state (see :class:`EngineState` for the arguments), its stages, and the run."""

    @functools.cached_property
    def submitter(self) -> SubmitStage:
        return SubmitStage(self)

    @functools.cached_property
    def fetcher(self) -> FetchStage:
        return FetchStage(self)

    @functools.cached_property
    def history(self) -> HistoryStage:
        return HistoryStage(self, resubmit=self._queue_submit, expire=self.fetcher.expire)

    # ---- the run -------------------------------------------------------------------------

    async def run(self, decisions: Sequence[Decision]) -> EngineStats:
        self.stats.total = len(decisions)
        if self.history.holdings is None:  # the runner gives the whole ledger's; else the plan's
            self.history.use_ledger(
                (d.job for d in decisions), {d.job.id: d.record for d in decisions if d.record}
            )
        try:
            await self._run_stages(decisions)
        except* WriteFailed as group:  # the ledger cannot be written: nothing more can be done safely
            self.disk_failed(group.exceptions[0])  # type: ignore[arg-type]
        try:
            self.ledger.sync()
        except WriteFailed as exc:
            self.disk_failed(exc)
        self.stats.peak_in_flight = self.inflight.peak
        self._show_progress()
        return self.stats

    async def _run_stages(self, decisions: Sequence[Decision]) -> None:
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
            if self.history.enabled:
                tasks.append(tg.create_task(self.history.intent_worker()))
                tasks.append(tg.create_task(self.history.resubmit_worker()))
                tasks.extend(tg.create_task(self.history.expired_worker()) for _ in range(EXPIRED_WORKERS))
            tasks.append(tg.create_task(self._report_progress()))
            await self._until_finished()
            for task in (*tasks, *self._pre_submit):
                task.cancel()
        self.pacer.say_quota()  # a run over before its measuring window was still says what it learned

    async def _report_progress(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self._show_progress()

    def _show_progress(self) -> None:
        self.progress.update_postfix(
            in_flight=self.on_server,
            quota=self.pacer.used(),
            rate_limited=self.stats.rate_limited,
            learned=str(rate) if (rate := self.pacer.learned_rate) else None,
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
            if not self.history.takes(d):  # open intents and expired requests ask it first
                await self._queue_submit(d)

    async def _queue_submit(self, d: Decision) -> None:
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

"""The request side: poll on the latency model's schedule, fetch results earliest deadline
first, download each image, and turn every answer into a ledger event."""

from __future__ import annotations

import asyncio
import logging
import os

from batchflux.api import (
    ApiError,
    DownloadError,
    Expired,
    Fatal,
    JobFailed,
    JobResult,
    RateLimited,
    Transient,
)
from batchflux.engine.latency import latency_sample
from batchflux.engine.resultpoll import Via
from batchflux.engine.state import EngineState
from batchflux.engine.tracks import Track
from batchflux.files.download import download_image
from batchflux.files.durable import WriteFailed
from batchflux.ledger import EventType

log = logging.getLogger("batchflux.engine")


class FetchStage:
    def __init__(self, engine: EngineState) -> None:
        self.e = engine
        root = str(engine.out_root)
        self._root = root
        self._root_prefix = root if root.endswith(os.sep) else root + os.sep

    async def poll_worker(self) -> None:
        e = self.e
        while True:
            track = await e.poll_q.get()
            if self.too_early(track):
                continue
            via = e.result_polling.via(e.polls_counted)
            if via is not Via.STATUS:
                await self.poll_result(track, probe=via is Via.PROBE)
                continue
            try:
                st = await e.call("status", e.client.status, track.status_url)
            except (Transient, RateLimited):
                e.scheduler.add(track, e.clock() + e.cfg.backoff_cap_s)
                continue
            except ApiError as exc:
                self.request_error(track, exc)
                continue
            track.calls += 1
            age = e.clock() - track.submitted_mono
            if st.status == "COMPLETED":
                self.observe_latency(
                    track, latency_sample(track.last_unfinished_age, age, st.body.get("metrics"))
                )
                e.result_q.put(track.deadline, track)
                continue
            self.not_yet(track, st.status, age)

    def too_early(self, track: Track) -> bool:
        """A first poll scheduled before the server was seen counting polls comes due: it waits
        for the later look counted polls get (see :class:`~.latency.PollTuning`), rescheduled."""
        e = self.e
        if track.calls or not e.polls_counted or not e.latency.ready or track in e.scouting:
            return False
        if e.result_polling.probes_young(track):  # polled at once on purpose
            return False
        due = track.submitted_mono + e.latency.first_delay(counted=True)
        if due <= e.clock() + e.latency.t.min_step:
            return False
        e.scheduler.add(track, due)
        return True

    def not_yet(self, track: Track, status: str, age: float) -> None:
        """A poll found the request not finished: say so if it changed, and poll it again later."""
        e = self.e
        if status != track.last_status:
            track.last_status = status
            e.event(EventType.STATE, track.job, request_id=track.request_id, status=status)
        track.last_unfinished_age = age
        delay = e.latency.next_delay(age, counted=e.polls_counted, closing=e.closing)
        e.scheduler.add(track, e.clock() + delay)

    async def poll_result(self, track: Track, *, probe: bool) -> None:
        """A poll through the result URL (see :mod:`.resultpoll`): the output when the request is
        done, its status when not. A probe learns whether the URL answers a request not finished."""
        e = self.e
        learned: bool | None = None
        try:
            try:
                res = await e.call("result", e.client.result, track.response_url)
            except Expired as exc:
                age = e.clock() - track.submitted_mono
                pending_404 = probe or e.result_polling.answers_pending is False
                if not (pending_404 and age < e.cfg.retention_s / 2):
                    return self.request_error(track, exc)
                # A 404 for a request well within its hour: it is not finished. Polled again here:
                # the poll that finds it done brings its output, one call where the status URL takes
                # two.
                track.calls += 1
                if probe:
                    learned = False
                    if e.result_polling.answers_pending is None:  # said once, by the first to learn it
                        log.info("the result URL answers 404 for a request not finished yet (%s); "
                                 "polls stay there, a 404 within the request's hour read as not "
                                 "finished", exc)  # fmt: skip
                self.not_yet(track, track.last_status, age)
                return None
            except (Transient, RateLimited):
                e.scheduler.add(track, e.clock() + e.cfg.backoff_cap_s)
                return None
            except ApiError as exc:
                return self.request_error(track, exc)
            track.calls += 1
            age = e.clock() - track.submitted_mono
            if res.output:
                self.observe_latency(track, latency_sample(track.last_unfinished_age, age, res.metrics))
                return self.got_result(track, res)
            if probe:
                learned = True
                if e.result_polling.answers_pending is None:
                    log.info("the result URL answers requests not finished yet: polls go there alone, "
                             "one counted call each")  # fmt: skip
            self.not_yet(track, res.status, age)
            return None
        finally:
            if probe:
                e.result_polling.learned(learned, track)

    def observe_latency(self, track: Track, estimate: float) -> None:
        e = self.e
        track.latency = estimate
        ready = e.latency.ready
        e.latency.observe(estimate)
        # A scout that finished has done its job: no held request takes its place. (One would be
        # old already, polled at once, and if done teach only "under its age": such samples made
        # the model ready early, on latencies it underestimated, and every held request was
        # then polled before most were done — 2.6 status calls a job instead of 1.7.)
        e.scouting.discard(track)
        if not ready and e.latency.ready:
            e.release_held()

    async def result_worker(self) -> None:
        e = self.e
        while True:
            track = await e.result_q.get()
            try:
                res = await e.call("result", e.client.result, track.response_url)
            except (Transient, RateLimited):
                e.result_q.put(track.deadline, track)
                await asyncio.sleep(e.backoff(2))
                continue
            except ApiError as exc:
                self.request_error(track, exc)
                continue
            track.calls += 1
            if not res.output:  # not terminal after all: back to polling
                age = e.clock() - track.submitted_mono
                e.scheduler.add(track, e.clock() + e.latency.next_delay(age))
                continue
            self.got_result(track, res)

    def got_result(self, track: Track, res: JobResult) -> None:
        """The request's output URL is known: record it, free its slot, download it."""
        e = self.e
        assert res.output is not None
        track.output_url = res.output
        e.event(
            EventType.RESULT,
            track.job,
            request_id=track.request_id,
            output_url=res.output,
            metrics=res.metrics,
            completed_at=e.wall(),
            latency=track.latency,
        )
        e.release(track)
        e.pacer.followed_up(track.calls)
        e.download_q.put(e.clock(), track)

    async def download_worker(self) -> None:
        e = self.e
        while True:
            track = await e.download_q.get()
            await self.download(track)

    async def download(self, track: Track) -> None:
        e = self.e
        job = track.job
        # The manifest already refused absolute paths and '..'; this is the last line of defence,
        # lexical so that it costs no syscalls per image (the run directory is resolved once).
        target = os.path.normpath(os.path.join(self._root, job.output))  # noqa: ASYNC240 - string only
        if target != self._root and not target.startswith(self._root_prefix):
            why = f"output path {job.output!r} leaves the run directory"
            return e.finish_failed(track, "invalid", why)
        host = e.media_host
        attempt = 0
        retry = False
        failed_at: float | None = None
        while True:
            if not await host.turn(keep_trying=False, retry=retry):
                # An outage: the file lives 7 days and the ledger has its URL; the next run fetches it.
                return e.leave(track, f"download waits for {host.name} ({host.breaker.last_error})")
            sent = e.clock()
            try:
                got = await download_image(
                    e.client.media,
                    track.output_url,
                    target,
                    output_format=job.output_format,
                    committer=e.files,
                )
            except WriteFailed as exc:  # the disk, not the image: stop, and the next run downloads it
                e.disk_failed(exc)
                return e.leave(track, str(exc))
            except DownloadError as exc:
                if track.via_history and exc.status in (404, 410):  # the record's file is gone
                    host.succeeded()  # the host answered: the file is not there
                    return self.expire(track, f"its output file is gone ({exc})")
                if not exc.retryable:
                    host.succeeded()  # the host answered, with something we cannot use
                    return e.finish_failed(track, "download", f"download failed: {exc}")
                retry = not e.host_failed(host, exc, sent if failed_at is None else failed_at)
                failed_at = e.clock()
                if retry:
                    continue  # the host's trouble, not this image's: wait in its line
                attempt += 1
                if attempt >= e.cfg.download_attempts:
                    return e.finish_failed(track, "download", f"download failed: {exc}")
                e.stats.retries["download"] += 1
                await asyncio.sleep(e.backoff(attempt))
                continue
            host.succeeded()
            e.event(
                EventType.DOWNLOADED,
                job,
                request_id=track.request_id,
                path=job.output,
                size=got.size,
                sha256=got.sha256,
            )
            e.stats.downloaded += 1
            e.progress.done()
            e.finish(track)
            return None

    def expire(self, track: Track, why: str) -> None:
        """The request's result can no longer be had: submit the job again (counted as expired),
        or fail it when it expired too often or the run is stopping."""
        e = self.e
        job = track.job
        e.event(EventType.EXPIRED, job, request_id=track.request_id)
        e.release(track)
        n = e.expirations[job.id] = e.expirations.get(job.id, 0) + 1
        if n <= e.cfg.expired_resubmits and not e.stopping:
            log.warning("%s: request %s expired before its result was fetched (%s); resubmitting",
                        job.id, track.request_id, why)  # fmt: skip
            e.active -= 1
            e.stats.resubmitted_expired += 1
            e.submit_q.put_nowait((job, False))
        else:
            e.finish_failed(
                track, "expired", f"request {track.request_id} expired before its result was fetched ({why})"
            )

    def request_error(self, track: Track, exc: ApiError) -> None:
        e = self.e
        if isinstance(exc, JobFailed):
            e.stats.server_failed += 1
            e.finish_failed(track, exc.cause, exc.error, http_status=exc.http_status)
        elif isinstance(exc, Expired):
            if e.history.enabled:
                e.history.expired(track)  # its record may say it completed
            else:
                self.expire(track, str(exc))
        elif isinstance(exc, Fatal):
            e.fatal(exc)
        else:
            e.finish_failed(track, "server", str(exc))

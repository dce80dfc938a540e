"""The request side: poll on the latency model's schedule, fetch results earliest deadline
first, download each image, and turn every answer into a ledger event."""

from __future__ import annotations

import asyncio
import logging
import os

from batchflux.api import ApiError, DownloadError, Expired, Fatal, JobFailed, RateLimited, Transient
from batchflux.engine.latency import latency_sample
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
            if st.status != track.last_status:
                track.last_status = st.status
                e.event(EventType.STATE, track.job, request_id=track.request_id, status=st.status)
            track.last_unfinished_age = age
            e.scheduler.add(track, e.clock() + e.latency.next_delay(age))

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
        while True:
            if not await host.turn(keep_trying=False):
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
                if not e.host_failed(host, exc, sent):
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

"""The submit side: upload local inputs once, then pace and POST each job, ledger first.

``submit_intent`` is appended before every POST that could create a request and ``submitted``
(the request_id) right after it. A submit is retried only when nothing can have been created
(429, 5xx answer, connection never made); one that got no answer is re-sent under a new intent,
so the ledger counts it as a possible duplicate charge — unless the request history shows the
request it created (:mod:`.history`): then that request is adopted, ``submitted`` with
``recovered: true``, and nothing is paid again. Every POST, retries included, takes a slot of
the sliding window.

A retry after a 429 or a 5xx answer keeps its intent: nothing was created, and the intent still
precedes every byte of every try (the history's match needs only that). Its POST may leave a
whole quota window after the intent, so the intent's time is never when a lost answer's record
can have landed: the lookup counts its landing wait from when the answer was lost
(:mod:`batchflux.ledger.landing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from typing import Any

from batchflux.api import (
    Ambiguous,
    ApiError,
    Fatal,
    HistoryRow,
    JobFailed,
    OutOfCredits,
    RateLimited,
    Transient,
)
from batchflux.engine.history import cost_field
from batchflux.engine.pacing import Slot
from batchflux.engine.state import EngineState
from batchflux.engine.tracks import Track
from batchflux.files.durable import WriteFailed, free_bytes
from batchflux.ledger import EventType
from batchflux.ledger.reconcile import input_sent
from batchflux.manifest.job import Job

log = logging.getLogger("batchflux.engine")


class SubmitStage:
    def __init__(self, engine: EngineState) -> None:
        self.e = engine

    async def upload_worker(self) -> None:
        e = self.e
        while True:
            job = await e.upload_q.get()
            path = job.local_input
            assert path is not None
            try:  # upload ahead of the submit worker; params_for then finds the URL cached
                await e.call("upload", e.inputs.resolve, path)
            except (OSError, ApiError) as exc:
                if isinstance(exc, Fatal):
                    e.fatal(exc)
                    return
                if isinstance(exc, (Transient, RateLimited)):  # the upload host's trouble, not the input's
                    if e.stopping:
                        self.left_pending(job)
                    else:
                        self.fail_unsubmitted(job, "transport", f"uploading {job.local_input}: {exc}")
                    continue
                self.fail_unsubmitted(job, "input", f"input image {job.local_input}: {exc}")
                continue
            await e.feed_room.acquire()
            e.submit_q.put_nowait((job, True))

    async def submit_worker(self) -> None:
        e = self.e
        me = asyncio.current_task()
        assert me is not None
        while not e.stopping:
            job, fed = await e.submit_q.get()
            if fed:
                e.feed_room.release()
            await e.inflight.acquire()
            # While the quota's window is being measured, the submits past what the first window
            # held go one at a time (see QuotaLearner.admits).
            alone = e.pacer.measuring_alone(len(e.critical))
            async with e.pacer.one_at_a_time if alone else contextlib.nullcontext():
                try:
                    go = await self.api_turn()
                    slot = await self.pace() if go else None
                except BaseException:
                    e.inflight.release()
                    raise
                if not go or e.stopping or not self.within_budget():  # the job stays pending
                    e.inflight.release()
                    return
                try:
                    params = await self.params_for(job)
                except OSError as exc:  # the input's own store could not serve it
                    e.inflight.release()
                    self.fail_unsubmitted(
                        job, "transport", f"input image {job.params.get('input_image')}: {exc}"
                    )
                    continue
                e.critical.add(me)
                try:
                    await self.submit(job, params, slot)
                finally:
                    e.critical.discard(me)
                    e.touch()

    async def params_for(self, job: Job) -> dict[str, Any]:
        """The body to POST: the job's parameters, a local input replaced by its (cached) URL."""
        params = dict(job.params)
        if job.local_input is not None:
            params["input_image"] = await self.e.inputs.resolve(job.local_input)
        elif self.e.input_url is not None and isinstance(value := params.get("input_image"), str):
            params["input_image"] = await self.e.input_url(value)
        return params

    def within_budget(self) -> bool:
        e = self.e
        if not self.room_on_disk():
            return False
        cap = e.cfg.max_new_submits
        if cap is not None and e.new_submits >= cap:
            e.request_stop("budget", f"--max-jobs {cap} reached")
            return False
        cost_cap = e.cfg.max_cost_usd
        if cost_cap is not None and (e.new_submits + 1) * e.cfg.price_usd > cost_cap + 1e-9:
            e.request_stop("budget", f"--max-cost ${cost_cap:.2f} reached")
            return False
        return True

    def room_on_disk(self) -> bool:
        """Enough free space to record and write what a new submit brings; else the run stops."""
        e = self.e
        free = free_bytes(e.out_root)
        if free is None or free >= e.cfg.min_free_bytes:
            return True
        error = OSError(errno.ENOSPC, f"{free} bytes free, under the {e.cfg.min_free_bytes} a submit needs")
        e.disk_failed(WriteFailed(e.out_root, error))
        return False

    async def pace(self) -> Slot | None:
        return await self.e.pacer.admit("submit", urgent=False)

    async def api_turn(self, *, retry: bool = False) -> bool:
        """Wait while the API is failing (in line, see :mod:`.hosts`); False once it is down or the
        run stops: a submit not yet sent then creates nothing."""
        return await self.e.api.turn(keep_trying=False, retry=retry) and not self.e.stopping

    async def submit(self, job: Job, params: dict[str, Any], slot: Slot | None) -> None:
        """One job's submit, with its retries. Runs to the end even while stopping: a POST on the
        wire must have its outcome recorded."""
        e = self.e
        attempt = 0  # 5xx / connection failures: nothing was created
        ambiguous = 0
        recovered: HistoryRow | None = None  # the request of a submit without an answer, found
        intent_at = self.intent(job, params)
        failed_at: float | None = None  # the last POST's failure (see EngineState.host_failed)
        e.new_submits += 1
        # On disk, not just in the OS, before the POST: a power cut must not lose the only trace
        # of a request that may be billed. Concurrent submits share one fsync.
        await e.ledger.commit()
        while True:
            await e.pacer.ready(slot)  # recorded and on disk: the POST goes once its place is free
            sent = e.clock()
            try:
                try:
                    sub = await e.client.submit(job.model, params)
                finally:
                    e.pacer.answered(slot)  # the server saw the POST no later than now
            except RateLimited as exc:
                e.api.succeeded()  # an answer: the API is there
                e.rate_limited(exc, attempt, "submit", slot)  # refused: the slot goes back
                if e.stopping:
                    return self.not_submitted(job, "stopping after a 429")
                slot = await self.pace()
                continue
            except Transient as exc:
                own = e.host_failed(e.api, exc, sent if failed_at is None else failed_at)
                failed_at = e.clock()
                if own:
                    attempt += 1
                if e.stopping:  # nothing was created: the job waits for the next run, not failed
                    return self.not_submitted(job, f"stopping; the submit was not accepted ({exc})")
                if attempt >= e.cfg.submit_attempts:
                    return self.fail_submit(job, "transport", f"submit failed {attempt} times: {exc}")
                if own:  # the API answers others: this job's bad luck, a try spent
                    e.stats.retries["submit"] += 1
                    await asyncio.sleep(e.backoff(attempt))
                if not await self.api_turn(retry=not own):  # the API is down, or the run stopping
                    return self.not_submitted(job, f"the API is unreachable; nothing was created ({exc})")
                slot = await self.pace()  # every POST spends quota, retries too
                continue
            except Ambiguous as exc:
                e.host_failed(e.api, exc, sent if failed_at is None else failed_at)
                failed_at = e.clock()
                recovered = await e.history.recover(job, params, intent_at)
                if recovered is not None and recovered.request_id:
                    sub = e.client.submission_for(recovered.request_id)
                    break
                ambiguous += 1
                e.stats.ambiguous += 1
                log.warning("%s: no answer to submit (%s); a possible duplicate charge", job.id, exc)
                if ambiguous > e.cfg.ambiguous_resubmits or e.stopping:
                    # Leave the intent open: the next run resubmits it, counted as ambiguous.
                    return self.unresolved(job)
                e.stats.retries["submit"] += 1
                await asyncio.sleep(e.backoff(ambiguous))
                if not await self.api_turn(retry=True):
                    return self.unresolved(job)
                slot = await self.pace()
                intent_at = self.intent(job, params)
                await e.ledger.commit()
                continue
            except JobFailed as exc:
                e.api.succeeded()
                return self.fail_submit(job, exc.cause, exc.error, http_status=exc.http_status)
            except OutOfCredits as exc:
                e.api.succeeded()
                self.not_submitted(job, "insufficient credits")
                e.request_stop("credits", str(exc))
                return None
            except Fatal as exc:
                self.not_submitted(job, str(exc))
                e.fatal(exc)
                return None
            break
        e.api.succeeded()
        e.pacer.accepted("submit", sent, slot)
        now, wall = e.clock(), e.wall()
        born = wall if recovered is None else min(wall, recovered.created_at or wall)
        e.event(
            EventType.SUBMITTED,
            job,
            request_id=sub.request_id,
            status_url=sub.status_url,
            response_url=sub.response_url,
            submitted_at=born,
            **({} if recovered is None else {"recovered": True, **cost_field(recovered)}),
        )
        e.history.hold(job, sub.request_id)
        now -= wall - born
        e.stats.submitted += 1
        e.progress.submitted()
        track = Track(
            job=job,
            request_id=sub.request_id,
            status_url=sub.status_url,
            response_url=sub.response_url,
            submitted_mono=now,
            deadline=now + e.cfg.retention_s,
        )
        e.hold(track)
        e.active += 1
        e.schedule_first_poll(track)
        return None

    def intent(self, job: Job, sent: dict[str, Any]) -> float:
        """Append the ``submit_intent`` of sending ``sent``; returns its time (unix)."""
        e = self.e
        params = dict(job.params)
        at = e.wall()
        uploaded = input_sent(params, sent)
        e.event(
            EventType.SUBMIT_INTENT,
            job,
            fingerprint=job.fingerprint,
            model=job.model,
            params=params,
            input=str(job.local_input) if job.local_input else params.get("input_image"),
            output=job.output,
            **({} if uploaded is None else {"input_sent": uploaded}),
            **({"redo": job.redo} if job.redo else {}),
        )
        return at

    def fail_submit(self, job: Job, cause: str, error: str, http_status: int | None = None) -> None:
        e = self.e
        e.event(EventType.FAILED, job, request_id=None, cause=cause, error=error, http_status=http_status)
        e.record_failure(job, cause, error, None, http_status)
        e.pending -= 1
        e.inflight.release()
        e.touch()

    def fail_unsubmitted(self, job: Job, cause: str, error: str) -> None:
        e = self.e
        e.event(EventType.FAILED, job, request_id=None, cause=cause, error=error, http_status=None)
        e.record_failure(job, cause, error, None)
        e.pending -= 1
        e.touch()

    def not_submitted(self, job: Job, why: str) -> None:
        """The POST certainly created nothing: close the intent so no duplicate is counted."""
        e = self.e
        e.event(EventType.STATE, job, request_id=None, status="NOT_SUBMITTED", reason=why)
        e.new_submits -= 1
        e.pending -= 1
        e.inflight.release()
        e.touch()

    def left_pending(self, job: Job) -> None:
        """Not submitted, and not the job's fault: it stays pending for the next run."""
        e = self.e
        e.pending -= 1
        e.touch()

    def unresolved(self, job: Job) -> None:
        """Gave up re-sending a submit that got no answer: the intent stays open for resume."""
        e = self.e
        e.pending -= 1
        e.inflight.release()
        e.touch()

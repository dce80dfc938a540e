"""What the engine's stages share: the settings, the client and the ledger, the pacing, the queues
between stages, the counts that tell when the run is over, and the bookkeeping every stage does
(ledger events, in-flight slots, failures, stops).

The stages (:mod:`.submit`, :mod:`.fetch`) take an :class:`EngineState`; :class:`~.core.Engine`
is one, plus the TaskGroup that runs the stages and the feeder that hands them jobs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from batchflux.api import ApiClient, ApiError, Fatal, HistoryRow, RateLimited, Transient, policy
from batchflux.engine.config import EngineConfig
from batchflux.engine.deadlines import DeadlineQueue
from batchflux.engine.hosts import Host
from batchflux.engine.inflight import InFlight
from batchflux.engine.inputs import InputResolver
from batchflux.engine.latency import LatencyModel
from batchflux.engine.pacer import Pacer
from batchflux.engine.pacing import Slot
from batchflux.engine.progress import Progress
from batchflux.engine.resultpoll import ResultPolling
from batchflux.engine.stats import EngineStats, FailedJob
from batchflux.engine.tracks import PollScheduler, Track
from batchflux.files.commit import FileCommitter
from batchflux.files.durable import WriteFailed
from batchflux.ledger import Event, EventType, LedgerWriter
from batchflux.manifest.job import Job

log = logging.getLogger("batchflux.engine")

T = TypeVar("T")
A = TypeVar("A")


class History(Protocol):
    """What the stages ask of the request history (:class:`~.history.HistoryStage`)."""

    enabled: bool

    async def recover(self, job: Job, sent: Mapping[str, Any], at: float) -> HistoryRow | None: ...
    def hold(self, job: Job, request_id: str) -> None: ...
    def expired(self, track: Track) -> None: ...


class EngineState:
    @property
    def history(self) -> History:
        """The request history's stage: the :class:`~.core.Engine` makes it."""
        raise NotImplementedError

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
        pauses: Mapping[str, float] | None = None,
        latencies: Sequence[float] = (),
    ) -> None:
        """``pauses``: the ledger's announced 429 pauses by kind of call (unix end times); a kind
        still inside one waits it out. ``latencies``: this model's recent latencies from the
        ledger, so polling starts from what earlier runs learned."""
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
        # The quota's gates and window: every API call passes it (downloads, from the public media
        # host, do not).
        self.pacer = Pacer(
            config.rate,
            self.clock,
            rng=self.rng,
            wall=wall,
            on_pause=self._paused,
            pauses=pauses,
            to_submit=lambda: self.pending - self.active if self._fed else None,
        )
        self.latency = LatencyModel(config.poll)
        for latency in latencies:
            self.latency.observe(latency)
        self.inflight = InFlight(config.max_in_flight)
        self.on_server = 0  # requests submitted, no result yet
        self.scouting: set[Track] = set()  # polled while the latency model is still learning
        self.held: list[Track] = []  # submitted, first poll waiting for the model
        self.inputs = InputResolver(client.upload, inline=config.inline_inputs)
        # The URL to send for an input_image that is a URL (a bucket's object: signed, or uploaded);
        # set by the runner. An OSError from it fails the job's submit as a transport error.
        self.input_url: Callable[[str], Awaitable[str]] | None = None
        self.scheduler = PollScheduler(self.clock)
        self.result_polling = ResultPolling()  # once polls count: poll the result URL alone?
        self.upload_q: asyncio.Queue[Job] = asyncio.Queue(maxsize=64)
        # Unbounded so a poll worker can hand back an expired job without blocking; the feeder is
        # held to ``_feed_room`` queued jobs instead.
        self.submit_q: asyncio.Queue[tuple[Job, bool]] = asyncio.Queue()  # (job, came from the feeder)
        self.feed_room = asyncio.Semaphore(64)
        self._fed = False
        self._closed_in = False  # the run's last jobs' polls were brought forward (see touch)
        self.poll_q: asyncio.Queue[Track] = asyncio.Queue(maxsize=config.poll_workers * 2)
        self.result_q: DeadlineQueue[Track] = DeadlineQueue()
        self.download_q: DeadlineQueue[Track] = DeadlineQueue()
        self.pending = 0  # work items not yet downloaded or failed
        self.active = 0  # requests on the server or results waiting for download
        self.new_submits = 0
        self._changed = asyncio.Event()
        self.stopping = False
        self._aborted = False
        self._end_when_settled = False  # stop_when_settled: end once no POST is on the wire
        # Told every job event as the ledger takes it (batchflux.stream follows a run with it).
        self.on_event: Callable[[Event], None] | None = None
        self.critical: set[asyncio.Task[Any]] = set()  # tasks with a POST on the wire
        self._pre_submit: list[asyncio.Task[None]] = []
        # The hosts the run talks to, each with its breaker and its line of calls waiting for it
        # (see :mod:`.hosts`): an outage of any of them spends no job's tries.
        window = config.outage_after_s
        self.api = Host("the API", self.clock, window_s=window)
        self.upload_host = Host("the upload host", self.clock, window_s=window)
        self.media_host = Host("the media host", self.clock, window_s=window)
        self.history_host = Host("the request history", self.clock, window_s=window)
        self.hosts = (self.api, self.upload_host, self.media_host, self.history_host)
        self.files = FileCommitter()  # images finished together are written in one thread trip
        self.expirations: dict[str, int] = {}  # job id → requests of it that expired this run

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
            for host in self.hosts:  # a submit waiting for its host gives up: nothing was created
                host.give_up()
        if grace is not None:
            self._loop.call_later(grace, self.abort)
        self._changed.set()

    def stop_when_settled(self, reason: str = "interrupted", detail: str = "") -> None:
        """Stop submitting, and end as soon as no POST is on the wire (its answer recorded): the
        requests on the server are left to the next run, which polls them and resubmits nothing."""
        self._end_when_settled = True
        self.request_stop(reason, detail)

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

    def _finished(self) -> bool:
        return (
            self._aborted
            or (self._end_when_settled and not self.critical)
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
        elif self.closing and not self._closed_in:
            self._closed_in = True  # the last few jobs: their polls, already scheduled, come sooner
            now = self.clock()
            self.scheduler.tighten(
                lambda t: now + (self.latency.closing_delay(now - t.submitted_mono) or math.inf)
            )

    @property
    def closing(self) -> bool:
        """Down to the run's last few jobs, nothing else to submit (see :class:`~.latency.PollTuning`)."""
        return self._fed and 0 < self.pending <= self.latency.t.closing_jobs and not self.polls_counted

    # ---- shared by the stages ------------------------------------------------------------

    def schedule_first_poll(self, track: Track) -> None:
        """A new request's first status call: from the latency model once it knows enough; until
        then only a few scout requests are polled and the rest are held for the model."""
        if self.result_polling.plan_probe(self.polls_counted, track):
            self.scheduler.add(track, self.clock())  # surely not finished: the result URL's probe
        elif self.latency.ready:
            first = self.latency.first_delay(counted=self.polls_counted)
            self.scheduler.add(track, max(self.clock(), track.submitted_mono + first))
        elif self.latency.admits_scout(len(self.scouting)):
            self.scouting.add(track)
            self.scheduler.add(track, track.submitted_mono + self.latency.first_delay())
        else:
            self.held.append(track)

    @property
    def polls_counted(self) -> bool:
        """The server has shown it counts polls toward the quota (a 429 on one)."""
        return "poll" in self.pacer.counted

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

    def leave(self, track: Track, why: str) -> None:
        """Stop working on a request without a verdict (an outage, the disk): the ledger already
        says how far it got, and the next run goes on from there."""
        log.info("%s: left for the next run (%s)", track.job.id, why)
        self.finish(track)

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

    def rate_limited(self, exc: RateLimited, attempt: int, kind: str, slot: Slot | None = None) -> None:
        """A 429 on a call of ``kind`` (see :meth:`Pacer.rate_limited`)."""
        self.stats.rate_limited += 1
        self.pacer.rate_limited(exc, attempt, kind, slot)

    def _paused(self, kind: str, until: float) -> None:
        """A new pause the server announced: a ledger event, so a run started inside it (a crash
        loop, a resume) waits it out too."""
        self.ledger.append(Event(EventType.PAUSED, None, {"kind": kind, "until": until}))

    def backoff(self, attempt: int) -> float:
        cfg = self.cfg
        return policy.backoff_delay(attempt, base=cfg.backoff_base_s, cap=cfg.backoff_cap_s, rng=self.rng)

    def event(self, kind: EventType, job: Job, **data: Any) -> None:
        event = Event(kind, job.id, data)
        self.ledger.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def host_of(self, kind: str) -> Host:
        return self.upload_host if kind == "upload" else self.api

    async def call(self, kind: str, fn: Callable[[A], Awaitable[T]], arg: A) -> T:
        """A safe-to-retry call (GET, upload): pause on 429, back off on 5xx/transport, bounded.
        A failure that is the host's (nothing else it was asked succeeded meanwhile) spends no try:
        the call waits in the host's line (:mod:`.hosts`) until the host answers again."""
        host = self.host_of(kind)
        attempt = 0
        limited = 0
        retry = False  # the last try failed, and it was the host's failure
        failed_at: float | None = None  # the last try's failure
        while True:
            await host.turn(retry=retry)
            retry = False
            slot = await self.pacer.admit(kind, urgent=True)  # ahead of the submits, once counted
            sent = self.clock()
            try:
                answer = await fn(arg)
            except RateLimited as exc:
                self.pacer.answered(slot)
                host.succeeded()  # an answer: the host is there
                limited += 1
                self.rate_limited(exc, limited, kind, slot)
                if limited >= self.cfg.get_attempts * 4:
                    raise
            except Transient as exc:
                self.pacer.answered(slot)
                own = self.host_failed(host, exc, sent if failed_at is None else failed_at)
                failed_at = self.clock()
                if not own:
                    retry = True  # the host's trouble, not this call's: wait in its line
                    continue
                attempt += 1
                if attempt >= self.cfg.get_attempts:
                    raise
                self.stats.retries[kind] += 1
                await asyncio.sleep(self.backoff(attempt))
            except ApiError:
                self.pacer.answered(slot)
                host.succeeded()
                raise
            else:
                self.pacer.answered(slot)
                host.succeeded()
                self.pacer.accepted(kind, slot=slot)
                return answer

    def host_failed(self, host: Host, exc: ApiError, since: float) -> bool:
        """A call to ``host`` got no answer (transport) or a 5xx: True when it is the call's own
        accident (the host answered others since ``since``: its sending, or its previous failure).
        A failure that opens the breaker of a host the run cannot do without stops the run."""
        failure = host.failed(since, exc)
        if failure.opened and host is not self.history_host:  # the history is an aid: see .history
            self.outage(host.describe())
        return failure.own

    def disk_failed(self, exc: WriteFailed) -> None:
        """The run directory cannot be written (a full or read-only disk, a quota): stop submitting
        and drain what can still be recorded. No job is failed for it; the next run goes on."""
        if self.stop_reason != "disk":
            log.error("stopping: %s; nothing is lost, rerun once there is room", exc)
        if self.stop_reason is None:
            self.stop_reason, self.stop_detail = "disk", str(exc)
        self.request_stop("disk", str(exc), grace=self.cfg.drain_s)

    def outage(self, why: str) -> None:
        """A host is down: stop submitting, keep trying what is on the server for the drain time,
        then end the run; jobs not submitted stay pending, and the next run takes them."""
        log.error("stopping: %s; jobs not yet submitted stay pending, the run is resumable", why)
        self.request_stop("unreachable", why, grace=self.cfg.drain_s)

"""One run of a manifest, start to finish: the wiring behind ``batchflux run``, :func:`batchflux.run_batch`
and :func:`batchflux.stream`.

manifest → shard → lock → ledger replay → resume plan → credit pre-flight → engine →
ledger ``run_finished`` → summary.json, results.jsonl/.csv, metrics file, report.html → exit code.
Everything here is sequencing; the decisions live in the modules it calls.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import aiohttp

from batchflux import __version__
from batchflux.api import ApiClient
from batchflux.engine.config import EngineConfig
from batchflux.engine.core import Engine
from batchflux.engine.progress import NullProgress, Progress
from batchflux.engine.stats import EngineStats
from batchflux.files.durable import DISK_FULL_ERRNOS, WriteFailed
from batchflux.files.layout import (
    RESULTS_JSONL_FILENAME,
    REVIEWS_FILENAME,
    SUMMARY_FILENAME,
    THUMB_DIRNAME,
)
from batchflux.ledger import (
    Event,
    EventType,
    LedgerCorrupt,
    LedgerWriter,
    replay_file,
)
from batchflux.ledger.redo import carry_redos, plan_redo
from batchflux.ledger.replay import Replay
from batchflux.ledger.resume import (
    Action,
    Decision,
    ResumePlan,
    plan_resume,
)
from batchflux.ledger.reviews import count_verdicts, merge_reviews
from batchflux.manifest import Manifest, ManifestError, load_manifest
from batchflux.manifest.job import Job
from batchflux.manifest.schema import price_for
from batchflux.manifest.write import ManifestRow, write_csv_manifest
from batchflux.run import outcome
from batchflux.run.adopt import adopt_lost_tail
from batchflux.run.bucket_inputs import BucketInputs, in_bucket
from batchflux.run.exitcodes import ExitCode
from batchflux.run.export import ExportError, write_run_results
from batchflux.run.preflight import credit_preflight, dry_run_text, history_lookups
from batchflux.run.redo import keep_rejected
from batchflux.run.results_out import atomic_text
from batchflux.run.shard import Shard
from batchflux.run.shipping import ship_while_running
from batchflux.run.summary import RunSummary, write_summary
from batchflux.rundir import LockHeld, RunDir, TargetError, open_run_dir
from batchflux.rundir.store import StoreUnavailable

log = logging.getLogger("batchflux.run")

DEFAULT_BASE_URL = "https://api.segmind.com"


@dataclass(frozen=True, slots=True)
class RunOptions:
    """The options of one run, as ``batchflux run`` gives them; ``run_batch`` and ``stream`` take any
    field as a keyword (``shard="0/4"``, ``retry_failed=True``, ``overrides={...}`` for ``--set``)."""

    manifest: Path
    api_key: str
    out_dir: Path | str | None = None  # default: out/<manifest stem>/; or a bucket URL (s3://…)
    spool: Path | None = None  # a bucket run's local side; default under the user's cache directory
    overrides: Mapping[str, str] = field(default_factory=dict)
    base_url: str = DEFAULT_BASE_URL
    upload_url: str | None = None
    history_url: str | None = None  # default: Segmind's, or {base}/inference-request/request-history
    engine: EngineConfig = field(default_factory=EngineConfig)
    shard: Shard | None = None
    upload_inputs: bool = False  # bucket input images go through Segmind's upload host, not signed URLs
    retry_failed: frozenset[str] | None = None  # None: failed jobs stay failed; empty: retry every cause
    fresh: bool = False
    redo_rejected: bool = False  # submit the jobs whose image a reviewer rejected, with a new seed
    dry_run: bool = False
    credit_check: bool = True
    price: float | None = None  # USD per image; default from the model's table
    report: bool = True
    metrics_file: Path | None = None
    timeout_s: float = 30.0
    # The manifest already loaded (from Python): not read again. ``write_jobs``: the jobs were given
    # as mappings, and the run keeps them at ``manifest`` (OUT/jobs.csv) as a CSV manifest, so that
    # export and later runs find them.
    jobs: Manifest | None = None
    write_jobs: bool = False

    @property
    def target(self) -> Path | str:
        """``--out`` (a path, or a bucket URL), or ``out/<manifest stem>/``."""
        return self.out_dir or Path("out") / self.manifest.stem

    def open_run_dir(self) -> RunDir:
        """The run directory, local or in a bucket. Raises :class:`TargetError`."""
        return open_run_dir(self.target, spool=self.spool)


@dataclass(slots=True)
class RunResult:
    """What a run ended with: the exit code (the command line's), the run directory, the summary
    (``summary.json``'s contents; ``None`` when nothing ran: a dry run, a manifest error, a held
    lock), one line for the user, and the resume plan and engine figures behind them."""

    exit_code: int
    out_dir: Path | None = None
    summary: RunSummary | None = None
    message: str = ""  # one line for the user: why the run stopped, or what it did
    plan: ResumePlan | None = None
    stats: EngineStats | None = None


class RunWatcher(Protocol):
    """Follows a run as it goes (:func:`batchflux.stream`): told the resume plan before the engine
    starts, then every job event as the engine appends it to the ledger."""

    def planned(self, plan: ResumePlan, out_dir: Path, price: float) -> None: ...

    def event(self, event: Event) -> None: ...


class Run:
    """One run; :meth:`request_stop` may be called from a signal handler while :meth:`execute` runs."""

    def __init__(
        self,
        options: RunOptions,
        *,
        progress: Progress | None = None,
        say: Callable[[str], None] | None = None,
        watcher: RunWatcher | None = None,
        run_dir: RunDir | None = None,
    ) -> None:
        self.opt = options
        self.run_dir = run_dir  # opened by the caller (for its log file), or by execute()
        self.progress = progress or NullProgress()
        self.say = say or (lambda line: log.info("%s", line))
        self.watcher = watcher
        self.engine: Engine | None = None
        self._stop_requests = 0
        self._pending_stop: float | None = None

    def request_stop(self, grace: float) -> None:
        """First call: stop submitting, drain for ``grace`` seconds. Second: stop at once.
        The stop comes first and the line for the user after it: however saying it fails, the
        run has already been told to stop."""
        self._stop_requests += 1
        engine = self.engine
        if engine is None:
            self._pending_stop = grace
            return
        if self._stop_requests == 1:
            in_flight = engine.in_flight
            engine.request_stop("interrupted", "signal", grace=grace)
            self.say(
                f"stopping: no new submits; waiting up to {grace:g}s for {in_flight} "
                "requests in flight (signal again to stop now)"
            )
        else:
            engine.abort("interrupted", "second signal")
            self.say("stopping now; the ledger is resumable")

    def stop_when_settled(self) -> bool:
        """Stop submitting and end as soon as no submit is on the wire; requests on the server are
        left to the next run, which polls them. False before the engine has started: nothing has
        been submitted, and cancelling :meth:`execute` is safe."""
        if self.engine is None:
            return False
        self.engine.stop_when_settled("interrupted", "stopped by the caller")
        return True

    async def execute(self) -> RunResult:
        opt = self.opt
        try:
            manifest = opt.jobs if opt.jobs is not None else load_manifest(opt.manifest, opt.overrides)
        except ManifestError as exc:
            return RunResult(ExitCode.USAGE, message=str(exc))
        for warning in manifest.warnings:
            self.say(f"warning: {warning}")
        if self.run_dir is None:
            try:
                self.run_dir = opt.open_run_dir()
            except TargetError as exc:
                return RunResult(ExitCode.USAGE, message=f"error: {exc}")
        rundir = self.run_dir
        out_dir = rundir.local
        jobs = [j for j in manifest.jobs if opt.shard is None or opt.shard.owns(j.id)]
        try:
            lock = await asyncio.to_thread(rundir.lock)  # a lapsing lease is waited out
        except LockHeld as exc:
            return RunResult(ExitCode.LOCKED, out_dir, message=str(exc))
        except StoreUnavailable as exc:
            return RunResult(ExitCode.TEMPFAIL, out_dir, message=f"error: {exc}; nothing was submitted")
        except OSError as exc:  # a file where the directory should be, no permission, a full disk
            return RunResult(ExitCode.USAGE, message=out_dir_unusable(rundir.where, exc))
        with lock:
            return await self._locked(manifest, jobs, rundir)

    async def _locked(self, manifest: Manifest, jobs: Sequence[Job], rundir: RunDir) -> RunResult:
        opt = self.opt
        out_dir = rundir.local
        ledger_path = rundir.ledger_path
        if opt.report:  # an image that leaves the working directory (a bucket's spool) keeps its thumbnail
            rundir.before_release = functools.partial(_keep_thumb, out_dir / THUMB_DIRNAME)
        try:
            restored = await asyncio.to_thread(rundir.restore)
            if opt.fresh and not opt.dry_run:
                moved = await asyncio.to_thread(rundir.move_ledger_aside)
                if moved:
                    self.say(f"--fresh: moved the old ledger to {moved}")
        except StoreUnavailable as exc:
            return RunResult(ExitCode.TEMPFAIL, out_dir, message=f"error: {exc}; nothing was submitted")
        if restored.note:
            self.say(f"note: {restored.note}")
        try:
            replay = replay_file(ledger_path)
        except LedgerCorrupt as exc:
            return RunResult(ExitCode.USAGE, out_dir, message=str(exc))
        merge_reviews(replay, out_dir)
        if replay.torn_tail:
            self.say(f"note: {replay.torn_tail}")
        lost = restored.lost_since
        adopt = lost is not None and opt.engine.history and not opt.dry_run and not opt.fresh
        if adopt and lost is not None and await self._adopt_lost_tail(jobs, replay, lost, ledger_path):
            replay = replay_file(ledger_path)
            merge_reviews(replay, out_dir)
        if not opt.dry_run:
            _remove_partial_downloads(out_dir)
        plan = plan_resume(
            jobs,
            replay,
            now=time.time(),
            retention_s=opt.engine.retention_s,
            retry_failed=opt.retry_failed,
            file_ok=rundir.file_check(),
        )
        plan = carry_redos(plan)
        keep: tuple[Decision, ...] = ()
        if opt.redo_rejected:
            plan, keep = plan_redo(plan)
            if not keep:
                self.say("--redo-rejected: no rejected image to redo")
        if replay.jobs:
            self.say(plan.summary_line())
            lookups = history_lookups(plan) if opt.engine.history else ""
            if lookups and not opt.dry_run:
                self.say(lookups)
        price = price_for(manifest.model, opt.price)
        counts = plan.counts()
        to_submit = counts[Action.SUBMIT]
        if opt.engine.max_new_submits is not None:
            to_submit = min(to_submit, opt.engine.max_new_submits)
        if opt.dry_run:
            return RunResult(ExitCode.OK, out_dir, message=dry_run_text(counts, to_submit, price), plan=plan)

        if opt.jobs is not None and opt.write_jobs:
            try:
                _write_jobs(opt.jobs, manifest.path)
            except OSError as exc:  # a full disk passes; a directory we may not write does not
                code = ExitCode.TEMPFAIL if exc.errno in DISK_FULL_ERRNOS else ExitCode.USAGE
                message = f"error: cannot write {manifest.path}: {exc.strerror or exc}; nothing was submitted"
                return RunResult(code, out_dir, message=message)
        if self.watcher is not None:
            self.watcher.planned(plan, out_dir, price)
        engine_cfg = replace(opt.engine, price_usd=price)
        started = time.time()
        run_id = uuid.uuid4().hex[:12]
        connector = aiohttp.TCPConnector(limit=256, limit_per_host=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            client = self._api_client(session)
            bucket_inputs = BucketInputs(client.upload if opt.upload_inputs else None)
            wanted = [d.job.params.get("input_image") for d in plan.select(Action.SUBMIT)]
            refusal_line = await _check_bucket_inputs(bucket_inputs, [str(u) for u in wanted if in_bucket(u)])
            if refusal_line is not None:
                code, message = refusal_line
                return RunResult(code, out_dir, message=message, plan=plan)
            if to_submit and opt.credit_check:
                refusal = await credit_preflight(client, to_submit, price)
                if refusal:
                    code, message = refusal
                    return RunResult(code, out_dir, message=message, plan=plan)
            ledger = LedgerWriter(ledger_path)
            try:
                if ledger.repaired_tail:
                    self.say(
                        f"note: set aside a torn last ledger line ({ledger.repaired_tail} bytes) "
                        f"into {ledger_path.name}.torn"
                    )
                try:
                    ledger.append(Event(EventType.RUN_STARTED, None, {
                        "run_id": run_id, "manifest": str(opt.manifest), "jobs": len(jobs),
                        "shard": str(opt.shard) if opt.shard else None, "version": __version__,
                        "pid": os.getpid(), "host": socket.gethostname(),
                        "manifest_path": str(manifest.path), "set": dict(opt.overrides), "price_usd": price,
                        "retention_s": engine_cfg.retention_s,
                    }))  # fmt: skip
                except WriteFailed as exc:
                    return RunResult(
                        ExitCode.TEMPFAIL, out_dir, message=f"error: {exc}; nothing was submitted"
                    )
                try:
                    self._keep_rejected(ledger, out_dir, keep)
                except (OSError, WriteFailed) as exc:
                    code = ExitCode.TEMPFAIL
                    return RunResult(code, out_dir, message=f"error: {exc}; nothing was submitted")
                engine = Engine(
                    config=engine_cfg,
                    client=client,
                    ledger=ledger,
                    out_dir=out_dir,
                    progress=self.progress,
                    rng=random.Random(),
                    pauses=replay.pauses,
                    latencies=replay.latencies(manifest.model, engine_cfg.poll.memory),
                )
                engine.history.use_ledger(jobs, replay.jobs, replay.runs)
                engine.input_url = bucket_inputs.url_for
                self.engine = engine
                if self.watcher is not None:
                    engine.on_event = self.watcher.event
                if self._pending_stop is not None:
                    engine.request_stop("interrupted", "signal", grace=self._pending_stop)
                self.progress.start(len(plan.decisions))
                try:
                    async with asyncio.TaskGroup() as tg:
                        shipping = tg.create_task(
                            ship_while_running(rundir, engine, ledger, engine_cfg.outage_after_s)
                        )
                        try:
                            stats = await engine.run(plan.decisions)
                        finally:
                            shipping.cancel()
                finally:
                    self.progress.close()
                if stats.recovered_submits or stats.recovered_results:
                    self.say(outcome.history_outcome(stats))
                code = outcome.exit_code(engine, stats)
                wall = time.time() - started
                try:
                    ledger.append(Event(EventType.RUN_FINISHED, None, {
                        "run_id": run_id, "exit_code": int(code), "wall_s": round(wall, 3),
                        "counts": outcome.counts(stats, engine),
                    }))  # fmt: skip
                except WriteFailed as exc:  # the run is over; the ledger has every job's events
                    log.error("could not record the end of the run: %s", exc)
            finally:
                try:
                    ledger.close()
                except WriteFailed as exc:
                    log.error("could not close the ledger: %s", exc)
            reviews = _reviews_now(ledger_path, jobs)
            summary = outcome.build_summary(
                manifest=str(opt.manifest),
                shard=str(opt.shard) if opt.shard else None,
                run_id=run_id,
                started=started,
                finished=time.time(),
                out_dir=out_dir,
                code=code,
                stats=stats,
                engine=engine,
                client=client,
                plan=plan,
                replay=replay,
                reviews=reviews,
            )
        try:
            write_summary(out_dir, summary)
        except OSError as exc:  # the exit code still tells the scheduler what happened
            self.say(f"error: could not write {SUMMARY_FILENAME}: {exc.strerror or exc}")
        # Thumbnails for a big batch take a while: keep the loop (and its signal handlers) free.
        await asyncio.to_thread(self._after, rundir, summary, jobs, manifest.model, price)
        closing = outcome.closing_line(code, stats, engine, rundir.where)
        try:
            await asyncio.to_thread(rundir.ship, final=True)
        except (StoreUnavailable, OSError) as exc:  # the spool keeps it all: the next run ships it
            code = ExitCode.TEMPFAIL if code in (ExitCode.OK, ExitCode.JOBS_FAILED) else code
            closing = f"{closing}; but could not ship the run to {rundir.where}: {exc} (the rerun does)"
        return RunResult(code, out_dir, summary, closing, plan, stats)

    def _keep_rejected(self, ledger: LedgerWriter, out_dir: Path, keep: Sequence[Decision]) -> None:
        """Every rejected image that a redo (or a changed job) would replace, kept aside and
        recorded (``set_aside``) before anything is submitted."""
        kept = 0
        for d in keep:
            rec = d.record
            assert rec is not None
            name = keep_rejected(out_dir, rec)
            if name is None:
                continue
            event = Event(EventType.SET_ASIDE, d.job.id, {
                "path": name, "from": rec.path, "request_id": rec.request_id, "sha256": rec.sha256,
            })  # fmt: skip
            ledger.append(event)
            if self.watcher is not None:  # stream()'s rows list the kept image, as results.jsonl does
                self.watcher.event(event)
            kept += 1
        if keep:
            self.say(f"--redo-rejected: {len(keep)} rejected jobs submitted again; {kept} images kept aside")

    def _api_client(self, session: aiohttp.ClientSession) -> ApiClient:
        opt = self.opt
        return ApiClient(
            session,
            api_key=opt.api_key,
            base_url=opt.base_url,
            upload_url=opt.upload_url,
            history_url=opt.history_url,
            timeout_s=opt.timeout_s,
        )

    async def _adopt_lost_tail(self, jobs: Sequence[Job], replay: Replay, since: float, ledger: Path) -> int:
        """The requests a lost runner made after its last shipped segment, from the request history."""
        opt = self.opt
        async with aiohttp.ClientSession() as session:
            client = self._api_client(session)
            with LedgerWriter(ledger) as writer:
                return await adopt_lost_tail(
                    client, jobs, replay, since, writer,
                    inline=opt.engine.inline_inputs, wait_s=opt.engine.history_wait_s, say=self.say,
                )  # fmt: skip

    def _after(
        self, rundir: RunDir, summary: RunSummary, jobs: Sequence[Job], model: str, price: float
    ) -> None:
        """Results, metrics file and report: a failure here is logged, never fatal."""
        out_dir = rundir.local
        try:
            write_run_results(out_dir, jobs, model, price)
        except (OSError, ExportError) as exc:
            log.error("could not write %s: %s", RESULTS_JSONL_FILENAME, exc)
        if self.opt.metrics_file is not None:
            try:
                from batchflux.run.metrics import update_metrics_file

                update_metrics_file(self.opt.metrics_file, summary)
            except OSError as exc:
                log.error("could not write the metrics file %s: %s", self.opt.metrics_file, exc)
        if self.opt.report:
            try:
                from batchflux.report import write_report

                rundir.fetch(THUMB_DIRNAME + "/")  # the thumbnails of images an earlier spool let go
                write_report([out_dir])
            except (OSError, ValueError, LedgerCorrupt, StoreUnavailable) as exc:
                log.error("could not write the report: %s", exc)


def _keep_thumb(thumb_dir: Path, image: Path, data: bytes) -> None:
    """The report's thumbnail of an image about to leave the working directory (Pillow is loaded
    only when a run directory lets images go)."""
    from batchflux.report.thumbs import ensure_stored_thumb

    ensure_stored_thumb(image, data, thumb_dir)


def _reviews_now(ledger_path: Path, jobs: Sequence[Job]) -> dict[str, int] | None:
    """This run's jobs' images by verdict as the run ends (its redos have none yet), read afresh:
    a review may have gone on during the run. None when nobody has reviewed here: every image is
    unreviewed, and the ledger need not be read again to say so."""
    if not (ledger_path.parent / REVIEWS_FILENAME).exists():
        return None
    try:
        replay = replay_file(ledger_path)
    except (OSError, LedgerCorrupt) as exc:
        log.warning("could not count the verdicts: %s", exc)
        return None
    merge_reviews(replay, ledger_path.parent)
    return count_verdicts(rec for job in jobs if (rec := replay.jobs.get(job.id)) is not None)


async def _check_bucket_inputs(inputs: BucketInputs, urls: list[str]) -> tuple[ExitCode, str] | None:
    """Every bucket object the run will send exists; else the exit code and line, before any spend."""
    if not urls:
        return None
    try:
        missing = await asyncio.to_thread(inputs.missing, urls)
    except StoreUnavailable as exc:
        return ExitCode.TEMPFAIL, f"error: cannot check the input images: {exc}; nothing was submitted"
    except TargetError as exc:
        return ExitCode.USAGE, f"error: {exc}; nothing was submitted"
    if not missing:
        return None
    shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
    return ExitCode.USAGE, f"error: {len(missing)} input images not found: {shown}; nothing was submitted"


def _write_jobs(manifest: Manifest, path: Path) -> None:
    """Jobs given from Python, kept as a CSV manifest in the run directory (replaced atomically)."""
    with atomic_text(path) as fh:
        write_csv_manifest(fh, (ManifestRow.of(job) for job in manifest.jobs), path.parent)


def out_dir_unusable(out_dir: Path | str, exc: OSError) -> str:
    """The one line for an output directory that cannot be created or written."""
    return f"error: cannot use {out_dir} as the output directory: {exc.strerror or exc}"


def _remove_partial_downloads(out_dir: Path) -> None:
    """Temp files of downloads cut short by a killed run (``.NAME.*.part`` beside the image). We hold
    the lock, so nothing is writing them; the images themselves are downloaded again if needed."""
    for part in out_dir.rglob(".*.part"):
        try:
            part.unlink()
            log.info("removed a partial download left by an earlier run: %s", part.name)
        except OSError as exc:
            log.warning("could not remove %s: %s", part, exc)

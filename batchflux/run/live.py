"""A run's result rows as jobs finish: the :class:`~batchflux.run.runner.RunWatcher` behind
:func:`batchflux.stream`.

The runner tells it the resume plan, then the engine tells it every job event it appends to the
ledger; it folds them into each job's record exactly as replay folds the ledger, so a row here is
the row ``results.jsonl`` will hold. A job's row is due when its ``downloaded`` or ``failed`` event
arrives (in that order, the completion order); jobs already finished before the run come first
(``include_finished``), and the jobs the run leaves unfinished (stopped, interrupted) come last,
as ``in_flight`` or ``pending``. Each job's row comes once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from batchflux.ledger import Event, EventType, JobRecord
from batchflux.ledger.records import usd
from batchflux.ledger.resume import Action, ResumePlan
from batchflux.manifest.job import Job
from batchflux.run.results import Dimensions, Known, manifest_row, param_names
from batchflux.run.results_out import image_dims

_FINISHED = (EventType.DOWNLOADED, EventType.FAILED)


class LiveRows:
    def __init__(self, *, include_finished: bool = True, dims: Dimensions = image_dims) -> None:
        self.include_finished = include_finished
        self.dims = dims
        self._due: asyncio.Queue[str | None] = asyncio.Queue()  # job ids, None at the end
        self._jobs: dict[str, Job] = {}
        self._records: dict[str, JobRecord] = {}
        self._costs: dict[str, tuple[str | None, float]] = {}
        self._open: dict[str, None] = {}  # jobs that still owe their row, in manifest order
        self._names: tuple[str, ...] = ()
        self._out_dir = ""
        self._price = 0.0
        self._closed = False

    # ---- RunWatcher ----------------------------------------------------------------------

    def planned(self, plan: ResumePlan, out_dir: Path, price: float) -> None:
        self._out_dir, self._price = str(out_dir), price
        jobs = [d.job for d in plan.decisions]
        self._names = param_names(jobs[0].model if jobs else "", jobs)
        for d in plan.decisions:
            job_id = d.job.id
            self._jobs[job_id] = d.job
            if d.record is not None:
                self._records[job_id] = replace(d.record)  # a copy: this one is folded further
            if d.action in (Action.SKIP, Action.FAILED):
                if self.include_finished:
                    self._due.put_nowait(job_id)
            else:
                self._open[job_id] = None

    def event(self, event: Event) -> None:
        job_id = event.job
        if job_id is None or job_id not in self._jobs:
            return
        rec = self._records.get(job_id)
        if rec is None:
            rec = self._records[job_id] = JobRecord(job_id)
        rec.apply_fields(event.event, event.ts or time.time(), event.data)
        cost = usd(event.data.get("credits_deduction"))
        if cost is not None:
            request_id = event.data.get("request_id")
            self._costs[job_id] = (request_id if isinstance(request_id, str) else None, cost)
        if event.event in _FINISHED and job_id in self._open:
            del self._open[job_id]
            self._due.put_nowait(job_id)

    # ---- the consumer's side -------------------------------------------------------------

    def close(self) -> None:
        """The run is over: the jobs it left unfinished are due too, then the end."""
        if self._closed:
            return
        self._closed = True
        for job_id in self._open:
            self._due.put_nowait(job_id)
        self._open.clear()
        self._due.put_nowait(None)

    async def next_row(self) -> dict[str, Any] | None:
        """The next due row, waiting for it; None once the run is over and every row was given."""
        job_id = await self._due.get()
        return None if job_id is None else self.row(job_id)

    def row(self, job_id: str) -> dict[str, Any]:
        rec = self._records.get(job_id)
        known = None
        if rec is not None:
            cost = self._costs.get(job_id)
            actual = cost[1] if cost is not None and cost[0] in (None, rec.request_id) else None
            known = Known(self._out_dir, rec, actual)
        return manifest_row(self._jobs[job_id], known, names=self._names, price=self._price, dims=self.dims)

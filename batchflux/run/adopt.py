"""A lost pod pays nothing twice: before a run that rebuilt its spool from the bucket submits
anything, the requests the lost runner made after its last shipped ledger segment are found in
the request history and adopted.

The events after the last segment went with the old spool, but every request they made is in the
account's request history. For each job of the manifest that holds no request in the ledger, an
intent is formed as of the lost tail's start (``since``: the last shipped event's time) and the
history is scanned per model from then, with the same matching rules as an open ``submit_intent``
(:mod:`batchflux.ledger.reconcile`): same body, created since, not held by another job. A row found
becomes the job's request: ``submit_intent`` and ``submitted`` (``recovered: true``, ``lost_tail:
true``) are appended to the ledger, and the resume plan polls it (or reads its record, when its
hour is over) instead of paying for it again.

A local input image matches only when it went out inline (``--inline-inputs``: its data URI is
rebuilt and hashed); an uploaded one went to a URL the lost tail alone knew, and two jobs that
differ only in their input must never swap requests, so such jobs are submitted again (a possible
duplicate charge, as for an intent without ``input_sent``). The history is an aid: when it cannot
answer, the run goes on as without it, and says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from batchflux.api import ApiClient, ApiError, HistoryPage, HistoryQuery, HistoryRow, RateLimited, Transient
from batchflux.engine.inputs import data_uri
from batchflux.ledger import Event, EventType, LedgerWriter
from batchflux.ledger.reconcile import (
    Holdings,
    Intent,
    input_sent,
    match_intents,
    scan_done,
    scan_windows,
)
from batchflux.ledger.records import JobState
from batchflux.ledger.replay import Replay
from batchflux.manifest.job import Job

log = logging.getLogger("batchflux.run")

MAX_PAGES = 50
TRIES = 5


def lost_tail_intents(jobs: Sequence[Job], replay: Replay, since: float, *, inline: bool) -> list[Intent]:
    """The jobs whose request, if the lost runner made one, the ledger does not know."""
    intents = []
    for job in jobs:
        rec = replay.jobs.get(job.id)
        if rec is not None and (rec.request_id is not None or rec.state is JobState.INTENT):
            continue  # holds a request, or an open intent the engine looks up itself
        if rec is not None and rec.state in (JobState.FAILED, JobState.DOWNLOADED):
            continue
        sent: str | None = None
        if job.local_input is not None:
            if not inline:
                continue  # uploaded to a URL only the lost tail knew: cannot be told apart
            try:
                uri = data_uri(job.local_input)
            except OSError:
                continue
            sent = input_sent(job.params, {"input_image": uri})
        intents.append(Intent(job.id, job.model, job.params, job.local_input is not None, sent, since))
    return intents


async def adopt_lost_tail(
    client: ApiClient,
    jobs: Sequence[Job],
    replay: Replay,
    since: float,
    ledger: LedgerWriter,
    *,
    inline: bool,
    wait_s: float,
    say: Callable[[str], None],
    clock: Callable[[], float] = time.time,
) -> int:
    """Adopt the lost tail's requests into ``ledger``; returns how many were adopted."""
    intents = lost_tail_intents(jobs, replay, since, inline=inline)
    if not intents:
        return 0
    landed_by = since + wait_s
    if clock() < landed_by:  # the lost runner's last requests may not have landed in the list yet
        await asyncio.sleep(landed_by - clock())
    try:
        rows = await _scan(client, intents, clock())
    except ApiError as exc:
        say(f"warning: the request history could not answer ({exc}); jobs without a request in "
            "the ledger are submitted as without it")  # fmt: skip
        return 0
    found = match_intents(intents, rows, Holdings.of(jobs, replay.jobs))
    by_id = {job.id: job for job in jobs}
    for job_id, row in sorted(found.items()):
        _record(ledger, by_id[job_id], row, client, since)
    if found:
        await ledger.commit()
        say(f"adopted {len(found)} requests made after the last shipped ledger segment "
            "(found in the request history; not paid again)")  # fmt: skip
    return len(found)


def _record(ledger: LedgerWriter, job: Job, row: HistoryRow, client: ApiClient, since: float) -> None:
    rid = row.request_id or ""
    sub = client.submission_for(rid)
    born = row.created_at if row.created_at is not None else since
    ledger.append(Event(EventType.SUBMIT_INTENT, job.id, {
        "fingerprint": job.fingerprint, "model": job.model, "params": dict(job.params),
        "input": str(job.local_input) if job.local_input else job.params.get("input_image"),
        "output": job.output, "lost_tail": True,
    }, ts=born))  # fmt: skip
    cost = {} if row.credits_deduction is None else {"credits_deduction": row.credits_deduction}
    ledger.append(Event(EventType.SUBMITTED, job.id, {
        "request_id": rid, "status_url": sub.status_url, "response_url": sub.response_url,
        "submitted_at": born, "recovered": True, "lost_tail": True, **cost,
    }))  # fmt: skip
    log.info("%s: its request %s (made by a runner that was lost) adopted from the request history",
             job.id, rid)  # fmt: skip


async def _scan(client: ApiClient, intents: Sequence[Intent], now: float) -> list[HistoryRow]:
    rows: list[HistoryRow] = []
    for model in sorted({i.model for i in intents}):
        for window in scan_windows([i.at for i in intents if i.model == model], now):
            for page in range(1, MAX_PAGES + 1):
                query = HistoryQuery(
                    page=page, from_date=window.from_date, to_date=window.to_date, model_name=model
                )
                got = await _ask(client, query)
                rows.extend(got.rows)
                if not got.more or scan_done(got.rows, window.since):
                    break
    return rows


async def _ask(client: ApiClient, query: HistoryQuery) -> HistoryPage:
    for attempt in range(1, TRIES + 1):
        try:
            return await client.history(query)
        except RateLimited as exc:
            if attempt == TRIES:
                raise
            await asyncio.sleep(exc.delay_s if exc.delay_s is not None else 2.0 * attempt)
        except Transient:
            if attempt == TRIES:
                raise
            await asyncio.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")

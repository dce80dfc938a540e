"""What the end of a run says: its exit code, its counts, the closing line, summary.json's contents
(with the failures kept from earlier runs) and what the request history saved. Pure: values in,
values out."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from batchflux.engine.core import Engine
from batchflux.engine.stats import EngineStats, FailedJob
from batchflux.ledger import Replay
from batchflux.ledger.resume import Action, ResumePlan
from batchflux.run.exitcodes import ExitCode
from batchflux.run.summary import RunSummary, iso_utc

if TYPE_CHECKING:
    from batchflux.api import ApiClient


def counts(stats: EngineStats, engine: Engine) -> dict[str, int]:
    in_flight = engine.in_flight
    return {
        "done": stats.done,
        "failed": stats.failed_total,
        "in_flight": in_flight,
        "pending": max(0, stats.remaining - in_flight),
    }


# Stops that retrying later fixes by itself (exit 75), unlike auth, credits or a budget (exit 3).
TEMPORARY_STOPS = frozenset({"unreachable", "disk"})


def exit_code(engine: Engine, stats: EngineStats) -> ExitCode:
    if engine.stop_reason == "interrupted":
        return ExitCode.INTERRUPTED
    if engine.stop_reason in TEMPORARY_STOPS:
        return ExitCode.TEMPFAIL
    if engine.stop_reason is not None:
        return ExitCode.STOPPED
    if stats.failed_total or stats.remaining:
        return ExitCode.JOBS_FAILED
    return ExitCode.OK


def closing_line(code: int, stats: EngineStats, engine: Engine, out_dir: Path | str) -> str:
    head = f"{stats.done}/{stats.total} done, {stats.failed_total} failed"
    if stats.remaining:
        head += f", {stats.remaining} left for the next run"
    if engine.stop_reason and engine.stop_reason != "interrupted":
        head += f" — stopped: {engine.stop_detail or engine.stop_reason}"
    return f"{head}. Output: {out_dir}"


def failed_before(plan: ResumePlan, replay: Replay) -> list[FailedJob]:
    """The jobs this run kept failed, as the ledger recorded them, each with the run it failed in."""
    kept = []
    for d in plan.select(Action.FAILED):
        rec = d.record
        if rec is None:
            continue
        started = [run.run_id for run in replay.runs if run.started_at <= rec.last_ts]
        kept.append(
            FailedJob(
                d.job.id,
                rec.cause or "",
                rec.error or "",
                rec.http_status,
                rec.request_id,
                run_id=started[-1] if started else None,
            )
        )
    return kept


def history_outcome(stats: EngineStats) -> str:
    """What the request history saved this run, in one line."""
    parts = []
    if stats.recovered_submits:
        n = stats.recovered_submits
        parts.append(f"{n} submit{'s' if n != 1 else ''} without an answer found, not paid again")
    if stats.recovered_results:
        n = stats.recovered_results
        parts.append(
            f"{n} expired request{'s' if n != 1 else ''} fetched from {'their' if n != 1 else 'its'} record"
        )
    return "request history: " + "; ".join(parts)


def build_summary(
    *,
    manifest: str,
    shard: str | None,
    run_id: str,
    started: float,
    finished: float,
    out_dir: Path,
    code: int,
    stats: EngineStats,
    engine: Engine,
    client: ApiClient,
    plan: ResumePlan,
    replay: Replay,
    reviews: dict[str, int] | None = None,
) -> RunSummary:
    """summary.json's contents at the end of a run (``started``/``finished``: unix times)."""
    calls = dict(client.calls)
    if "media" in calls:
        calls["download"] = calls.pop("media")
    outcomes = counts(stats, engine)
    if reviews is None:  # nobody has reviewed here: every image on disk is unreviewed
        reviews = {"approved": 0, "rejected": 0, "unreviewed": outcomes["done"]}
    return RunSummary(
        run_id=run_id,
        manifest=manifest,
        out_dir=str(out_dir),
        started_at=iso_utc(started),
        finished_at=iso_utc(finished),
        wall_s=round(finished - started, 3),
        exit_code=int(code),
        jobs=stats.total,
        counts=outcomes,
        skipped=stats.skipped,
        api_calls=calls,
        rate_limited=stats.rate_limited,
        retries=sum(stats.retries.values()),
        possible_duplicates=plan.possible_duplicates - stats.recovered_resumed + stats.ambiguous,
        expired_resubmits=stats.resubmitted_expired,
        estimated_spend_usd=round((stats.submitted - stats.server_failed) * engine.cfg.price_usd, 4),
        recovered_submits=stats.recovered_submits,
        recovered_results=stats.recovered_results,
        history_cost_usd=round(stats.history_cost_usd, 6),
        history_cost_requests=stats.history_cost_requests,
        failed_jobs=(*failed_before(plan, replay), *(replace(f, run_id=run_id) for f in stats.failures)),
        interrupted=engine.stop_reason == "interrupted",
        stop_reason=engine.stop_reason,
        shard=shard,
        learned_rate=str(rate) if (rate := engine.pacer.learned_rate) else None,
        reviews=reviews,
        redone=plan.counts()["rejected"],
    )

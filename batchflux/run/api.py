"""The Python entry points, re-exported by ``batchflux``: :func:`run_batch` runs a batch to its end;
:func:`stream` yields each job's result row as it finishes.

Both take a manifest path or the jobs themselves — an iterable of mappings, each a job as a
manifest row writes it — validated exactly as manifest rows are; every problem is raised at once
as one :class:`~batchflux.manifest.ManifestError`. Jobs given that way are kept in the run
directory as ``jobs.csv``, a CSV manifest, so that ``batchflux export`` and ``batchflux run``
find them later. Ledger, resume and pacing are the command line's: call again with the same jobs
and ``out_dir`` to resume.

Options are keywords: ``rpm=`` or ``rate=`` (``Rate`` or ``"60/6s"``), ``out_dir=``, ``api_key=``
(default ``$SEGMIND_API_KEY``), ``base_url=`` (default ``$BATCHFLUX_BASE_URL`` or Segmind's),
``history_url=`` (default ``$BATCHFLUX_HISTORY_URL``, else Segmind's or the base's), any
:class:`~batchflux.run.runner.RunOptions` field (``shard="0/4"``, ``retry_failed=True`` or a list of
causes, ``overrides={"aspect_ratio": "1:1"}``, ``report=False``, ``dry_run=``, ``price=`` …), any
:class:`~batchflux.engine.config.EngineConfig` field (``max_in_flight=``, ``max_cost_usd=`` …), or
a whole ``engine=EngineConfig(...)``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

from batchflux.engine.config import EngineConfig
from batchflux.engine.pacing import Rate, parse_rate
from batchflux.files.layout import JOBS_FILENAME
from batchflux.ledger import FAILURE_CAUSES
from batchflux.manifest import load_jobs, load_manifest
from batchflux.run.live import LiveRows
from batchflux.run.runner import DEFAULT_BASE_URL, Run, RunOptions, RunResult
from batchflux.run.shard import Shard, parse_shard
from batchflux.rundir import is_url

Jobs = str | os.PathLike[str] | Iterable[Mapping[str, Any]]

_RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(RunOptions)) - {
    "manifest", "api_key", "out_dir", "base_url", "engine", "jobs", "write_jobs",
}  # fmt: skip
_ENGINE_FIELDS = frozenset(f.name for f in dataclasses.fields(EngineConfig)) - {"rate", "price_usd"}


async def run_batch(
    manifest_or_jobs: Jobs,
    *,
    rpm: int | None = None,
    rate: Rate | str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    **options: Any,
) -> RunResult:
    """Run a manifest (a path) or jobs (mappings) to the end; the :class:`RunResult` holds the exit
    code, the summary and the run directory (with ``results.jsonl`` and ``results.csv``). Raises
    ``ManifestError`` for invalid jobs, ``ValueError``/``TypeError`` for bad options; API failures
    are never raised, they are in the result."""
    opts = run_options(manifest_or_jobs, rpm, rate, out_dir, api_key, base_url, options, "run_batch")
    return await Run(opts).execute()


def stream(
    manifest_or_jobs: Jobs,
    *,
    rpm: int | None = None,
    rate: Rate | str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    include_finished: bool = True,
    **options: Any,
) -> Stream:
    """``async for row in stream(jobs, rpm=50, out_dir="out/x")``: each job's result row (the fields
    of ``results.jsonl``) as the job finishes. Jobs already finished before (a resumed stream)
    come first unless ``include_finished=False``; jobs left unfinished (a stop) come last. The jobs
    are validated here, before anything runs. Leaving the loop early stops the run: submits already
    sent get their answer recorded, requests on the server are left to the next call, which polls
    them and resubmits nothing. ``Stream.result`` holds the :class:`RunResult` once the loop ends."""
    opts = run_options(manifest_or_jobs, rpm, rate, out_dir, api_key, base_url, options, "stream")
    return Stream(opts, include_finished=include_finished)


class Stream:
    """One run's result rows as an async iterator (iterate it once). Leaving the loop early ends
    the run when the iterator is closed: at once with ``async with stream(...) as rows:`` (or
    :meth:`aclose`), else when the loop collects it."""

    def __init__(self, options: RunOptions, *, include_finished: bool = True) -> None:
        self.options = options
        self.include_finished = include_finished
        self.result: RunResult | None = None
        self._rows_iter: AsyncGenerator[dict[str, Any], None] | None = None

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        if self._rows_iter is not None:
            raise RuntimeError("a stream runs once; call batchflux.stream() again to resume")
        self._rows_iter = self._rows()
        return self._rows_iter

    async def aclose(self) -> None:
        """Stop the run if it is still going, and wait until it has stopped (the ledger is closed)."""
        if self._rows_iter is not None:
            await self._rows_iter.aclose()

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _rows(self) -> AsyncGenerator[dict[str, Any], None]:
        live = LiveRows(include_finished=self.include_finished)
        run = Run(self.options, watcher=live)
        task = asyncio.create_task(_drive(run, live))
        try:
            while (row := await live.next_row()) is not None:
                yield row
            self.result = await task
        finally:
            if not task.done():  # the consumer left early, or was cancelled
                if not run.stop_when_settled():
                    task.cancel()  # the engine has not started: nothing was submitted
                try:
                    self.result = await task
                except asyncio.CancelledError:
                    if not task.cancelled():
                        raise


async def _drive(run: Run, live: LiveRows) -> RunResult:
    try:
        return await run.execute()
    finally:
        live.close()


def run_options(
    source: Jobs,
    rpm: int | None,
    rate: Rate | str | None,
    out_dir: str | os.PathLike[str] | None,
    api_key: str | None,
    base_url: str | None,
    options: Mapping[str, Any],
    caller: str,
) -> RunOptions:
    """Check the options and the jobs, and build the run's options. The jobs are loaded here, so
    that every problem is raised before anything runs."""
    key = api_key or os.environ.get("SEGMIND_API_KEY", "").strip()
    if not key:
        raise ValueError("no API key: pass api_key= or set SEGMIND_API_KEY")
    run_kw: dict[str, Any] = {}
    engine_kw: dict[str, Any] = {}
    for name, value in options.items():
        if name in _RUN_FIELDS:
            run_kw[name] = value
        elif name in _ENGINE_FIELDS:
            engine_kw[name] = value
        elif name != "engine":
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")
    run_kw.setdefault("history_url", os.environ.get("BATCHFLUX_HISTORY_URL") or None)
    engine = options.get("engine") or EngineConfig()
    if not isinstance(engine, EngineConfig):
        raise TypeError(f"{caller}(): engine= takes an EngineConfig")
    shard = _shard(run_kw.get("shard"))
    run_kw["shard"] = shard
    run_kw["retry_failed"] = _retry_failed(run_kw.get("retry_failed"))
    run_kw["overrides"] = {str(k): str(v) for k, v in dict(run_kw.get("overrides") or {}).items()}
    for name in ("metrics_file",):
        if run_kw.get(name) is not None:
            run_kw[name] = Path(run_kw[name])
    pace = _rate(rpm, rate) or engine.rate
    if pace is not None and shard is not None and (rpm is not None or rate is not None):
        pace = Rate(*shard.share_window(pace.limit, pace.period))
    engine = dataclasses.replace(engine, rate=pace, **engine_kw)
    out: Path | str | None = None
    if out_dir is not None:
        out = out_dir if isinstance(out_dir, str) and is_url(out_dir) else Path(out_dir)
    common: dict[str, Any] = {
        "api_key": key,
        "base_url": base_url or os.environ.get("BATCHFLUX_BASE_URL") or DEFAULT_BASE_URL,
        "engine": engine,
        **run_kw,
    }
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        loaded = load_manifest(path, common["overrides"])
        return RunOptions(manifest=path, out_dir=out, jobs=loaded, **common)
    if isinstance(source, Mapping | bytes):
        raise TypeError(f"{caller}() takes a manifest path or an iterable of jobs (mappings)")
    if out is None:
        raise ValueError(f"{caller}(): out_dir= is required with jobs given as mappings")
    if not isinstance(out, Path):
        raise ValueError(f"{caller}(): jobs given as mappings need a local out_dir=, not a bucket URL")
    jobs_file = out / JOBS_FILENAME
    loaded = dataclasses.replace(load_jobs(source, overrides=common["overrides"]), path=jobs_file.resolve())
    return RunOptions(manifest=jobs_file, out_dir=out, jobs=loaded, write_jobs=True, **common)


def _rate(rpm: int | None, rate: Rate | str | None) -> Rate | None:
    if rpm is not None and rate is not None:
        raise ValueError("give rpm= or rate=, not both")
    if rpm is not None:
        if isinstance(rpm, bool) or not isinstance(rpm, int) or rpm < 1:
            raise ValueError(f"rpm= must be a whole number of at least 1, not {rpm!r}")
        return Rate(rpm, 60.0)
    if isinstance(rate, str):
        return parse_rate(rate)
    return rate


def _shard(value: object) -> Shard | None:
    if value is None or isinstance(value, Shard):
        return value
    if isinstance(value, str):
        return parse_shard(value)
    raise TypeError(f"shard= takes 'K/N' or a Shard, not {value!r}")


def _retry_failed(value: object) -> frozenset[str] | None:
    if value is None or value is False:
        return None
    if value is True:
        return frozenset()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, Iterable):
        raise TypeError(f"retry_failed= takes True, False or causes, not {value!r}")
    causes = frozenset(str(cause).strip() for cause in value if str(cause).strip() not in ("", "all"))
    unknown = causes - set(FAILURE_CAUSES)
    if unknown:
        known = ", ".join(FAILURE_CAUSES)
        raise ValueError(f"retry_failed=: unknown cause(s) {', '.join(sorted(unknown))}; known: {known}")
    return causes

"""Reading run directories for their result rows: ``batchflux export``, and ``OUT/results.*`` at the
end of every run.

Which manifest: a run directory's rows follow the manifest its last run read — the ledger's
``run_started`` event records the manifest's resolved path (``manifest_path``; older ledgers only
the path as given, ``manifest``, tried from the current directory), the ``--set`` values and the
price per image. ``--manifest FILE`` (and ``--set``) name another. Several directories (the shards
of one batch) must have run the same manifest; each keeps the jobs of its shard, so the rows of
several shards are the union of each one's rows.

Memory: the ledgers' records and the manifest's jobs, one each per job; the rows are streamed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from batchflux.files.layout import LEDGER_FILENAME, RESULTS_CSV_FILENAME, RESULTS_JSONL_FILENAME
from batchflux.ledger import JobRecord, LedgerCorrupt, Replay, RunRecord, replay_lines
from batchflux.ledger.records import usd
from batchflux.ledger.reviews import merge_reviews
from batchflux.manifest import Manifest, load_manifest
from batchflux.manifest.job import Job
from batchflux.manifest.schema import price_for
from batchflux.manifest.write import ManifestRow
from batchflux.run.results import (
    Dimensions,
    columns,
    current,
    merge,
    param_names,
    result_rows,
    review_of,
    status_of,
)
from batchflux.run.results_out import atomic_text, image_dims, write_csv, write_jsonl_each
from batchflux.run.shard import Shard, parse_shard

Costs = dict[str, tuple[str | None, float]]  # job id → (request id, credits_deduction) of its latest


class ExportError(Exception):
    """A run directory or its manifest cannot be read; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class RunDirView:
    """One run directory as read: its ledger's replay and the actual costs its events recorded."""

    name: str  # as the user named it: the rows' out_dir
    replay: Replay
    costs: Costs = field(default_factory=dict)

    @property
    def last_start(self) -> RunRecord | None:
        return self.replay.last_run

    def shard(self) -> Shard | None:
        run = self.last_start
        text = run.data.get("shard") if run else None
        try:
            return parse_shard(text) if isinstance(text, str) else None
        except ValueError:
            return None

    def manifest_ref(self) -> str | None:
        run = self.last_start
        if run is None:
            return None
        for key in ("manifest_path", "manifest"):
            value = run.data.get(key)
            if isinstance(value, str) and value:
                return value
        return None

    def overrides(self) -> dict[str, str]:
        run = self.last_start
        found = run.data.get("set") if run else None
        if not isinstance(found, dict):
            return {}
        return {str(k): str(v) for k, v in found.items()}

    def price(self) -> float | None:
        run = self.last_start
        value = run.data.get("price_usd") if run else None
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def read_run_dir(path: Path, name: str | None = None) -> RunDirView:
    """Replay ``path``'s ledger, noting every job event's ``credits_deduction`` on the way (one pass)."""
    ledger = path / LEDGER_FILENAME
    if not ledger.is_file():
        why = (
            "no such directory" if not path.is_dir() else "not a run directory, or nothing has run there yet"
        )
        raise ExportError(f"no ledger at {ledger} ({why})")
    costs: Costs = {}
    try:
        with ledger.open("rb") as fh:
            replay = replay_lines(_noting_costs(fh, costs), str(ledger))
        merge_reviews(replay, path)
    except LedgerCorrupt as exc:
        raise ExportError(str(exc)) from None
    except OSError as exc:
        raise ExportError(f"cannot read {ledger}: {exc.strerror or exc}") from None
    return RunDirView(name if name is not None else str(path), replay, costs)


def _noting_costs(lines: IO[bytes], costs: Costs) -> Iterator[bytes]:
    for line in lines:
        if b'"credits_deduction"' in line:
            _note_cost(line, costs)
        yield line


def _note_cost(line: bytes, costs: Costs) -> None:
    try:
        event = json.loads(line)
    except ValueError:  # a torn line: replay reports it
        return
    if not isinstance(event, dict):
        return
    job, cost, request_id = event.get("job"), usd(event.get("credits_deduction")), event.get("request_id")
    if isinstance(job, str) and cost is not None:
        costs[job] = (request_id if isinstance(request_id, str) else None, cost)


@dataclass(frozen=True, slots=True)
class Export:
    """The rows of one or more run directories against one manifest."""

    manifest: Manifest
    views: tuple[RunDirView, ...]
    params: tuple[str, ...]
    price: float

    @property
    def header(self) -> tuple[str, ...]:
        return columns(self.params)

    def jobs(self) -> Iterator[Job]:
        """The manifest's jobs that belong to the directories' shards, in manifest order."""
        shards = [view.shard() for view in self.views]
        if any(s is None for s in shards):
            yield from self.manifest.jobs
            return
        owned = [s for s in shards if s is not None]
        yield from (job for job in self.manifest.jobs if any(s.owns(job.id) for s in owned))

    def rows(
        self, statuses: frozenset[str] | None = None, dims: Dimensions = image_dims
    ) -> Iterator[dict[str, Any]]:
        known = merge([(view.name, view.replay, view.costs) for view in self.views])
        price = self.price
        rows = result_rows(
            self.jobs(),
            known,
            names=self.params,
            price=lambda model: price if model == self.manifest.model else price_for(model),
            dims=dims,
        )
        if statuses is None:
            return rows
        return (row for row in rows if row["status"] in statuses or review_of(row) in statuses)

    def manifest_rows(self, statuses: frozenset[str] | None = None) -> Iterator[ManifestRow]:
        """The selected jobs as manifest rows, in the rows' order (``--as-manifest``): a manifest
        job as the manifest has it, one the manifest no longer lists as its ledger recorded it."""
        known = merge([(view.name, view.replay, view.costs) for view in self.views])
        seen: set[str] = set()
        for job in self.jobs():
            seen.add(job.id)
            k = known.get(job.id)
            rec = current(job, k.record) if k else None
            status = status_of(rec)
            if statuses is None or status in statuses or _review_of(status, rec) in statuses:
                yield ManifestRow.of(job)
        if statuses is not None and "not_in_manifest" not in statuses:
            return
        rest = (k.record for jid, k in known.items() if jid not in seen)
        for rec in sorted(rest, key=lambda r: (r.first_ts, r.job_id)):
            local = rec.input if rec.input and not rec.input.startswith(("http://", "https://")) else None
            yield ManifestRow(rec.job_id, rec.model, rec.params, rec.output, Path(local) if local else None)


def _review_of(status: str, rec: JobRecord | None) -> str:
    verdict = rec.verdict if rec is not None else None
    if verdict is not None and verdict.verdict:
        return verdict.verdict
    return "unreviewed" if status == "done" else ""


def prepare_export(
    dirs: Sequence[Path],
    *,
    names: Sequence[str] | None = None,
    manifest: Path | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Export:
    """Read the directories and their manifest. Raises :class:`ExportError` for a missing or corrupt
    ledger, a manifest that cannot be found, and :class:`ManifestError` for one that does not load."""
    views = tuple(read_run_dir(d, n) for d, n in zip(dirs, names or [str(d) for d in dirs], strict=True))
    path, recorded = _manifest_of(views, manifest)
    loaded = load_manifest(path, dict(overrides) if overrides else recorded)
    records = [rec for view in views for rec in view.replay.jobs.values()]
    prices = [p for view in views if (p := view.price()) is not None]
    return Export(
        manifest=loaded,
        views=views,
        params=param_names(loaded.model, loaded.jobs, records),
        price=prices[0] if prices else price_for(loaded.model),
    )


def _manifest_of(views: Sequence[RunDirView], given: Path | None) -> tuple[Path, dict[str, str]]:
    if given is not None:
        return given, {}
    refs: dict[str, RunDirView] = {}
    for view in views:
        ref = view.manifest_ref()
        if ref is None:
            raise ExportError(
                f"{view.name}: its ledger does not say which manifest ran; pass --manifest FILE"
            )
        refs.setdefault(ref, view)
    if len(refs) > 1:
        shown = ", ".join(f"{v.name}: {ref}" for ref, v in refs.items())
        raise ExportError(
            f"the directories ran different manifests ({shown}); export them apart or pass --manifest"
        )
    ref, view = next(iter(refs.items()))
    path = Path(ref)
    if not path.is_file():
        raise ExportError(
            f"{view.name}: its last run read the manifest {ref}, which is not there now; pass --manifest FILE"
        )
    return path, view.overrides()


def write_run_results(
    out_dir: Path, jobs: Sequence[Job], model: str, price: float, dims: Dimensions = image_dims
) -> int:
    """``OUT/results.jsonl`` and ``OUT/results.csv`` for a run's jobs (this shard's), each replaced
    atomically, from one pass over the rows; the ledger is read afresh, so the rows say what it
    holds now. Returns the number of rows."""
    view = read_run_dir(out_dir)
    known = merge([(str(out_dir), view.replay, view.costs)])
    names = param_names(model, jobs, view.replay.jobs.values())
    rows = result_rows(
        jobs, known, names=names, price=lambda m: price if m == model else price_for(m), dims=dims
    )
    with (
        atomic_text(out_dir / RESULTS_JSONL_FILENAME) as jsonl,
        atomic_text(out_dir / RESULTS_CSV_FILENAME, bom=True) as table,
    ):
        written = write_csv(table, write_jsonl_each(jsonl, rows), columns(names))
    return written

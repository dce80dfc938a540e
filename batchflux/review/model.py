"""What the review page shows: the report's job rows, in manifest order, with their verdicts.

The rows are the report's own (:func:`batchflux.report.model.build_model` over the directories
read as the report reads them, review log merged), so the two pages agree on every job. The order
is the manifest's (the one the directories' last run read, as ``export`` finds it); when it cannot
be read, the order the ledgers first saw the jobs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from batchflux.ledger import JobRecord, Replay
from batchflux.manifest import ManifestError, load_manifest
from batchflux.report.build import read_run_dir
from batchflux.report.model import build_model
from batchflux.report.render import Links, card_data
from batchflux.report.rows import JobRow, RunDir

log = logging.getLogger("batchflux.review")

REVIEWABLE = "done"  # only a job with its image on disk can be approved or rejected
FAILED = frozenset({"failed", "expired"})


@dataclass(frozen=True, slots=True)
class ReviewModel:
    title: str
    dirs: tuple[RunDir, ...]
    rows: tuple[JobRow, ...]  # in manifest order
    by_key: dict[str, JobRow] = field(default_factory=dict)

    def record(self, row: JobRow) -> JobRecord:
        """The ledger's record the row was made from (its review log merged)."""
        replay: Replay = next(rd.replay for rd in self.dirs if rd.path == row.out_dir)
        return replay.jobs[row.job_id]


def load_model(out_dirs: Sequence[Path]) -> ReviewModel:
    """Read the directories (review logs merged) into rows. Raises
    :class:`~batchflux.report.ReportError` for a directory without a readable ledger."""
    dirs = [read_run_dir(Path(d)) for d in out_dirs]
    model = build_model(dirs)
    order = manifest_order(dirs)
    rows = sorted(model.rows, key=lambda r: order.get(r.job_id, len(order))) if order else list(model.rows)
    return ReviewModel(model.title, tuple(dirs), tuple(rows), {r.key: r for r in rows})


def manifest_order(dirs: Sequence[RunDir]) -> dict[str, int]:
    """Job id -> its place in the manifest the directories' last run read; empty when unknown."""
    for rd in dirs:
        run = rd.replay.last_run
        if run is None:
            continue
        refs = [v for k in ("manifest_path", "manifest") if isinstance(v := run.data.get(k), str) and v]
        ref = next((r for r in refs if Path(r).is_file()), None)
        if ref is None:
            continue
        recorded = run.data.get("set")
        overrides = {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {}
        try:
            st = Path(ref).stat()
        except OSError:
            continue
        return _order(ref, st.st_size, st.st_mtime_ns, tuple(sorted(overrides.items())))
    return {}


@functools.lru_cache(maxsize=4)
def _order(ref: str, size: int, mtime_ns: int, overrides: tuple[tuple[str, str], ...]) -> dict[str, int]:
    """A manifest's job order, read once while the file stays as it is (a page reloaded while a
    run goes on reads the ledgers again, not the manifest: 10 000 jobs take ~1.4 s to validate)."""
    try:
        manifest = load_manifest(Path(ref), dict(overrides))
    except (ManifestError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.info("review: the manifest %s does not load (%s); ledger order", ref, first)
        return {}
    return {job.id: i for i, job in enumerate(manifest.jobs)}


def card(row: JobRow, token: str, exists: Callable[[Path], bool] = Path.is_file) -> dict[str, object]:
    """A row as the page's card: the report's card, its images served by the review server
    (``./img?k=KEY&w=it|ih|ot|oh``: the input's or output's thumbnail or full size); ``exists``
    says whether an image is there to serve."""
    have_in = row.input_path is not None and row.input_path.is_file()
    have_out = row.output_path is not None and exists(row.output_path)
    base = f"./img?k={quote(row.key, safe='')}&w="
    tail = f"&token={quote(token, safe='')}"
    links = Links(
        input_thumb=f"{base}it{tail}" if have_in else None,
        input_full=f"{base}ih{tail}" if have_in else None,
        output_thumb=f"{base}ot{tail}" if have_out else None,
        output_full=f"{base}oh{tail}" if have_out else None,
        output_missing=row.status == REVIEWABLE and not have_out,
    )
    return card_data(row, links)

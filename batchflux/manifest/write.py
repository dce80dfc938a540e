"""Jobs back out as a CSV manifest that loads into the same jobs: ids, parameters and output paths.

Used for ``batchflux export --as-manifest`` (failed jobs to edit and run again) and for the record a
run keeps of jobs given from Python (``OUT/jobs.csv``). Every job's id and every parameter it has
(defaults applied) is written out, so the file does not depend on the manifest it came from; the
``output`` cell is left empty where the job uses the default ``{id}.{ext}``. A local input image is
written relative to the new file's folder (absolute when it cannot be), since a CSV's paths are
read relative to the CSV. Cells are written exactly as the values are: a manifest must rerun the
same jobs, so nothing is escaped for spreadsheets here.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from batchflux.manifest.job import Job
from batchflux.manifest.params import ID_KEY, OUTPUT_KEY
from batchflux.manifest.schema import DEFAULT_MODEL, FLUX_KONTEXT_MAX


class NotWritable(ValueError):
    """The jobs cannot be written as a CSV manifest (the message says why)."""


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """One job as a manifest row. ``local_input`` (absolute) replaces a local ``input_image``."""

    id: str
    model: str
    params: Mapping[str, Any] = field(hash=False)
    output: str
    local_input: Path | None = None

    @classmethod
    def of(cls, job: Job) -> ManifestRow:
        return cls(job.id, job.model, job.params, job.output, job.local_input)


CSV_COLUMNS: tuple[str, ...] = (ID_KEY, *FLUX_KONTEXT_MAX.params, OUTPUT_KEY)


def write_csv_manifest(fh: TextIO, rows: Iterable[ManifestRow], base_dir: Path) -> int:
    """Write a header and one row per job to ``fh`` (opened with ``newline=""``); returns the rows
    written. Raises :class:`NotWritable` for a job of another model or with an unknown parameter
    (a CSV manifest is for flux-kontext-max)."""
    out = csv.writer(fh)
    out.writerow(CSV_COLUMNS)
    written = 0
    for row in rows:
        out.writerow(csv_cells(row, base_dir))
        written += 1
    return written


def csv_cells(row: ManifestRow, base_dir: Path) -> list[str]:
    if row.model != DEFAULT_MODEL:
        raise NotWritable(f"job {row.id!r} is for model {row.model!r}; a CSV manifest is for {DEFAULT_MODEL}")
    unknown = sorted(set(row.params) - set(FLUX_KONTEXT_MAX.params))
    if unknown:
        raise NotWritable(f"job {row.id!r} has parameters a CSV manifest cannot hold: {', '.join(unknown)}")
    cells = [row.id]
    for name in FLUX_KONTEXT_MAX.params:
        value = row.params.get(name)
        if name == "input_image" and row.local_input is not None:
            value = relative_path(row.local_input, base_dir)
        cells.append("" if value is None else str(value))
    cells.append(_output_cell(row))
    return cells


def relative_path(path: Path, base_dir: Path) -> str:
    """``path`` relative to ``base_dir`` with '/' separators; absolute when there is no such path."""
    try:
        rel = os.path.relpath(path, base_dir)
    except ValueError:  # another drive (Windows)
        return str(path)
    return rel.replace(os.sep, "/")


def _output_cell(row: ManifestRow) -> str:
    fmt = row.params.get("output_format", "png")
    if row.output == f"{row.id}.{str(fmt).lower()}":
        return ""
    return row.output.replace("{", "{{").replace("}", "}}")  # a literal path as a template

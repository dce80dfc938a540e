"""The report's inputs and rows: one :class:`RunDir` per output directory read, one :class:`JobRow` a job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchflux.ledger import Replay


@dataclass(frozen=True, slots=True)
class RunDir:
    """One output directory as read from disk: its ledger's replay, its summary.json if any, and
    what its events recorded its requests cost (where the request history said so)."""

    path: Path
    replay: Replay
    summary: Mapping[str, Any] | None = None
    costs: Mapping[str, float] = field(default_factory=dict)  # request id -> credits_deduction recorded


@dataclass(frozen=True, slots=True)
class JobRow:
    key: str  # unique within the report ("job" or "shard/job" when merged)
    job_id: str
    shard: str  # the output directory's name when several are merged, else ""
    out_dir: Path
    status: str  # one of STATUS_ORDER
    prompt: str
    params: tuple[tuple[str, str], ...]  # display form, prompt excluded, inline data cut short
    input_path: Path | None  # local input image (absolute when the ledger says so)
    input_url: str | None  # remote input (http/https), linked but never loaded by the page
    output_path: Path | None  # where the output image is (or would be)
    inference_s: float | None
    submitted_s: float | None  # seconds since the report's time origin
    completed_s: float | None
    attempts: int
    possible_duplicates: int
    request_id: str | None
    cause: str | None
    error: str | None
    http_status: int | None
    model: str
    review: str | None = None  # "approved" / "rejected": the verdict on the image it has now
    review_note: str = ""
    output_sha256: str | None = None  # the output image's content as downloaded, when the ledger says
    output_size: int | None = None

"""The unit of work: one image edit, fully resolved from the manifest and validated."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Job:
    """One validated edit.

    ``params`` are the model parameters exactly as they will be sent, defaults applied,
    except that a local ``input_image`` still holds the manifest's path string: the engine
    replaces it with an uploaded URL (or a data URI) at submit time. ``local_input`` is the
    resolved absolute path in that case, ``None`` for URL inputs or no input.

    ``fingerprint`` is a stable hash of the canonical parameters plus the input file's
    content hash: a later run compares it with the ledger's to tell a changed job.
    """

    id: str
    index: int
    model: str
    params: dict[str, Any] = field(hash=False)
    output: str  # path relative to the run directory, already checked to stay inside it
    fingerprint: str
    local_input: Path | None = None
    source: str = ""  # "file:line", for messages
    redo: int = 0  # a redo of a rejected image (``--redo-rejected``): its number; params carry its seed

    @property
    def output_format(self) -> str:
        return str(self.params.get("output_format", "png"))

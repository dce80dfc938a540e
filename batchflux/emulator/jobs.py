"""One request's server-side record and the bodies the API serves for it (pure).

The record's state is a function of the clock: QUEUED before its slot starts, PROCESSING until it
finishes, then COMPLETED, or FAILED when an error was decided at submission (moderation, or
invalid parameters with ``invalid_params_at="run"``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from batchflux.emulator.schedule import Slot

QUEUED, PROCESSING, COMPLETED, FAILED = "QUEUED", "PROCESSING", "COMPLETED", "FAILED"
STATES: tuple[str, ...] = (QUEUED, PROCESSING, COMPLETED, FAILED)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def body_digest(slug: str, body: Any) -> str:
    """Identifies a submit body: equal digests mean the same slug and the same JSON content."""
    return hashlib.sha256(f"{slug}\n{canonical_json(body)}".encode()).hexdigest()


@dataclass(slots=True)
class JobRecord:
    """A request as the server keeps it. Times are loop-clock seconds (see ``Slot``)."""

    request_id: str
    key: str
    slug: str
    params: dict[str, Any]
    digest: str  # body_digest(slug, params)
    ext: str  # output file extension, "png" or "jpg"
    slot: Slot
    error: str | None  # set: the job FAILs with this message when its slot finishes
    price: float = 0.0  # charged at submit (refunded when it FAILs): the history's credits_deduction
    status_calls: int = 0
    result_calls: int = 0
    sha256: str | None = None  # of the output bytes, once rendered

    def state(self, now: float) -> str:
        if now < self.slot.started:
            return QUEUED
        if now < self.slot.finished:
            return PROCESSING
        return FAILED if self.error is not None else COMPLETED

    def expired(self, now: float, retention_s: float) -> bool:
        return now - self.slot.submitted >= retention_s

    def metrics(self, now: float) -> dict[str, Any]:
        slot = self.slot
        metrics: dict[str, Any] = {}
        if now >= slot.started:
            metrics["queue_time"] = round(slot.started - slot.submitted, 4)
        if now >= slot.finished:
            metrics["inference_time"] = round(slot.finished - slot.started, 4)
        return metrics

    def status_body(self, now: float) -> tuple[int, dict[str, Any]]:
        """HTTP status and JSON body for ``GET .../status``: FAILED is served as 422."""
        state = self.state(now)
        body: dict[str, Any] = {"status": state, "request_id": self.request_id}
        if state == FAILED:
            body["error"] = self.error
        body["metrics"] = self.metrics(now)
        return (422 if state == FAILED else 200), body

    def result_body(self, now: float, output_url: str) -> tuple[int, dict[str, Any]]:
        """HTTP status and JSON body for ``GET /v2/requests/{id}``; non-terminal gives 200 without output."""
        code, body = self.status_body(now)
        if body["status"] == COMPLETED:
            body["output"] = output_url
        return code, body

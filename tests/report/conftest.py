"""Run directories for report tests, written exactly as the engine writes them.

``fabricate`` (a fixture returning a function) writes real images with Pillow and a ledger with
:class:`LedgerWriter` and :class:`Event`, event by event, with explicit timestamps:
``run_started``, then per job ``submit_intent`` → ``submitted`` → ``state`` → ``result`` →
``downloaded`` for successes, ``failed`` (with a cause and the server's error) for failures,
then ``run_finished``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from batchflux.ledger import LEDGER_FILENAME, Event, EventType, LedgerWriter
from batchflux.ledger.records import NOT_SUBMITTED

T0 = 1_760_000_000.0


@dataclass(frozen=True)
class Spec:
    job_id: str
    prompt: str = "make it blue"
    outcome: str = "done"  # done | failed | expired | in_flight | intent | not_submitted | completed
    cause: str = "moderation"
    error: str = "content blocked: nsfw"
    http_status: int | None = 422
    params: dict[str, Any] = field(default_factory=dict)
    input_url: str | None = None  # a remote input instead of a local file
    at: float | None = None  # seconds after T0 of the submit; default: index * 0.5


def make_image(
    path: Path, size: tuple[int, int] = (96, 64), colour: tuple[int, int, int] = (200, 80, 40)
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def fabricate_run(
    out_dir: Path,
    specs: Sequence[Spec],
    *,
    inputs_dir: Path | None = None,
    manifest: str = "catalog.yaml",
    finished: bool = True,
) -> Path:
    inputs_dir = inputs_dir or out_dir.parent / "inputs"
    with LedgerWriter(out_dir / LEDGER_FILENAME) as w:
        w.append(
            Event(
                EventType.RUN_STARTED, data={"run_id": "r1", "manifest": manifest, "jobs": len(specs)}, ts=T0
            )
        )
        for i, spec in enumerate(specs):
            t = T0 + (spec.at if spec.at is not None else i * 0.5)
            rid = f"req-{i:04d}"
            if spec.input_url:
                inp = spec.input_url
            else:
                inp = str(make_image(inputs_dir / f"in-{i}.png", colour=(20 * (i % 12), 120, 200)))
            params = {"prompt": spec.prompt, "input_image": inp, "output_format": "png", **spec.params}
            output = f"{spec.job_id}.png"
            w.append(
                Event(
                    EventType.SUBMIT_INTENT,
                    spec.job_id,
                    {"fingerprint": f"fp{i}", "model": "flux-kontext-max", "params": params, "input": inp,
                     "output": output, "attempt": 1},
                    ts=t,
                )
            )  # fmt: skip
            if spec.outcome == "intent":
                continue
            if spec.outcome == "not_submitted":  # the submit certainly created nothing
                w.append(Event(EventType.STATE, spec.job_id, {"status": NOT_SUBMITTED}, ts=t + 0.05))
                continue
            w.append(
                Event(
                    EventType.SUBMITTED,
                    spec.job_id,
                    {"request_id": rid, "status_url": f"http://127.0.0.1:1/v2/requests/{rid}/status",
                     "response_url": f"http://127.0.0.1:1/v2/requests/{rid}", "submitted_at": t + 0.05},
                    ts=t + 0.05,
                )
            )  # fmt: skip
            w.append(
                Event(EventType.STATE, spec.job_id, {"request_id": rid, "status": "PROCESSING"}, ts=t + 0.5)
            )
            if spec.outcome == "in_flight":
                continue
            if spec.outcome == "failed":
                w.append(
                    Event(
                        EventType.FAILED,
                        spec.job_id,
                        {"request_id": rid, "cause": spec.cause, "error": spec.error,
                         "http_status": spec.http_status},
                        ts=t + 2.0,
                    )
                )  # fmt: skip
                continue
            if spec.outcome == "expired":
                w.append(Event(EventType.EXPIRED, spec.job_id, {"request_id": rid}, ts=t + 3.0))
                continue
            w.append(
                Event(
                    EventType.RESULT,
                    spec.job_id,
                    {"request_id": rid, "output_url": f"http://127.0.0.1:1/media/{rid}.png",
                     "metrics": {"inference_time": 1.25 + i % 3}, "completed_at": t + 2.0},
                    ts=t + 2.0,
                )
            )  # fmt: skip
            if spec.outcome == "completed":
                continue
            img = make_image(out_dir / output, (128, 72), (40, 160, 20 * (i % 12)))
            data = img.read_bytes()
            w.append(
                Event(
                    EventType.DOWNLOADED,
                    spec.job_id,
                    {"request_id": rid, "path": output, "size": len(data),
                     "sha256": hashlib.sha256(data).hexdigest()},
                    ts=t + 2.2,
                )
            )  # fmt: skip
        if finished:
            end = T0 + len(specs) * 0.5 + 3.0
            w.append(
                Event(
                    EventType.RUN_FINISHED, data={"run_id": "r1", "exit_code": 1, "wall_s": end - T0}, ts=end
                )
            )
    return out_dir


@pytest.fixture
def fabricate() -> Callable[..., Path]:
    return fabricate_run


@pytest.fixture
def spec() -> type[Spec]:
    return Spec

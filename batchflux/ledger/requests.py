"""Every request a ledger knows, not only each job's latest (pure fold, plus a one-pass reader).

:class:`~batchflux.ledger.records.JobRecord` keeps a job's latest attempt; what was paid needs
them all. :class:`RequestLog` folds the events that say so:

- ``submitted``: a request the server created for a job (heard from the POST, or found in the
  request history), with the price per image of the run that sent it (its ``run_started``);
- ``credits_deduction`` on ``submitted``, ``result`` or ``failed``: what Segmind said that request
  cost;
- ``failed`` with a request id and a server cause (moderation, invalid, server): the server
  FAILED it, and a FAILED request is not billed;
- ``submit_intent``: what each POST sent (kept when ``keep_intents`` asks for them), as the
  :class:`~batchflux.ledger.reconcile.Intent` that body matching reads; and which of them never
  heard an answer (no ``submitted``, ``failed`` or ``state`` NOT_SUBMITTED before the job's next
  intent, or the end): the only POSTs that can have made a request no ledger holds.

:func:`read_ledger` replays a ledger and fills a log in the same pass over its lines;
:func:`read_costs` notes only the costs, for readers that want no more.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from batchflux.ledger.reconcile import Intent
from batchflux.ledger.records import NOT_SUBMITTED, usd
from batchflux.ledger.replay import Replay, replay_lines

# A request the server FAILED is refunded: these causes, on a ``failed`` event naming a request.
SERVER_FAILED: Final = frozenset({"moderation", "invalid", "server"})
# Lines worth decoding a second time: only these events carry what the log folds.
_MARKS: Final = (
    b'"submit_intent"', b'"submitted"', b'"failed"', b'"NOT_SUBMITTED"', b'"credits_deduction"',
    b'"run_started"',
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class KnownRequest:
    """A request of a job, as its ``submitted`` event recorded it."""

    request_id: str
    job_id: str
    submitted_at: float  # unix
    price_usd: float | None  # the price per image of the run that sent it, when it recorded one


@dataclass(slots=True)
class RequestLog:
    """The fold. ``keep_intents``: keep every ``submit_intent`` as an :class:`Intent` (what body
    matching needs; off where only costs are wanted)."""

    keep_intents: bool = False
    requests: dict[str, KnownRequest] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)  # request id -> credits_deduction (USD)
    server_failed: set[str] = field(default_factory=set)  # request ids the server FAILED
    intents: list[Intent] = field(default_factory=list)
    _price: float | None = field(default=None, init=False)  # of the latest run_started
    _latest: dict[str, str] = field(default_factory=dict, init=False)  # job id -> its latest request
    _open: dict[str, Intent] = field(default_factory=dict, init=False)  # job id -> its unanswered intent
    _lost: list[Intent] = field(default_factory=list, init=False)  # intents a later one replaced unanswered

    def add(self, event: Mapping[str, Any]) -> None:
        """Fold one decoded event (a ledger line's object); anything malformed is passed over."""
        kind, job, ts = event.get("event"), event.get("job"), event.get("ts")
        if not isinstance(ts, int | float) or isinstance(ts, bool):
            return
        if kind == "run_started":
            self._price = usd(event.get("price_usd"))
            return
        if not isinstance(job, str):
            return
        rid = event.get("request_id")
        rid = rid if isinstance(rid, str) and rid else None
        if kind == "submit_intent":
            if self.keep_intents:
                self._intent(job, float(ts), event)
            return
        if kind in ("submitted", "failed") or (kind == "state" and event.get("status") == NOT_SUBMITTED):
            self._open.pop(job, None)  # answered: the POST made the request recorded, or none
        if kind == "submitted" and rid is not None:
            at = event.get("submitted_at")
            when = float(at) if isinstance(at, int | float) and not isinstance(at, bool) else float(ts)
            self.requests[rid] = KnownRequest(rid, job, when, self._price)
            self._latest[job] = rid
        if rid is None:
            return
        cost = usd(event.get("credits_deduction"))
        if cost is not None:
            self.costs[rid] = cost
        if kind == "failed" and event.get("cause") in SERVER_FAILED:
            self.server_failed.add(rid)

    def _intent(self, job: str, ts: float, event: Mapping[str, Any]) -> None:
        params = event.get("params")
        model = event.get("model")
        if not isinstance(params, dict) or not isinstance(model, str) or not model:
            return
        sent = event.get("input_sent")
        image = params.get("input_image")
        local = isinstance(image, str) and not image.startswith(("http://", "https://", "data:"))
        made = Intent(
            job_id=job,
            model=model,
            params=params,
            local=local,
            input_sent=sent if isinstance(sent, str) and sent else None,
            at=ts,
            superseded=self._latest.get(job),
        )
        self.intents.append(made)
        unanswered = self._open.get(job)
        if unanswered is not None:
            self._lost.append(unanswered)
        self._open[job] = made

    def unanswered(self) -> list[Intent]:
        """The intents whose POST never heard an answer (the ledger's possible duplicate charges),
        in ledger order per job. Kept only with ``keep_intents``."""
        return [*self._lost, *self._open.values()]

    @property
    def billable(self) -> int:
        """Requests the ledger counts as paid: every one it holds but those the server FAILED."""
        return sum(1 for rid in self.requests if rid not in self.server_failed)


def read_ledger(path: Path, log: RequestLog) -> Replay:
    """Replay the ledger at ``path`` and fold its requests into ``log``, in one pass.
    Raises what :func:`~batchflux.ledger.replay.replay_lines` raises, and ``OSError``."""
    with path.open("rb") as fh:
        return replay_lines(_noting(fh, log, _MARKS), str(path))


def read_costs(path: Path) -> tuple[Replay, dict[str, float]]:
    """Replay the ledger at ``path``, noting what it recorded its requests cost (request id ->
    ``credits_deduction``) on the way: only the few lines that carry a cost are read twice, so
    ``status`` and the report pay next to nothing for it. Raises as :func:`read_ledger`."""
    log = RequestLog()
    with path.open("rb") as fh:
        replay = replay_lines(_noting(fh, log, (b'"credits_deduction"',)), str(path))
    return replay, log.costs


def _noting(lines: IO[bytes], log: RequestLog, marks: tuple[bytes, ...]) -> Iterator[bytes]:
    for line in lines:
        for mark in marks:
            if mark in line:
                _fold_line(line, log)
                break
        yield line


def _fold_line(line: bytes, log: RequestLog) -> None:
    try:
        event = json.loads(line)
    except ValueError:  # a torn or corrupt line: the replay reports it
        return
    if isinstance(event, dict):
        log.add(event)

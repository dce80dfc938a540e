"""The emulator's state and decisions, free of HTTP: accounts, quota, jobs, faults, counters.

``app.py`` translates requests into calls on :class:`EmulatorCore` and its answers into responses.
Time comes from an injected monotonic clock (the loop's), so transitions, windows and retention are
computed on read; unix timestamps in stats are that clock shifted by a fixed offset.
"""

from __future__ import annotations

import dataclasses
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from batchflux.emulator.account import Account
from batchflux.emulator.config import FAULT_KINDS, EmulatorConfig
from batchflux.emulator.history import RowContext, history_row, page_body, parse_query, select, utc_date
from batchflux.emulator.images import output_ext
from batchflux.emulator.inputs import InputResolver
from batchflux.emulator.jobs import COMPLETED, STATES, JobRecord, body_digest
from batchflux.emulator.media import MediaStore, parse_data_url
from batchflux.emulator.outputs import OutputRenderer
from batchflux.emulator.quota import BusyRefusals, QuotaDecision, make_quota
from batchflux.emulator.schedule import ActiveCounter, WorkerPool
from batchflux.manifest.schema import FLUX_KONTEXT_MAX, check_params

MAX_ERROR_CHARS = 500


@dataclass(slots=True)
class Counters:
    submits: int = 0
    duplicate_submits: int = 0
    status_calls: int = 0
    result_calls: int = 0
    upload_calls: int = 0
    media_calls: int = 0
    credits_calls: int = 0
    history_calls: int = 0  # GET /inference-request/request-history (the list)
    history_record_calls: int = 0  # GET /inference-request/request-history/{id}
    rate_limited: int = 0
    counted_calls: int = 0  # calls the quota counted (admitted): submits, and polls with count_polls
    # Calls counted toward the quota (submits; polls and history calls with count_polls) that
    # arrived while a pause announced by a 429 to that key was in force, whichever kind of call
    # the 429 answered: sent after the client heard of it, or already on their way with it.
    calls_in_announced_pause: int = 0
    unauthorized: int = 0
    media_with_key: int = 0
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0))


@dataclass(frozen=True, slots=True)
class Rejection:
    """A submit the server refuses: HTTP status and message (JSON ``{"error"}`` unless plain)."""

    status: int
    message: str
    plain: bool = False


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


class EmulatorCore:
    def __init__(self, config: EmulatorConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.base_url = ""  # set by the server once the port is bound
        self.media_base_url = ""  # set by the server when media has a port of its own
        self._origin = clock()
        self._unix_origin = time.time()
        self._rng = random.Random(config.seed)
        self._pools: dict[str, WorkerPool] = {}
        self._active: dict[str, ActiveCounter] = {}
        self._seen: dict[str, set[str]] = {}
        self.quota = make_quota(config.limiter, config.rpm, config.window_s, self._origin)
        self.busy = BusyRefusals(config.busy_429, config.busy_reset_s)
        # key -> the last 429's reset: the quota is the key's, so a pause announced on one kind of
        # call holds for every kind it counts (polls too, with count_polls)
        self._announced: dict[str, float] = {}
        self.account = Account(config.credits)
        self.jobs: dict[str, JobRecord] = {}
        self.counters = Counters()
        self.submit_times: list[float] = []
        self.rate_limited_times: list[float] = []  # unix times of the 429s sent
        self.in_announced_pause_times: list[float] = []  # unix times of calls_in_announced_pause
        self.media = MediaStore()
        self.session: aiohttp.ClientSession | None = None  # for loopback inputs; set by the server
        self.inputs = InputResolver(self.media, self._own_output, lambda: self.base_url, lambda: self.session)
        self.outputs = OutputRenderer(self.media, self.inputs, lambda: self.config)

    # --- time -----------------------------------------------------------------------------------
    def unix(self, at: float) -> float:
        return self._unix_origin + (at - self._origin)

    # --- gatekeeping ----------------------------------------------------------------------------
    def authorized(self, key: str | None) -> bool:
        return key is not None and key in self.config.keys

    def take_quota(self, key: str, kind: str) -> QuotaDecision:
        now = self.clock()
        if now < self._announced.get(key, 0.0):
            self.counters.calls_in_announced_pause += 1
            self.in_announced_pause_times.append(self.unix(now))
        busy = self.busy.refuse(now) if kind == "submit" else None
        decision = busy if busy is not None else self.quota.acquire(key, now)
        if decision.allowed:
            self.counters.counted_calls += 1
        else:
            self.counters.rate_limited += 1
            self.rate_limited_times.append(self.unix(now))
            self._announced[key] = decision.reset_at
        return decision

    def roll_fault(self, endpoint: str, *, truncatable: bool = False) -> str | None:
        """The fault to inject into this request, if any (one uniform draw per eligible request).

        "truncate" is only drawn where a body can be cut short (media GETs).
        """
        cfg = self.config
        if not cfg.faults or endpoint not in cfg.fault_endpoints:
            return None
        draw = self._rng.random()
        edge = 0.0
        for kind in FAULT_KINDS:
            if kind == "truncate" and not truncatable:
                continue
            edge += cfg.faults.get(kind, 0.0)
            if draw < edge:
                self.counters.faults[kind] += 1
                return kind
        return None

    # --- submit ---------------------------------------------------------------------------------
    def submit(self, key: str, slug: str, body: Any) -> JobRecord | Rejection:
        cfg = self.config
        if not isinstance(body, dict):
            return Rejection(400, "Request body must be a JSON object of model parameters")
        error: str | None = None
        prompt = body.get("prompt")
        limit = cfg.max_prompt_chars
        if limit is not None and isinstance(prompt, str) and len(prompt) > limit:
            return Rejection(400, f"prompt is too long ({len(prompt)} characters; at most {limit})")
        if slug == FLUX_KONTEXT_MAX.slug:
            problems = check_params(FLUX_KONTEXT_MAX, body)
            if problems:
                message = _clip("Invalid parameters: " + "; ".join(f"{f}: {m}" for f, m in problems))
                if cfg.invalid_params_at == "submit":
                    return Rejection(400, message)
                error = message
        now = self.clock()
        if not self.account.can_pay(cfg.price, now):
            return Rejection(406, "Insufficient credits", plain=True)
        if error is None:
            error = self._moderation(prompt)
        latency = max(cfg.latency_min, self._rng.gauss(cfg.latency_mean, cfg.latency_sd))
        slot = self._pool(key).assign(now, latency)
        self._active.setdefault(key, ActiveCounter()).add(now, slot.finished)
        self.account.charge(cfg.price)
        if error is not None:
            self.account.refund_at(slot.finished, cfg.price)
        digest = body_digest(slug, body)
        seen = self._seen.setdefault(key, set())
        if digest in seen:
            self.counters.duplicate_submits += 1
        seen.add(digest)
        record = JobRecord(
            request_id=str(uuid.uuid4()),
            key=key,
            slug=slug,
            params=self._compact(body),
            digest=digest,
            ext=output_ext(body.get("output_format")),
            slot=slot,
            error=error,
            price=cfg.price,
        )
        self.jobs[record.request_id] = record
        self.counters.submits += 1
        self.submit_times.append(self.unix(now))
        return record

    def _compact(self, body: dict[str, Any]) -> dict[str, Any]:
        """The parameters to keep: an inline data-URI input is stored once, as an upload, and referenced."""
        value = body.get("input_image")
        if not (isinstance(value, str) and value.startswith("data:")):
            return body
        parsed = parse_data_url(value)
        if parsed is None:
            return body
        return {**body, "input_image": f"/media/uploads/{self.media.add_upload(parsed)}"}

    def _moderation(self, prompt: Any) -> str | None:
        if not isinstance(prompt, str):
            return None
        lowered = prompt.lower()
        for word in self.config.moderation_words:
            if word and word.lower() in lowered:
                return f"content blocked: the prompt was flagged by the safety filter ({word!r})"
        return None

    def _pool(self, key: str) -> WorkerPool:
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = WorkerPool(self.config.workers)
        return pool

    # --- reads ----------------------------------------------------------------------------------
    def lookup(self, key: str, request_id: str) -> JobRecord | None:
        """The caller's request, or None when unknown, another key's, or past retention."""
        record = self.jobs.get(request_id)
        if record is None or record.key != key or record.expired(self.clock(), self.config.retention_s):
            return None
        return record

    def media_base(self, base: str) -> str:
        """Where media is served: its own host when it has one, else the API's ``base``."""
        return self.media_base_url or base

    def output_url(self, base: str, record: JobRecord) -> str:
        return f"{self.media_base(base)}/media/{record.request_id}.{record.ext}"

    def completed_output(self, request_id: str, ext: str) -> JobRecord | None:
        """The completed request behind an output URL, while its file lives (``media_retention_s``)."""
        record = self.jobs.get(request_id)
        now = self.clock()
        if record is None or record.ext != ext or record.state(now) != COMPLETED:
            return None
        if now - record.slot.finished >= self.config.media_retention_s:
            return None
        return record

    # --- the request history ----------------------------------------------------------------------
    def _row_context(self, base: str) -> RowContext:
        return RowContext(self.clock(), self.unix, base, self.config.history_delay_s)

    def history_page(self, key: str, raw_query: dict[str, str], base: str) -> dict[str, Any] | str:
        """One page of the key's requests, or the 400 message for a query the server refuses."""
        query = parse_query(raw_query, utc_date(self.unix(self.clock())))
        if isinstance(query, str):
            return query
        own = [r for r in self.jobs.values() if r.key == key]
        return page_body(select(own, query, self._row_context(base)), query)

    def history_record(self, key: str, request_id: str, base: str) -> dict[str, Any] | None:
        """One of the key's requests, of any age; None for another key's or an unknown id."""
        record = self.jobs.get(request_id)
        if record is None or record.key != key:
            return None
        return history_row(record, self._row_context(base))

    async def output_bytes(self, record: JobRecord) -> bytes:
        """The output image, rendered once (deterministically) and cached while memory allows."""
        return await self.outputs.bytes_for(record)

    async def _own_output(self, request_id: str) -> bytes | None:
        record = self.jobs.get(request_id)
        if record is None or record.state(self.clock()) != COMPLETED:
            return None
        return await self.output_bytes(record)

    # --- introspection --------------------------------------------------------------------------
    def credits_left(self) -> float:
        return round(self.account.balance(self.clock()), 6)

    def stats(self) -> dict[str, Any]:
        now = self.clock()
        by_state = dict.fromkeys(STATES, 0)
        for record in self.jobs.values():
            by_state[record.state(now)] += 1
        return {
            **dataclasses.asdict(self.counters),  # copies, faults included
            "peak_active": max((a.peak for a in self._active.values()), default=0),
            "jobs_by_state": by_state,
            "credits_left": self.credits_left(),
            "submit_times": list(self.submit_times),
            "rate_limited_times": list(self.rate_limited_times),
            "in_announced_pause_times": list(self.in_announced_pause_times),
        }

    def request_info(self, request_id: str) -> dict[str, Any] | None:
        record = self.jobs.get(request_id)
        if record is None:
            return None
        now = self.clock()
        state = record.state(now)
        slot = record.slot
        return {
            "request_id": record.request_id,
            "state": state,
            "submitted_at": self.unix(slot.submitted),
            "started_at": self.unix(slot.started) if now >= slot.started else None,
            "completed_at": self.unix(slot.finished) if now >= slot.finished else None,
            "output_url": self.output_url(self.base_url, record) if state == COMPLETED else None,
            "sha256": record.sha256,
            "error": record.error if now >= slot.finished else None,
            "status_calls": record.status_calls,
            "result_calls": record.result_calls,
        }

    # --- knobs ----------------------------------------------------------------------------------
    def reconfigure(self, **changes: Any) -> None:
        """Replace knobs at runtime. Unknown names raise TypeError, bad values ValueError."""
        old = self.config
        new = dataclasses.replace(old, **changes)
        if (new.host, new.port, new.media_port) != (old.host, old.port, old.media_port):
            raise ValueError("host and port cannot change while the emulator runs")
        if new.workers != old.workers:
            for pool in self._pools.values():
                pool.resize(new.workers)
        if new.limiter != old.limiter:
            self.quota = make_quota(new.limiter, new.rpm, new.window_s, self._origin)
        elif (new.rpm, new.window_s) != (old.rpm, old.window_s):
            self.quota.reconfigure(new.rpm, new.window_s)
        if (new.busy_429, new.busy_reset_s) != (old.busy_429, old.busy_reset_s):
            self.busy = BusyRefusals(new.busy_429, new.busy_reset_s)
        if "credits" in changes:
            self.account.reset(new.credits, self.clock())
        if "seed" in changes:
            self._rng.seed(new.seed)
        self.config = new

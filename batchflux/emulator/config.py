"""The emulator's knobs: one frozen value, validated once (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

DEFAULT_API_KEY = "SG_e0e0e0e0e0e0e0e0"

# Fault kinds, in the order a request's one random draw is matched against their rates.
FAULT_KINDS: tuple[str, ...] = ("500", "502", "504", "drop", "truncate")
# Endpoints a fault can hit; "truncate" only ever applies to "media".
ENDPOINTS: frozenset[str] = frozenset({"submit", "status", "result", "upload", "credits", "media", "history"})
INVALID_PARAMS_AT: tuple[str, ...] = ("submit", "run")
# What `history_outage` makes both request-history endpoints answer, every time: a JSON 404 or
# 500, an HTML 502, or a 200 whose page envelope (or record) is of a shape no client knows.
HISTORY_OUTAGES: tuple[str, ...] = ("404", "500", "502", "envelope")
# What the result URL answers for a request not finished yet: its non-terminal status (200, no
# output), or a 404 as if there were no such request. Undocumented (segmind-v2.md): both are modelled.
RESULT_PENDING: tuple[str, ...] = ("answers", "404")
# The quota's kinds of window: all of a window's slots free at its end, or one slot at a time.
LIMITERS: tuple[str, ...] = ("fixed", "sliding")
MEDIA_RETENTION_S = 7 * 86400.0  # an output file is served this long after its job completes


def _frozen_faults(faults: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(faults))


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Everything that shapes the emulator's behaviour; each field is described in the docs'
    emulator reference (``docs/reference/emulator.md``).

    Defaults are realistic in shape but fast: sub-second latency, no quota, no faults.
    """

    keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    latency_mean: float = 0.3  # seconds of "inference" per job: normal, clipped at latency_min
    latency_sd: float = 0.1
    latency_min: float = 0.02
    workers: int = 64  # server-side worker slots per key; jobs beyond stay QUEUED
    rpm: int | None = None  # requests per window per key; None = unlimited
    window_s: float = 60.0  # fixed windows aligned to the emulator's start, or a sliding window
    limiter: str = "fixed"  # one of LIMITERS
    # Load shedding, not a quota: one submit in busy_429 (None: none) is answered 429 whatever the
    # rate, with a reset busy_reset_s later.
    busy_429: int | None = None
    busy_reset_s: float = 1.2
    count_polls: bool = False  # status/result GETs count toward the quota too
    retry_after: bool = False  # also send Retry-After (whole seconds) on 429
    faults: Mapping[str, float] = field(default_factory=dict)  # kind -> probability per request
    fault_endpoints: frozenset[str] = ENDPOINTS
    # Seconds a submit's answer is held back after its request was created (and billed): a client
    # that gives up sooner, or is killed meanwhile, has an ambiguous submit. 0 = answer at once.
    submit_hold_s: float = 0.0
    moderation_words: tuple[str, ...] = ("nsfw",)
    invalid_params_at: str = "submit"  # or "run": accepted, then FAILED (422) when a worker runs it
    # A server-side rule the client's schema does not know (the real limit is undocumented):
    # a longer prompt is rejected at submit with 400. None = no limit.
    max_prompt_chars: int | None = None
    retention_s: float = 3600.0  # status/result 404 this long after submission
    media_retention_s: float = MEDIA_RETENTION_S  # output files 404 this long after completion
    # The request history (GET /inference-request/request-history[/{id}]): a request's record lands
    # this long after submission (listed with None fields until then), and outlives retention_s.
    history_delay_s: float = 0.0
    history_outage: str | None = None  # one of HISTORY_OUTAGES: every history call fails that way
    result_pending: str = "answers"  # one of RESULT_PENDING
    credits: float = 1000.0
    price: float = 0.10  # charged at submit, refunded when the job FAILs
    image_long_side: int = 256
    seed: int = 0  # seeds latency and fault draws
    host: str = "127.0.0.1"
    port: int = 0  # 0 = a random free port
    # Output files (and uploads) served on a port of their own, as from a separate media host, so
    # that it can go down alone; 0 = a random free port; None = on the API's port.
    media_port: int | None = None

    def __post_init__(self) -> None:
        problems = config_problems(self)
        if problems:
            raise ValueError("invalid emulator config: " + "; ".join(problems))
        # Callers may pass any mapping/iterable; keep the stored values immutable.
        object.__setattr__(self, "faults", _frozen_faults(self.faults))
        object.__setattr__(self, "keys", tuple(self.keys))
        object.__setattr__(self, "fault_endpoints", frozenset(self.fault_endpoints))
        object.__setattr__(self, "moderation_words", tuple(self.moderation_words))


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def config_problems(cfg: EmulatorConfig) -> list[str]:
    """Every reason ``cfg`` is unusable, empty when it is fine."""
    problems: list[str] = []
    if not cfg.keys or not all(isinstance(k, str) and k for k in cfg.keys):
        problems.append("keys must be a non-empty list of non-empty strings")
    for name in ("latency_mean", "latency_sd", "latency_min", "credits", "price", "history_delay_s",
                 "submit_hold_s"):  # fmt: skip
        value = getattr(cfg, name)
        if not _finite(value) or value < 0:
            problems.append(f"{name} must be a finite number >= 0, not {value!r}")
    for name in ("window_s", "retention_s", "media_retention_s", "busy_reset_s"):
        value = getattr(cfg, name)
        if not _finite(value) or value <= 0:
            problems.append(f"{name} must be a finite number > 0, not {value!r}")
    if not isinstance(cfg.workers, int) or cfg.workers < 1:
        problems.append(f"workers must be an integer >= 1, not {cfg.workers!r}")
    if cfg.rpm is not None and (not isinstance(cfg.rpm, int) or cfg.rpm < 1):
        problems.append(f"rpm must be None or an integer >= 1, not {cfg.rpm!r}")
    if cfg.limiter not in LIMITERS:
        problems.append(f"limiter must be one of {', '.join(LIMITERS)}, not {cfg.limiter!r}")
    if cfg.busy_429 is not None and (not isinstance(cfg.busy_429, int) or cfg.busy_429 < 1):
        problems.append(f"busy_429 must be None or an integer >= 1, not {cfg.busy_429!r}")
    for kind, rate in dict(cfg.faults).items():
        if kind not in FAULT_KINDS:
            problems.append(f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
        elif not _finite(rate) or not 0 <= rate <= 1:
            problems.append(f"fault rate for {kind} must be within 0..1, not {rate!r}")
    if sum(float(r) for r in dict(cfg.faults).values() if _finite(r)) > 1:
        problems.append("fault rates must add up to at most 1")
    unknown = set(cfg.fault_endpoints) - ENDPOINTS
    if unknown:
        problems.append(f"unknown fault endpoints {sorted(unknown)} (known: {', '.join(sorted(ENDPOINTS))})")
    if not all(isinstance(w, str) for w in cfg.moderation_words):
        problems.append("moderation_words must be strings")
    if cfg.max_prompt_chars is not None and (
        not isinstance(cfg.max_prompt_chars, int) or cfg.max_prompt_chars < 1
    ):
        problems.append("max_prompt_chars must be a positive integer or None")
    if cfg.history_outage is not None and cfg.history_outage not in HISTORY_OUTAGES:
        problems.append(
            f"history_outage must be None or one of {', '.join(HISTORY_OUTAGES)}, not {cfg.history_outage!r}"
        )
    if cfg.invalid_params_at not in INVALID_PARAMS_AT:
        problems.append(f"invalid_params_at must be 'submit' or 'run', not {cfg.invalid_params_at!r}")
    if not isinstance(cfg.image_long_side, int) or not 8 <= cfg.image_long_side <= 4096:
        problems.append(f"image_long_side must be an integer within 8..4096, not {cfg.image_long_side!r}")
    if not isinstance(cfg.port, int) or not 0 <= cfg.port <= 65535:
        problems.append(f"port must be within 0..65535, not {cfg.port!r}")
    if cfg.media_port is not None and (
        not isinstance(cfg.media_port, int) or not 0 <= cfg.media_port <= 65535
    ):
        problems.append(f"media_port must be None or within 0..65535, not {cfg.media_port!r}")
    if cfg.result_pending not in RESULT_PENDING:
        problems.append(
            f"result_pending must be one of {', '.join(RESULT_PENDING)}, not {cfg.result_pending!r}"
        )
    return problems

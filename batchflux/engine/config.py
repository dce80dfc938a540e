"""Engine settings, validated once by the CLI or :func:`batchflux.run_batch`."""

from __future__ import annotations

from dataclasses import dataclass, field

from batchflux.engine.breaker import OUTAGE_AFTER_S
from batchflux.engine.latency import PollTuning
from batchflux.engine.pacing import Rate
from batchflux.ledger.resume import RETENTION_S


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The engine's knobs: pacing, worker pools, bounded retries, caps, the outage breaker. ``run_batch``
    and ``stream`` take any field as a keyword (``max_in_flight=``, ``max_cost_usd=`` …), or a whole
    ``engine=EngineConfig(...)``."""

    rate: Rate | None = None  # --rpm / --rate; None = learned from the server's 429s
    max_in_flight: int = 256  # requests submitted and not yet resolved
    submit_workers: int = 16
    poll_workers: int = 32
    result_workers: int = 16
    # Images being fetched or waiting for their batched write; the client runs at most 16 GETs at
    # once, so the rest are images waiting a few ms to share a worker-thread trip with others.
    download_workers: int = 64
    upload_workers: int = 4
    retention_s: float = RETENTION_S  # a request's status and result expire this long after submission
    get_attempts: int = 8  # bounded retries of 5xx/transport errors on status/result/upload
    submit_attempts: int = 6  # 5xx answers and connection failures before the POST was sent
    ambiguous_resubmits: int = 3  # submits re-sent after no answer, each counted as a possible duplicate
    download_attempts: int = 6
    expired_resubmits: int = 1  # a request that expired before its result was fetched is submitted again
    inline_inputs: bool = False  # send local inputs as data URIs instead of uploading them
    # The request history (--no-history turns it off): open intents are looked up before they are
    # paid again, and expired requests read before they are resubmitted. A record not found is
    # looked for once more when this long has passed since its request can last have been created
    # (batchflux.ledger.landing): it may not have landed. Never since the intent.
    history: bool = True
    history_wait_s: float = 30.0
    max_new_submits: int | None = None  # --max-jobs
    max_cost_usd: float | None = None  # --max-cost
    price_usd: float = 0.10
    outage_after_s: float = OUTAGE_AFTER_S  # every call to a host failed this long: an outage, the run stops
    drain_s: float = 30.0  # after a stop (a signal, an outage), requests in flight are followed this long
    # Submitting stops below this much free space in the run directory, so that what is in flight
    # can still be recorded and written (a request the ledger cannot record could be paid twice).
    min_free_bytes: int = 8 * 2**20
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    poll: PollTuning = field(default_factory=PollTuning)

"""The ledger: ``<out>/ledger.jsonl``, the run directory's source of truth.

- :mod:`.events` — the event vocabulary and its versioned JSON encoding (pure).
- :mod:`.replay` — fold a ledger's lines into per-job records (pure).
- :mod:`.writer` — the one appender, with flush-before-dependent-action and group-commit fsync.
"""

from batchflux.ledger.events import LEDGER_FILENAME, LEDGER_VERSION, Event, EventType
from batchflux.ledger.replay import JobRecord, JobState, LedgerCorrupt, Replay, RunRecord, replay_file
from batchflux.ledger.writer import LedgerWriter

__all__ = [
    "LEDGER_FILENAME",
    "LEDGER_VERSION",
    "Event",
    "EventType",
    "JobRecord",
    "JobState",
    "LedgerCorrupt",
    "LedgerWriter",
    "Replay",
    "RunRecord",
    "replay_file",
]

"""The ledger: ``<out>/ledger.jsonl``, the run directory's source of truth.

- :mod:`.events` — the event vocabulary and its versioned JSON encoding (pure).
- :mod:`.records` — what the ledger knows of each job and run, folded event by event (pure).
- :mod:`.replay` — read a ledger's lines into those records: torn tails, located corruption (pure).
- :mod:`.writer` — the one appender, with flush-before-dependent-action and group-commit fsync.

- :mod:`.resume` — what a rerun does with each manifest job, decided from the replay (pure rules).
- :mod:`.reconcile` — what the request history's rows mean for open intents and expired requests
  (pure rules; the engine asks, the ledger only decides).
- :mod:`.requests` — every request a ledger holds, every attempt of every job, with its cost.
- :mod:`.spend` — the request history's rows tallied against those: what a batch really cost,
  and which requests were paid twice (pure; ``batchflux status --spend`` asks).

``batchflux status`` reads ledgers through :mod:`batchflux.run.state`.

May import: files (durable writes, the directory's names), manifest (the jobs that resume rules
decide on). Never api: the ledger records what the API said, it does not ask.
"""

from batchflux.files.layout import LEDGER_FILENAME
from batchflux.ledger.events import FAILURE_CAUSES, LEDGER_VERSION, Event, EventType
from batchflux.ledger.replay import (
    JobRecord,
    JobState,
    LedgerCorrupt,
    LedgerTooNew,
    Replay,
    RunRecord,
    replay_file,
    replay_lines,
)
from batchflux.ledger.writer import LedgerWriter

__all__ = [
    "FAILURE_CAUSES",
    "LEDGER_FILENAME",
    "LEDGER_VERSION",
    "Event",
    "EventType",
    "JobRecord",
    "JobState",
    "LedgerCorrupt",
    "LedgerTooNew",
    "LedgerWriter",
    "Replay",
    "RunRecord",
    "replay_file",
    "replay_lines",
]

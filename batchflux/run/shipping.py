"""Shipping the run directory while the engine works: every ``ship_interval_s`` the ledger's new
lines (fsynced first) and the new images go where the directory lives (a bucket). A store that
stays unreachable for ``outage_after_s``, or a lock that was lost, stops the run like an outage of
the API: no new submits, what is in flight drained, exit 75, and the plain rerun completes."""

from __future__ import annotations

import asyncio
import logging
import time

from batchflux.engine.core import Engine
from batchflux.ledger import LedgerWriter
from batchflux.rundir import RunDir
from batchflux.rundir.store import StoreUnavailable

log = logging.getLogger("batchflux.run")


async def ship_while_running(
    rundir: RunDir, engine: Engine, ledger: LedgerWriter, outage_after_s: float
) -> None:
    """Runs until cancelled (when the engine is done); the stop's own ship is the caller's."""
    interval = rundir.ship_interval_s
    if interval is None:
        return
    failing_since: float | None = None
    while True:
        await asyncio.sleep(interval)
        trouble = rundir.trouble()
        if trouble is not None:
            engine.request_stop("unreachable", trouble)
            return
        if not ledger.closed:
            await ledger.commit()  # fsynced in the spool before it is shipped
        try:
            await asyncio.to_thread(rundir.ship)
        except (StoreUnavailable, OSError) as exc:  # OSError: the spool itself
            now = time.monotonic()
            if failing_since is None:
                failing_since = now
                log.warning("could not ship to %s (will retry): %s", rundir.where, exc)
            if now - failing_since >= outage_after_s:
                engine.request_stop("unreachable", f"{rundir.where} unreachable: {exc}")
                return
        else:
            if failing_since is not None:
                log.info("shipping to %s again", rundir.where)
            failing_since = None

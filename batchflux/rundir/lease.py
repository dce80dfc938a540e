"""One runner per bucket prefix: a leased lock object, ``<prefix>/run.lock``.

- **Taken** with a conditional write (put-if-absent, ``If-None-Match: *``): of two runners that
  start together, the store lets exactly one create it.
- **Renewed** by its holder every ``period / 3`` seconds (a thread, so a busy event loop cannot
  starve it), each renewal a write conditional on the version it last wrote (``If-Match``).
  The store's clock dates each renewal (``Last-Modified``); a waiter also watches the lock unchanged
  for one renewal interval before it believes it lapsed, so a skewed clock cannot take a live lock.
- **Lapses** ``period`` (30 s) after the last renewal, as the store's clock dates the object. A
  runner that finds the lock watches it: renewed meanwhile → another runner lives: :class:`LockHeld`
  (exit 4), within one renewal interval; not renewed for ``period`` → the holder is gone (a killed
  pod), and the lock is taken over, again conditionally, so two successors cannot both win.
- **Released** (deleted) at the end of a run. A holder that cannot renew for a whole period, or
  finds its lock taken over, marks the lease :attr:`lost`: the run stops (exit 75).

``BATCHFLUX_LEASE_S`` shortens the period (tests).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from batchflux.files.layout import LOCK_FILENAME
from batchflux.rundir.lock import LockHeld
from batchflux.rundir.objects import ObjectStore
from batchflux.rundir.store import StoreUnavailable

log = logging.getLogger("batchflux.rundir")

LEASE_S = 30.0


def lease_period() -> float:
    try:
        value = float(os.environ.get("BATCHFLUX_LEASE_S", LEASE_S))
    except ValueError:
        return LEASE_S
    return value if value > 0 else LEASE_S


class Lease:
    def __init__(self, store: ObjectStore, etag: str, holder: dict[str, Any], period: float) -> None:
        self.store = store
        self.holder = holder
        self.period = period
        self.taken_over: dict[str, Any] | None = None  # the lapsed holder's record, when taken over
        self.lost = threading.Event()
        self._etag = etag
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="batchflux-lease", daemon=True)

    @classmethod
    def acquire(cls, store: ObjectStore, *, period: float | None = None) -> Lease:
        """Take the lease, waiting out a lapsing one. Raises :class:`LockHeld` or StoreUnavailable."""
        period = period if period is not None else lease_period()
        holder = _record()
        data = _encode(holder)
        if store.set_if_absent(LOCK_FILENAME, data):
            return cls._start(store, holder, period, None)
        seen: str | None = None
        previous: dict[str, Any] = {}
        watched_from = time.monotonic()
        # Watched for one renewal interval unchanged as well: a clock ahead of the store's must not
        # make a live holder's lease look lapsed.
        must_watch = period / 3 + 1.0
        while True:
            meta = store.head(LOCK_FILENAME)
            if meta is None:  # released meanwhile
                if store.set_if_absent(LOCK_FILENAME, data):
                    return cls._start(store, holder, period, None)
                continue
            if seen is not None and meta.etag != seen:
                raise LockHeld(_holder(store), store.url_of(LOCK_FILENAME))  # renewed: alive
            if seen is None:
                seen, previous = meta.etag, _holder(store)
            age = time.time() - (meta.modified if meta.modified is not None else time.time())
            if age >= period and time.monotonic() - watched_from >= must_watch:
                if meta.etag is not None and store.set_if_match(LOCK_FILENAME, data, meta.etag) is not None:
                    log.info("took over the lapsed lock of %s", store.url_of(LOCK_FILENAME))
                    return cls._start(store, holder, period, previous)
                raise LockHeld(_holder(store), store.url_of(LOCK_FILENAME))
            time.sleep(min(1.0, max(0.05, period - age, must_watch - (time.monotonic() - watched_from))))

    @classmethod
    def _start(
        cls, store: ObjectStore, holder: dict[str, Any], period: float, previous: dict[str, Any] | None
    ) -> Lease:
        meta = store.head(LOCK_FILENAME)
        lease = cls(store, meta.etag if meta is not None and meta.etag else "", holder, period)
        lease.taken_over = previous
        lease._thread.start()
        return lease

    @property
    def held(self) -> bool:
        return not self._stop.is_set() and not self.lost.is_set()

    def _renew_loop(self) -> None:
        interval = self.period / 3
        last_ok = time.monotonic()
        while not self._stop.wait(interval):
            record = {**self.holder, "renewed_at": _utc_now_iso()}
            try:
                etag = self.store.set_if_match(LOCK_FILENAME, _encode(record), self._etag)
            except StoreUnavailable as exc:
                if time.monotonic() - last_ok >= self.period - interval:
                    log.error("could not renew the run's lock for %.0fs: %s", self.period, exc)
                    self.lost.set()
                    return
                continue
            if etag is None:
                log.error("the run's lock at %s was taken over by another runner",
                          self.store.url_of(LOCK_FILENAME))  # fmt: skip
                self.lost.set()
                return
            self._etag = etag.strip('"')
            last_ok = time.monotonic()

    def release(self) -> None:
        """Stop renewing and delete the lock (if it is still ours). Safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.lost.is_set():
            return
        try:
            meta = self.store.head(LOCK_FILENAME)
            if meta is not None and meta.etag == self._etag:
                self.store.delete(LOCK_FILENAME)
        except StoreUnavailable as exc:  # it lapses by itself
            log.warning("could not release the run's lock (it lapses in %.0fs): %s", self.period, exc)

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _record() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started_at": _utc_now_iso(),
            "started_unix": round(time.time(), 3)}  # fmt: skip


def _encode(record: dict[str, Any]) -> bytes:
    return (json.dumps(record) + "\n").encode("utf-8")


def _holder(store: ObjectStore) -> dict[str, Any]:
    try:
        raw = store.get(LOCK_FILENAME)
        holder = json.loads(raw or b"{}")
    except (StoreUnavailable, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}

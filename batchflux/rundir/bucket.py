"""A run directory in a bucket: a local spool that the run works in, shipped to the store.

The spool (``--spool``) holds what the run writes, as a local run directory would, plus
``.spool.json``: how much of the ledger is shipped and which files are uploaded.

- **The ledger** is appended and fsynced in the spool (as in a local run), and shipped as
  immutable segments ``ledger/<start offset>.jsonl``, each the complete lines appended since the
  last one: every few seconds while the run works, and at every stop. The ledger is the segments
  in order (:func:`chain`). At the end of a run they are compacted into one, the segment at offset 0.
- **Files** (images, summary, results, report, log) are uploaded when new or changed, the store's
  checksum checked against the bytes; images are then removed from the spool (the run's own files
  stay for the next run's reads), after :attr:`before_release` (the report's thumbnail, made into
  ``thumbs/`` and shipped by the same ship).
- **The review log** (``reviews.jsonl``) is never put whole by :meth:`~BucketRunDir.ship`: a
  reviewer's :meth:`~BucketRunDir.ship_reviews` merges its lines with the bucket's and replaces the
  object only if it is still the version read (``If-Match``), so no shipper overwrites another's
  verdicts; the run never writes it.
- **A spool that vanished** (a new pod) is rebuilt from the bucket: the segments become the
  ledger, the listing says which images are there. The events after the last segment went with
  the old spool: :class:`Restored` says since when, for the request history to fill them in.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from batchflux.files.durable import atomic_write_bytes
from batchflux.files.layout import (
    JOBS_FILENAME,
    LEDGER_FILENAME,
    LOCK_FILENAME,
    LOG_FILENAME,
    REPORT_FILENAME,
    RESULTS_CSV_FILENAME,
    RESULTS_JSONL_FILENAME,
    REVIEWS_FILENAME,
    SUMMARY_FILENAME,
    THUMB_DIRNAME,
)
from batchflux.ledger.records import JobRecord
from batchflux.ledger.resume import FileCheck, check_file
from batchflux.rundir.base import Restored, RunDir
from batchflux.rundir.lease import Lease
from batchflux.rundir.objects import ObjectStore
from batchflux.rundir.store import LocalStore, Meta, StoreUnavailable

log = logging.getLogger("batchflux.rundir")

STATE_FILENAME = ".spool.json"
SEGMENT_PREFIX = "ledger/"
SHIP_INTERVAL_S = 3.0
REVIEW_SHIP_TRIES = 8  # merges of the review log tried when other reviewers keep writing it
FETCH_WORKERS = 8  # segments read at once when a spool is rebuilt
PUT_WORKERS = 8  # files uploaded at once by a ship
# The run's own files: uploaded, and kept in the spool for the next run to read.
RUN_FILES = frozenset({
    SUMMARY_FILENAME, REPORT_FILENAME, RESULTS_JSONL_FILENAME, RESULTS_CSV_FILENAME, JOBS_FILENAME,
    REVIEWS_FILENAME,
})  # fmt: skip
# Fetched into a rebuilt spool: what a run or a reader reads besides the ledger.
RESTORED_FILES = (SUMMARY_FILENAME, JOBS_FILENAME, RESULTS_JSONL_FILENAME, REVIEWS_FILENAME)


def segment_key(offset: int) -> str:
    return f"{SEGMENT_PREFIX}{offset:016d}.jsonl"


class BucketRunDir(RunDir):
    ship_interval_s = SHIP_INTERVAL_S

    def __init__(self, store: ObjectStore, spool: Path) -> None:
        self.store: ObjectStore = store
        self.local = spool.resolve()
        self.lease: Lease | None = None
        self._shipping = threading.Lock()
        self._state: dict[str, Any] = {"ledger_offset": 0, "uploaded": {}, "remote": {}}

    def __repr__(self) -> str:
        return f"BucketRunDir({self.store.where!r}, spool={str(self.local)!r})"

    # ---- state ----------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any] | None:
        try:
            state = json.loads((self.local / STATE_FILENAME).read_bytes())
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) and state.get("url") == self.store.where else None

    def _save_state(self) -> None:
        self._state["url"] = self.store.where
        atomic_write_bytes(self.local / STATE_FILENAME, json.dumps(self._state).encode("utf-8"))

    # ---- the interface ----------------------------------------------------------------------

    def lock(self) -> Lease:
        self.local.mkdir(parents=True, exist_ok=True)
        self.lease = Lease.acquire(self.store)
        return self.lease

    def restore(self) -> Restored:
        """Bring the spool up to the bucket (StoreUnavailable when the bucket cannot be read)."""
        self.local.mkdir(parents=True, exist_ok=True)
        listing = self.store.list()
        segments, shipped = chain([m for m in listing if m.key.startswith(SEGMENT_PREFIX)])
        remote = {m.key: m.size for m in listing if not _internal(m.key)}
        state = self._load_state()
        ledger = self.ledger_path
        local_size = ledger.stat().st_size if ledger.exists() else 0
        if state is not None and state.get("ledger_offset") == shipped and local_size >= shipped:
            self._state = state
            self._state["remote"] = remote
            self._fetch_reviews(remote)  # reviewers write it in the bucket, never the run
            return Restored()  # the spool is this bucket's, and at least as far as it
        self._state = {"ledger_offset": 0, "uploaded": {}, "remote": remote}
        with ThreadPoolExecutor(max_workers=FETCH_WORKERS, thread_name_prefix="batchflux-get") as pool:
            data = b"".join(pool.map(self._segment, segments))
        atomic_write_bytes(ledger, data)
        self._state["ledger_offset"] = len(data)
        for name in RESTORED_FILES:
            body = self.store.get(name) if name in remote else None
            if body is not None:
                atomic_write_bytes(self.local / name, body)
                st = (self.local / name).stat()
                self._state["uploaded"][name] = [st.st_size, st.st_mtime_ns]
        self._save_state()
        lost = self._lost_since(data)
        if lost is None:
            return Restored()
        note = f"rebuilt the spool from {self.store.where} ({len(segments)} ledger segments)"
        return Restored(lost_since=lost, note=note)

    def _fetch_reviews(self, remote: dict[str, int]) -> None:
        body = self.store.get(REVIEWS_FILENAME) if REVIEWS_FILENAME in remote else None
        if body is not None:
            atomic_write_bytes(self.local / REVIEWS_FILENAME, body)

    def _segment(self, meta: Meta) -> bytes:
        body = self.store.get(meta.key)
        if body is None or len(body) < meta.size:
            raise StoreUnavailable(f"{self.store.url_of(meta.key)} changed while it was read; try again")
        return body[: meta.size]  # a segment compacted meanwhile starts with the same bytes

    def _lost_since(self, ledger: bytes) -> float | None:
        """After which time a runner that is gone may have made requests the ledger lacks."""
        last = _last_event(ledger)
        if last is not None:
            if last.get("event") == "run_finished":
                return None  # the last runner stopped cleanly and shipped everything
            ts = last.get("ts")
            return float(ts) if isinstance(ts, (int, float)) else None
        taken = self.lease.taken_over if self.lease is not None else None
        if taken and isinstance(taken.get("started_unix"), (int, float)):
            return float(taken["started_unix"])  # it died before its first segment
        return None

    def compact(self) -> None:
        """Many small segments become one: the shipped ledger written as the segment at offset 0
        (a longer one, starting with the same bytes), then the segments it covers deleted. A reader
        meanwhile reads either; what it gets is a prefix of the ledger either way. Only the runner
        that holds the lease compacts (at its stop): two compactions at once could leave the shorter."""
        segments, shipped = chain(self.store.list(SEGMENT_PREFIX))
        if len(segments) < 2 or shipped != self._state["ledger_offset"]:
            return
        with self.ledger_path.open("rb") as fh:
            data = fh.read(shipped)
        if len(data) != shipped:
            return
        self.store.set(segment_key(0), data)
        for meta in segments[1:]:
            self.store.delete(meta.key)

    def ship(self, *, final: bool = False) -> None:
        """Ship the ledger's new complete lines as one segment, then new or changed files
        (StoreUnavailable on failure: nothing is lost, the next ship tries again). One ship at a
        time: a ship left running in its thread by a cancelled caller finishes before the next."""
        with self._shipping:
            if self._ship(final) and self.before_release is not None:
                self._ship(final)  # what the hook made for the images let go (their thumbnails)
            if final:
                self.compact()

    def _ship(self, final: bool) -> int:
        """One pass; how many images it let go from the spool."""
        self._ship_ledger()
        due: list[tuple[str, Path, list[int]]] = []
        for name, path in self._files():
            try:
                st = path.stat()
            except FileNotFoundError:  # replaced or removed while we walked
                continue
            sig = [st.st_size, st.st_mtime_ns]
            if self._state["uploaded"].get(name) == sig:
                continue
            if name.startswith(LOG_FILENAME) and not final and name in self._state["uploaded"]:
                continue  # the log changes with every line: shipped at the stop
            due.append((name, path, sig))
        if not due:
            return 0
        released = 0
        failed: StoreUnavailable | None = None
        with ThreadPoolExecutor(max_workers=PUT_WORKERS, thread_name_prefix="batchflux-put") as pool:
            for (name, path, sig), outcome in zip(due, pool.map(self._upload, due), strict=True):
                if isinstance(outcome, StoreUnavailable):
                    failed = failed or outcome
                    continue
                if outcome is False:
                    continue
                self._state["remote"][name] = sig[0]
                if _kept(name):
                    self._state["uploaded"][name] = sig
                else:  # an image: in the bucket, checksummed; the spool lets it go
                    with contextlib.suppress(OSError):
                        path.unlink()
                    self._state["uploaded"].pop(name, None)
                    released += 1
        self._save_state()
        if failed is not None:
            raise failed
        return released

    def _upload(self, item: tuple[str, Path, list[int]]) -> bool | StoreUnavailable:
        """One file to the store: True once there, False if it vanished, or the store's failure."""
        name, path, _sig = item
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False
        try:
            self.store.set(name, data)
        except StoreUnavailable as exc:
            return exc
        hook = self.before_release
        if hook is not None and not _kept(name):
            try:
                hook(path, data)
            except Exception:  # a thumbnail is a nicety: the image is shipped all the same
                log.warning("before letting %s go from the spool", name, exc_info=True)
        return True

    def fetch(self, prefix: str) -> int:
        """The bucket's files under ``prefix`` that the spool lacks, downloaded into it (and
        recorded as shipped, so that the next ship does not send them back)."""
        wanted = [m for m in self.store.list(prefix) if _plain(m.key[len(prefix) :])]
        wanted = [m for m in wanted if not (self.local / m.key).exists()]
        if not wanted:
            return 0
        (self.local / prefix).mkdir(parents=True, exist_ok=True)

        def get(meta: Meta) -> bytes | None:
            return self.store.get(meta.key)

        got = 0
        with ThreadPoolExecutor(max_workers=FETCH_WORKERS, thread_name_prefix="batchflux-get") as pool:
            for meta, body in zip(wanted, pool.map(get, wanted), strict=True):
                if body is None:
                    continue
                path = self.local / meta.key
                atomic_write_bytes(path, body)
                st = path.stat()
                self._state["uploaded"][meta.key] = [st.st_size, st.st_mtime_ns]
                got += 1
        self._save_state()
        return got

    def _ship_ledger(self) -> None:
        ledger = self.ledger_path
        offset = int(self._state["ledger_offset"])
        try:
            with ledger.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n") + 1
        if end == 0:
            return
        self.store.set(segment_key(offset), chunk[:end])
        self._state["ledger_offset"] = offset + end
        self._save_state()

    def _files(self) -> Iterator[tuple[str, Path]]:
        for dirpath, dirs, files in os.walk(self.local):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for fname in files:
                if fname.startswith(".") or fname.endswith((".part", ".tmp")):
                    continue
                path = Path(dirpath) / fname
                name = PurePosixPath(path.relative_to(self.local)).as_posix()
                if name in (LEDGER_FILENAME, LOCK_FILENAME, REVIEWS_FILENAME):
                    continue
                yield name, path

    def ship_reviews(self) -> None:
        """The spool's review log into the bucket's, and the bucket's into the spool's: the lines of
        both, by time, put only if the bucket's log is still the one read (another reviewer's
        merge in between: read and merge again). StoreUnavailable when the store fails or stays
        busy. The caller keeps the spool's log from being appended to meanwhile."""
        path = self.local / REVIEWS_FILENAME
        for _ in range(REVIEW_SHIP_TRIES):
            meta = self.store.head(REVIEWS_FILENAME)
            remote = (self.store.get(REVIEWS_FILENAME) or b"") if meta is not None else b""
            try:
                local = path.read_bytes()
            except FileNotFoundError:
                local = b""
            merged = merge_logs(remote, local)
            if merged != remote:
                if meta is None:
                    if not self.store.set_if_absent(REVIEWS_FILENAME, merged):
                        continue
                elif (
                    meta.etag is None or self.store.set_if_match(REVIEWS_FILENAME, merged, meta.etag) is None
                ):
                    continue
            if merged != local:
                atomic_write_bytes(path, merged)
            return
        raise StoreUnavailable(
            f"{self.store.url_of(REVIEWS_FILENAME)} kept changing while it was merged; try again"
        )

    def trouble(self) -> str | None:
        if self.lease is not None and self.lease.lost.is_set():
            return f"lost the lock on {self.store.url_of(LOCK_FILENAME)}"
        return None

    def file_check(self) -> Callable[[JobRecord], FileCheck]:
        local = check_file(self.local)
        remote: dict[str, int] = self._state["remote"]

        def check(rec: JobRecord) -> FileCheck:
            found = local(rec)
            if found is FileCheck.MISSING and rec.path and rec.path in remote:
                if rec.size is None or remote[rec.path] == rec.size:
                    return FileCheck.INTACT  # uploaded with its checksum verified
                return FileCheck.DAMAGED
            return found

        return check

    def move_ledger_aside(self) -> str | None:
        """``--fresh``: the segments move to ``ledger-<UTC stamp>/`` (never deleted)."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = f"ledger-{stamp}/"
        moved = False
        for meta in self.store.list(SEGMENT_PREFIX):
            body = self.store.get(meta.key)
            if body is not None:
                self.store.set(aside + meta.key[len(SEGMENT_PREFIX) :], body)
                self.store.delete(meta.key)
                moved = True
        with contextlib.suppress(FileNotFoundError):
            self.ledger_path.unlink()
        self._state["ledger_offset"] = 0
        self._save_state()
        return self.store.url_of(aside) if moved else None

    def read(self, name: str) -> bytes | None:
        body = LocalStore(self.local).get(name)
        return body if body is not None else self.store.get(name)


def chain(segments: list[Meta]) -> tuple[list[Meta], int]:
    """The segments that make the ledger, in order, and its length: from offset 0, each segment
    starts where the one before ends; a segment that a compacted one covers is left out."""
    by_start: dict[int, Meta] = {}
    for meta in segments:
        stem = meta.key[len(SEGMENT_PREFIX) :].removesuffix(".jsonl")
        if stem.isdigit():
            start = int(stem)
            if start not in by_start or meta.size > by_start[start].size:
                by_start[start] = meta
    out: list[Meta] = []
    pos = 0
    while pos in by_start and by_start[pos].size > 0:
        out.append(by_start[pos])
        pos += by_start[pos].size
    return out, pos


def merge_logs(*logs: bytes) -> bytes:
    """Review logs as one: every complete line once, in the order of the events' times (a log
    before another where they tie), so the latest verdict stays the latest."""
    seen: set[bytes] = set()
    lines: list[tuple[float, bytes]] = []
    for data in logs:
        for line in data[: data.rfind(b"\n") + 1].splitlines(keepends=True):
            if line in seen or not line.strip():
                continue
            seen.add(line)
            try:
                ts = json.loads(line).get("ts")
            except (ValueError, AttributeError):
                ts = None
            lines.append((float(ts) if isinstance(ts, (int, float)) else 0.0, line))
    lines.sort(key=lambda item: item[0])
    return b"".join(line for _, line in lines)


def _internal(key: str) -> bool:
    return key.startswith(SEGMENT_PREFIX) or key == LOCK_FILENAME


def _plain(name: str) -> bool:
    """A file name that stays where it is put: no folders, nothing hidden, no ``..``."""
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")


def _kept(name: str) -> bool:
    return name in RUN_FILES or name.startswith(LOG_FILENAME) or name.startswith(THUMB_DIRNAME + "/")


def _last_event(ledger: bytes) -> dict[str, Any] | None:
    for line in reversed(ledger.splitlines()):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            return event
    return None

"""The one ledger appender.

Durability contract (docs/explanation/how-it-works.md, "What survives a crash"):

- :meth:`LedgerWriter.append` writes the whole line and hands it to the OS before returning, so an
  event that a later action depends on (the ``submitted`` request_id before the first poll) has
  left the process before that action: a ``kill -9`` cannot lose it.
- ``fsync`` — what survives a power loss — runs at most every 200 ms as a group commit
  (:meth:`sync_forever`, run inside the engine's TaskGroup) and once more on :meth:`close`;
  :meth:`commit` is the awaitable barrier for an event that must be on disk before its action.
  fsyncs start at least ``min_sync_interval`` apart (20 ms): a lone commit goes at once, and the
  commits of a burst wait for the next one and share it. A worker-thread trip costs far more CPU
  than the fsync it carries (~130 µs on a 2-core VM), so at full speed this turns one trip per two
  submits into a few dozen trips a second, for at most 20 ms more before a POST.
- A write that fails part-way (a full disk) is cut back off the file before the error propagates,
  so the ledger never carries a torn line in its middle. Every failed write or fsync raises
  :class:`~batchflux.files.durable.WriteFailed` (the path and the OS's error): the engine stops the
  run on it, since an event it cannot record is an action it must not take.

Only the event loop's thread calls :meth:`append`, so lines never interleave: the writer is a
single appender by construction, with no queue in front of it to lose events from.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import BinaryIO

from batchflux.files.durable import WriteFailed, fsync_dir
from batchflux.ledger.events import Event, UnknownEvent
from batchflux.ledger.replay import parse_line

GROUP_COMMIT_INTERVAL_S = 0.2
MIN_SYNC_INTERVAL_S = 0.02


class LedgerWriter:
    def __init__(self, path: Path, *, min_sync_interval: float = MIN_SYNC_INTERVAL_S) -> None:
        self.path = path
        self.min_sync_interval = min_sync_interval
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        self.repaired_tail: int = _set_aside_torn_tail(path)  # bytes of a torn last line moved aside
        self._fh: BinaryIO = path.open("ab", buffering=0)
        self._size = self._fh.seek(0, os.SEEK_END)
        if created:
            fsync_dir(path.parent)  # the new file's directory entry must survive a power loss too
        self.events_written = 0
        self._synced = 0  # events_written as of the last completed fsync
        self._syncing: asyncio.Future[None] | None = None  # the fsync under way, for others to share
        self._last_sync_start = float("-inf")  # loop clock
        self.syncs = 0  # fsyncs commit() has run: what the spacing saves is commits / syncs

    def append(self, event: Event) -> None:
        line = (event.encode() + "\n").encode("utf-8")
        view = memoryview(line)
        written = 0
        try:
            # buffering=0: a write() syscall per event, so the line is in the OS when we return.
            while written < len(line):
                n = self._fh.write(view[written:])
                if not n:
                    raise OSError(f"could not append to {self.path}")
                written += n
        except BaseException as exc:
            if written:
                with contextlib.suppress(OSError):  # leave no torn line for the next append
                    os.ftruncate(self._fh.fileno(), self._size)
            if isinstance(exc, OSError):
                raise WriteFailed(self.path, exc) from exc
            raise
        self._size += written
        self.events_written += 1

    def sync(self) -> None:
        """fsync now, on the calling thread (at exit)."""
        if self.unsynced and not self._fh.closed:
            upto = self.events_written
            try:
                os.fsync(self._fh.fileno())
            except OSError as exc:
                raise WriteFailed(self.path, exc) from exc
            self._synced = max(self._synced, upto)

    async def commit(self) -> None:
        """Return once everything appended before the call is on disk (survives a power loss).

        The fsync runs in a thread on a duplicate descriptor — a :meth:`close` meanwhile cannot pull
        it out from under it. It starts no sooner than ``min_sync_interval`` after the previous one,
        and callers that arrive while one is pending or under way share it or the next one, so a
        burst of commits costs one or two fsyncs. For an event whose loss after a power cut would
        cost money (``submit_intent`` before its POST), await this between the append and the action."""
        target = self.events_written
        loop = asyncio.get_running_loop()
        while self._synced < target and not self._fh.closed:
            if self._syncing is not None:
                await asyncio.shield(self._syncing)
                continue
            done: asyncio.Future[None] = loop.create_future()
            self._syncing = done
            try:
                wait = self._last_sync_start + self.min_sync_interval - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)  # others append and join meanwhile
                if self._fh.closed:  # close() synced everything
                    break
                self._last_sync_start = loop.time()
                upto = self.events_written
                self.syncs += 1
                try:
                    await loop.run_in_executor(None, _fsync_dup, os.dup(self._fh.fileno()))
                except OSError as exc:
                    raise WriteFailed(self.path, exc) from exc
                self._synced = max(self._synced, upto)
            finally:
                self._syncing = None
                done.set_result(None)  # waiters re-check: after a failure or a cancel they fsync themselves

    async def sync_forever(self, interval: float = GROUP_COMMIT_INTERVAL_S) -> None:
        """Group commit: fsync whatever was appended in the last ``interval`` seconds."""
        while True:
            await asyncio.sleep(interval)
            if self.unsynced:
                await self.commit()

    @property
    def unsynced(self) -> bool:
        """Events were appended since the last fsync: a power loss now could lose them."""
        return self.events_written > self._synced

    @property
    def closed(self) -> bool:
        return self._fh.closed

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            self._fh.close()

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fsync_dup(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _set_aside_torn_tail(path: Path) -> int:
    """A crash can leave a torn last line (a write cut short; after a power loss, also garbage or
    zeros). Appending after it would turn it into a corrupt middle line, so move those bytes to
    ``<ledger>.torn`` (kept, never deleted) and cut the ledger back to its last complete line —
    exactly the line that replay ignores. A complete event that only lacks its newline is kept and
    given one. Returns the number of bytes moved."""
    if not path.exists():
        return 0
    with path.open("rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        fh.seek(size - 1)
        has_newline = fh.read(1) == b"\n"
        cut = _last_line_start(fh, size - 1 if has_newline else size)
        fh.seek(cut)
        tail = fh.read()
        try:
            parse_line(tail)
        except UnknownEvent:
            torn = False  # complete, from a newer batchflux: not ours to move (replay refuses it anyway)
        except ValueError:
            torn = True
        else:
            torn = False
        if not torn:
            if not has_newline:  # a complete event that only lacks its newline: keep it, as replay does
                fh.write(b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            return 0
        side_path = path.with_name(path.name + ".torn")
        with side_path.open("ab") as side:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            side.write(f"# {stamp} set aside from {path.name} at byte {cut}\n".encode())
            side.write(tail if has_newline else tail + b"\n")
            side.flush()
            os.fsync(side.fileno())
        fh.truncate(cut)
        fh.flush()
        os.fsync(fh.fileno())
        return len(tail)


def _last_line_start(fh: BinaryIO, end: int) -> int:
    """Offset just after the last ``\\n`` before ``end`` (0 if none), scanning back in chunks."""
    while end > 0:
        start = max(0, end - 65536)
        fh.seek(start)
        chunk = fh.read(end - start)
        pos = chunk.rfind(b"\n")
        if pos >= 0:
            return start + pos + 1
        end = start
    return 0

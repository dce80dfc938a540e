"""The one ledger appender.

Durability contract (README, "What survives a crash"):

- :meth:`LedgerWriter.append` writes the line and flushes it to the OS before returning, so an
  event that a later action depends on (the ``submitted`` request_id before the first poll) has
  left the process before that action: a ``kill -9`` cannot lose it.
- ``fsync`` — what survives a power loss — runs at most every 200 ms as a group commit
  (:meth:`sync_forever`, run inside the engine's TaskGroup) and once more on :meth:`close`.

Only the event loop's thread calls :meth:`append`, so lines never interleave: the writer is a
single appender by construction, with no queue in front of it to lose events from.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import BinaryIO

from batchflux.ledger.events import Event

GROUP_COMMIT_INTERVAL_S = 0.2


class LedgerWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.repaired_tail: int = 0  # bytes of a torn last line moved aside when opening
        path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired_tail = _set_aside_torn_tail(path)
        self._fh: BinaryIO = path.open("ab", buffering=0)
        self._dirty = False
        self.events_written = 0

    def append(self, event: Event) -> None:
        line = (event.encode() + "\n").encode("utf-8")
        # buffering=0: one write() syscall per event, so the line is in the OS when we return.
        self._fh.write(line)
        self._dirty = True
        self.events_written += 1

    def sync(self) -> None:
        if self._dirty and not self._fh.closed:
            self._dirty = False
            os.fsync(self._fh.fileno())

    async def sync_forever(self, interval: float = GROUP_COMMIT_INTERVAL_S) -> None:
        """Group commit: fsync whatever was appended in the last ``interval`` seconds."""
        while True:
            await asyncio.sleep(interval)
            if self._dirty:
                self._dirty = False
                await asyncio.to_thread(os.fsync, self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            self._fh.close()

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _set_aside_torn_tail(path: Path) -> int:
    """A crash can leave a last line without its newline. Appending after it would turn it into
    a corrupt middle line, so move those bytes to ``<ledger>.torn`` (kept, never deleted) and cut
    the ledger back to its last complete line. Returns the number of bytes moved."""
    if not path.exists():
        return 0
    with path.open("rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        # Scan back for the previous newline in chunks.
        end = size
        cut = 0
        while end > 0:
            start = max(0, end - 65536)
            fh.seek(start)
            chunk = fh.read(end - start)
            pos = chunk.rfind(b"\n")
            if pos >= 0:
                cut = start + pos + 1
                break
            end = start
        fh.seek(cut)
        torn = fh.read()
        try:
            Event.decode(torn.decode("utf-8"))
        except ValueError:
            pass
        else:  # a complete event that only lacks its newline: keep it, as replay did
            fh.seek(0, os.SEEK_END)
            fh.write(b"\n")
            fh.flush()
            os.fsync(fh.fileno())
            return 0
        with path.with_name(path.name + ".torn").open("ab") as side:
            side.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} set aside from {path.name}\n".encode())
            side.write(torn + b"\n")
            side.flush()
            os.fsync(side.fileno())
        fh.truncate(cut)
        fh.flush()
        os.fsync(fh.fileno())
        return len(torn)

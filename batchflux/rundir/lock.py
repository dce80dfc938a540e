"""One run per output directory: an OS file lock on ``<out>/run.lock``.

``fcntl.flock(LOCK_EX | LOCK_NB)`` on the file: the kernel releases the lock when the holding
process exits, however it exits (``kill -9``, OOM, power loss of a container), so a lock left
by a dead run never blocks the next one — there is no staleness to guess. While held, the file
holds ``{"pid", "host", "started_at"}`` so the loser can name the winner. The file itself is
never deleted (unlinking a lock file lets two processes lock two different inodes); on release
its content is cleared.

Works on local filesystems; on NFS, Linux emulates ``flock`` with byte-range locks, which is
still exclusive across clients.

    with RunLock.acquire(out_dir):
        ...  # LockHeld if another live process holds it
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from batchflux.files.layout import LOCK_FILENAME


class LockHeld(Exception):
    """Another live process holds the output directory's lock; ``holder`` is what it wrote there."""

    def __init__(self, holder: dict[str, Any], path: Path | str = LOCK_FILENAME) -> None:
        self.holder = holder
        self.path = str(path)
        super().__init__(f"another batchflux run ({describe_holder(holder)}) holds {self.path}")


def describe_holder(holder: dict[str, Any]) -> str:
    """``pid 123 on host, started 2026-11-25T10:00:00Z``, with ``?`` for what is unknown."""
    if not holder:
        return "still starting, or not a batchflux lock record"
    pid = holder.get("pid", "?")
    host = holder.get("host", "?")
    started = holder.get("started_at", "?")
    return f"pid {pid} on {host}, started {started}"


def _utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_holder(fd: int) -> dict[str, Any]:
    """What the holder wrote; ``{}`` if it has not written yet or the content is not ours."""
    try:
        raw = os.pread(fd, 4096, 0)
        holder = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


class RunLock:
    """A held lock on ``<out>/run.lock``. Create with :meth:`acquire`; release with :meth:`release`
    or by leaving the ``with`` block."""

    def __init__(self, path: Path, fd: int, holder: dict[str, Any]) -> None:
        self.path = path
        self.holder = holder
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, out_dir: Path) -> RunLock:
        """Take the lock without waiting, creating ``out_dir`` if needed. Raises :class:`LockHeld`."""
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / LOCK_FILENAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockHeld(holder, path) from None
            raise
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": _utc_now_iso()}
        try:
            data = (json.dumps(holder) + "\n").encode("utf-8")
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)  # closing the descriptor releases the lock
            raise
        return cls(path, fd, holder)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Clear the holder record and unlock. Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # still ours: nobody can be reading a half-cleared record as current
        except OSError:
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "held" if self.held else "released"
        return f"RunLock({str(self.path)!r}, {state}, {describe_holder(self.holder)})"

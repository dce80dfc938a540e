"""The run-directory interface, and its local implementation.

A run works in a local directory (:attr:`RunDir.local`): the ledger is appended and fsynced there,
images are committed there, the summary, results and report are written there. For a local run
directory that is the directory itself; for a bucket it is a spool that :meth:`RunDir.ship` empties
into the bucket. What a run asks of its directory beyond that goes through this interface:

- ``read(name)`` / ``write(name, data)`` / ``names(prefix)``: whole files, atomically replaced;
- ``lock()``: one runner per directory (:class:`~batchflux.rundir.lock.LockHeld` when taken);
- ``restore()``: bring the working directory up to what the store holds, before the ledger is read;
- ``ship(final=...)``: make what was written durable where the directory lives;
- ``ship_reviews()``: the review log, merged with the store's (never put over it);
- ``fetch(prefix)``: bring the store's files under ``prefix`` into the working directory (the
  report's thumbnails that an earlier spool made);
- ``before_release``: called with an image's path and bytes once it is in the store, just before
  the working directory lets it go (the runner makes its thumbnail there);
- ``file_check()``: resume's ``file_ok``, for images that may live only in the store;
- ``move_ledger_aside()``: ``--fresh``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from batchflux.files.layout import LEDGER_FILENAME
from batchflux.ledger.records import JobRecord
from batchflux.ledger.resume import FileCheck, check_file, move_ledger_aside
from batchflux.rundir.lock import RunLock
from batchflux.rundir.store import LocalStore, Store


class TargetError(Exception):
    """``--out`` names a run directory that cannot be used: one line for the user."""


@dataclass(frozen=True, slots=True)
class Restored:
    """What :meth:`RunDir.restore` found. ``lost_since``: the working directory was rebuilt from the
    store, and requests made after this unix time by a runner that is gone may be missing from the
    ledger (the request history knows them). ``None``: nothing can have been lost."""

    lost_since: float | None = None
    note: str = ""


class RunDir(ABC):
    store: Store
    local: Path  # where the run works: the directory itself, or the spool
    ship_interval_s: float | None = None  # how often a run ships while it works; None: never needed
    before_release: Callable[[Path, bytes], object] | None = None

    @property
    def where(self) -> str:
        """The run directory as the user named it: a path or a URL."""
        return self.store.where

    @property
    def ledger_path(self) -> Path:
        return self.local / LEDGER_FILENAME

    def read(self, name: str) -> bytes | None:
        try:
            return (self.local / name).read_bytes()
        except OSError:
            return self.store.get(name)

    def write(self, name: str, data: bytes) -> None:
        LocalStore(self.local).set(name, data)

    def names(self, prefix: str = "") -> list[str]:
        local = {m.key for m in LocalStore(self.local).list(prefix)}
        return sorted(local | {m.key for m in self.store.list(prefix)})

    @abstractmethod
    def lock(self) -> AbstractContextManager[object]: ...

    @abstractmethod
    def restore(self) -> Restored: ...

    @abstractmethod
    def ship(self, *, final: bool = False) -> None: ...

    def fetch(self, prefix: str) -> int:
        """The store's files under ``prefix`` that the working directory lacks, brought in; how many."""
        return 0

    @abstractmethod
    def file_check(self) -> Callable[[JobRecord], FileCheck]: ...

    @abstractmethod
    def ship_reviews(self) -> None:
        """Make the review log's new verdicts durable where the directory lives (and bring in
        those others gave there)."""

    def trouble(self) -> str | None:
        """Why the run must stop writing here (its lock was lost), or None."""
        return None

    @abstractmethod
    def move_ledger_aside(self) -> str | None: ...


class LocalRunDir(RunDir):
    """The run directory is a local directory: the store and the working directory are one."""

    def __init__(self, path: Path) -> None:
        self.local = path.resolve()
        self.store = LocalStore(self.local)

    def read(self, name: str) -> bytes | None:
        return self.store.get(name)

    def names(self, prefix: str = "") -> list[str]:
        return [m.key for m in self.store.list(prefix)]

    def lock(self) -> RunLock:
        return RunLock.acquire(self.local)

    def restore(self) -> Restored:
        return Restored()

    def ship(self, *, final: bool = False) -> None:
        """Everything is on disk already (the ledger and images are fsynced where they are written)."""

    def ship_reviews(self) -> None:
        """The review log is appended and fsynced in place already."""

    def file_check(self) -> Callable[[JobRecord], FileCheck]:
        return check_file(self.local)

    def move_ledger_aside(self) -> str | None:
        moved = move_ledger_aside(self.local)
        return str(moved) if moved is not None else None

    def __repr__(self) -> str:
        return f"LocalRunDir({str(self.local)!r})"

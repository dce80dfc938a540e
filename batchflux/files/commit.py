"""Group commit for whole files: many small files made durable in one worker-thread trip.

A downloaded image is verified in memory; what is left is to put it at ``dest`` so that a crash or
a power cut leaves either nothing or the whole file: a temp file beside ``dest``, written, made
durable, renamed, and the directory fsynced so the rename survives too. One worker-thread trip per
file costs more than the disk work: at a few hundred images a second the trips (thread wake-ups,
futures crossing threads, the GIL changing hands: ~130 µs of CPU each on a 2-core VM) dominate.
So batches start at least ``min_interval`` apart (50 ms): a lone file goes at once, and files that
arrive while a batch is pending or being written wait for the next one, which takes them all in
one trip — the ledger's group commit, applied to images. At full speed that is at most 20 trips a
second, whatever the image rate.

Within a batch, every temp file is written first; then one ``syncfs`` per filesystem makes them all
durable with one device flush (Linux; elsewhere, or if it fails, each file is fsynced); then each
is renamed into place and each directory fsynced once. On this VM's virtio disk that is ~44 µs of
CPU per small image instead of ~122 µs with an fsync each.

No task runs in the background. A caller that finds no batch under way sends one to the worker
thread, or sets a timer for when the spacing allows; when a batch is done, a loop callback hands
every file its outcome and sends (or times) the next if files are waiting. A caller cancelled
before its file was taken withdraws it; once taken, the file is written anyway (it is whole and
verified, merely not yet recorded).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass

from batchflux.files.durable import create_temp, fsync_dir, syncfs

__all__ = ["FileCommitter"]

MIN_INTERVAL_S = 0.05
MAX_BATCH = 256


@dataclass(eq=False, slots=True)
class _File:
    dest: str  # a string, not a Path: pathlib costs more here than the rest of the bookkeeping
    data: bytes
    outcome: asyncio.Future[None]


class FileCommitter:
    """Writes whole files durably, batching the ones that arrive together into one thread trip.

    One per event loop (create it inside the loop it serves). :meth:`write` raises the
    ``OSError`` of its own file only; one file's failure does not fail the others in its batch.
    """

    def __init__(self, *, min_interval: float = MIN_INTERVAL_S) -> None:
        self.min_interval = min_interval
        self._waiting: list[_File] = []
        self._busy = False  # a batch is in the worker thread, or timed to go
        self._last_send = float("-inf")  # loop clock
        self.batches = 0  # thread trips made: what the batching saves is files written / batches

    async def write(self, dest: str | os.PathLike[str], data: bytes) -> None:
        """Return once ``data`` is the whole content of ``dest``, on disk (fsynced, renamed, and the
        directory fsynced). Parent directories are created as needed."""
        loop = asyncio.get_running_loop()
        file = _File(os.fspath(dest), data, loop.create_future())
        self._waiting.append(file)
        if not self._busy:
            self._schedule(loop)
        try:
            await file.outcome  # a cancel cancels this file's own future, nobody else's
        except asyncio.CancelledError:
            if file in self._waiting:  # not taken yet: withdraw it
                self._waiting.remove(file)
            # else taken: it lands anyway, and _settle skips the cancelled outcome
            raise

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send the waiting files now, or when ``min_interval`` has passed since the last batch."""
        self._busy = True
        at = self._last_send + self.min_interval
        if at > loop.time():
            loop.call_at(at, self._send, loop)
        else:
            self._send(loop)

    def _send(self, loop: asyncio.AbstractEventLoop) -> None:
        # Every file of a batch holds a descriptor open until the batch is synced.
        batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
        if not batch:  # every file withdrawn while the batch was timed
            self._busy = False
            return
        self._last_send = loop.time()
        self.batches += 1
        work = loop.run_in_executor(None, _write_batch, batch)
        work.add_done_callback(lambda done: self._settle(loop, batch, done))

    def _settle(
        self, loop: asyncio.AbstractEventLoop, batch: list[_File], done: asyncio.Future[list[OSError | None]]
    ) -> None:
        self._busy = False
        if done.cancelled():  # the executor was shut down under us
            errors: list[OSError | None] = [OSError("the file writer was stopped")] * len(batch)
        elif (exc := done.exception()) is not None:
            errors = [OSError(f"the file writer failed: {exc!r}")] * len(batch)
        else:
            errors = done.result()
        for file, error in zip(batch, errors, strict=True):
            if file.outcome.done():
                continue
            if error is None:
                file.outcome.set_result(None)
            else:
                file.outcome.set_exception(error)
        if self._waiting and not loop.is_closed():
            self._schedule(loop)


def _write_batch(batch: list[_File]) -> list[OSError | None]:
    """In the worker thread: each file written to a temp file beside it; all of them made durable
    (one ``syncfs`` per filesystem where the OS has it, else an fsync each); then renamed into
    place, and each directory fsynced once. Returns each file's error (``None`` when in place)."""
    errors: dict[int, OSError] = {}
    temps: list[tuple[int, _Temp]] = []
    try:
        for i, file in enumerate(batch):
            try:
                temps.append((i, _Temp.write(file)))
            except OSError as exc:
                errors[i] = exc
        _make_durable(temps, errors)
        directories: dict[str, None] = {}
        for i, temp in temps:
            if i not in errors:
                try:
                    temp.rename()
                except OSError as exc:
                    errors[i] = exc
                else:
                    directories[temp.directory] = None
        for directory in directories:
            fsync_dir(directory)
    finally:
        for _, temp in temps:
            temp.discard()
    return [errors.get(i) for i in range(len(batch))]


def _make_durable(temps: list[tuple[int, _Temp]], errors: dict[int, OSError]) -> None:
    by_device: dict[int, list[tuple[int, _Temp]]] = {}
    devices: dict[str, int] = {}  # a file lives on its directory's filesystem: one stat per directory
    for i, temp in temps:
        try:
            device = devices.get(temp.directory)
            if device is None:
                device = devices[temp.directory] = os.stat(temp.directory).st_dev
        except OSError as exc:
            errors[i] = exc
        else:
            by_device.setdefault(device, []).append((i, temp))
    for group in by_device.values():
        if syncfs(group[0][1].fd):
            continue
        for i, temp in group:
            try:
                os.fsync(temp.fd)
            except OSError as exc:
                errors[i] = exc


@dataclass(slots=True)
class _Temp:
    """A file's bytes in a temp file beside its destination, not yet durable or in place."""

    dest: str
    directory: str
    path: str | None  # None once renamed into place
    fd: int
    closed: bool = False

    @classmethod
    def write(cls, file: _File) -> _Temp:
        directory, name = os.path.split(file.dest)
        directory = directory or os.curdir
        try:
            fd, path = create_temp(directory, name)
        except FileNotFoundError:
            os.makedirs(directory, exist_ok=True)
            fd, path = create_temp(directory, name)
        temp = cls(file.dest, directory, path, fd)
        try:
            view = memoryview(file.data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            temp.discard()
            raise
        return temp

    def rename(self) -> None:
        assert self.path is not None
        self._close()
        os.replace(self.path, self.dest)
        self.path = None

    def discard(self) -> None:
        """Close it, and remove it unless it was renamed into place."""
        with contextlib.suppress(OSError):
            self._close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.path = None

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)

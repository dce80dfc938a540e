"""The downloader's file half: verify a result's image as it streams in, and put it in place atomically.

:func:`download_image` reads the body that the API client's :meth:`media` GET yields (HTTP status,
size cap, ``Content-Length`` and transport failures are checked there, at the HTTP boundary: see
:mod:`batchflux.api.media`). Bytes are hashed (sha256) as they arrive and kept in memory up to
:data:`SPILL_BYTES`; a larger body spills to the temp file as it streams, so memory stays bounded
whatever the size. The temp file lives next to ``dest`` (same filesystem, so the final
``os.replace`` is atomic), is fsynced before the rename, the directory after it, and is removed on
any failure or cancellation: ``dest`` is either absent or a whole, verified image.

An image under :data:`SPILL_BYTES` (a JPEG, a small PNG) never touches the disk until it is
verified, and then makes one trip to a worker thread (write, fsync, rename together) — or, given a
:class:`~batchflux.files.commit.FileCommitter` (as the engine does), shares one with every image that
finished meanwhile, made durable together. A larger one (a full-size PNG is often 1–2 MB) spills
as it streams and is committed in a trip of its own. tests/bench/bench_outputs.py compares the
ways of writing, aiofiles included.

Verification here: the format's magic bytes (PNG ``\\x89PNG\\r\\n\\x1a\\n``, JPEG ``\\xff\\xd8\\xff``)
and its trailer (PNG ends with the IEND chunk, JPEG with the EOI marker ``\\xff\\xd9``) — the
trailer catches a truncation that arrives without a ``Content-Length``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol

from batchflux.api.errors import DownloadError
from batchflux.files.commit import FileCommitter
from batchflux.files.durable import DISK_FULL_ERRNOS, WriteFailed, create_temp, fsync_dir

__all__ = ["MAGIC", "DownloadError", "Downloaded", "check_image_bytes", "download_image", "file_digest"]

MAGIC: Final = {"png": b"\x89PNG\r\n\x1a\n", "jpg": b"\xff\xd8\xff", "jpeg": b"\xff\xd8\xff"}
_PNG_TRAILER: Final = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_TRAILER: Final = b"\xff\xd9"
_TAIL = 16  # bytes kept from the end of the stream for the trailer check
SPILL_BYTES: Final = 1 << 20  # keep up to this much in memory before writing to the temp file


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A verified image in place: its path (as the caller gave it), size in bytes and sha256 (hex)."""

    path: str | os.PathLike[str]
    size: int
    sha256: str


class MediaBody(Protocol):
    """A media answer's body as it streams in (:class:`batchflux.api.media.MediaBody`)."""

    @property
    def where(self) -> object: ...  # the URL as messages show it

    def chunks(self) -> AsyncIterator[bytes]: ...


class MediaGet(Protocol):
    """``async with`` one media GET (:class:`batchflux.api.media.MediaGet`)."""

    async def __aenter__(self) -> MediaBody: ...
    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> object: ...


OpenMedia = Callable[[str], MediaGet]


async def download_image(
    open_media: OpenMedia,
    url: str,
    dest: str | os.PathLike[str],
    *,
    output_format: str,
    committer: FileCommitter | None = None,
) -> Downloaded:
    """Fetch ``url`` through ``open_media`` (the API client's :meth:`media`) into ``dest`` (parents
    created), verified as an ``output_format`` image.

    With a ``committer``, an image that fit in memory is written in its next batch (one thread trip
    for all the images that finish together) instead of a thread trip of its own, after the GET
    has ended (it then holds no media slot).

    Raises :class:`DownloadError` (``retryable`` says whether the same URL may work next time);
    on any failure ``dest`` is untouched and no temp file remains.
    """
    fmt = output_format.lower()
    if fmt not in MAGIC:
        raise ValueError(f"unknown output format {output_format!r}")
    spool = _Spool(dest, committer)
    try:
        digest = hashlib.sha256()
        head = b""
        tail = b""
        size = 0
        try:
            async with open_media(url) as body:
                where = body.where
                async for chunk in body.chunks():
                    size += len(chunk)
                    digest.update(chunk)
                    if len(head) < _TAIL:
                        head += chunk[: _TAIL - len(head)]
                    tail = (tail + chunk[-_TAIL:])[-_TAIL:]
                    await spool.write(chunk)
        except _LocalWriteError as exc:
            raise _local_failure(dest, exc) from exc
        check_image_bytes(head, tail, fmt, where=where)
        try:
            await spool.commit()
        except _LocalWriteError as exc:
            raise _local_failure(dest, exc) from exc
    except BaseException:
        spool.discard()
        raise
    return Downloaded(path=dest, size=size, sha256=digest.hexdigest())


def check_image_bytes(head: bytes, tail: bytes, output_format: str, *, where: object = "media") -> None:
    """Raise :class:`DownloadError` unless ``head``/``tail`` (first/last bytes) look like a whole image.

    A wrong magic is not retryable (the server made something else); a missing trailer after the
    right magic is a truncation, retryable.
    """
    fmt = output_format.lower()
    magic = MAGIC[fmt]
    if not head:
        raise DownloadError(f"{where}: empty body", retryable=True)
    if not head.startswith(magic):
        html = head.lstrip().startswith(b"<")  # an error page served as 200 may be gone next time
        raise DownloadError(f"{where}: not a {fmt.upper()} image (starts {head[:8]!r})", retryable=html)
    if fmt == "png":
        whole = tail.endswith(_PNG_TRAILER)
    else:  # tolerate padding some encoders leave after the EOI marker
        whole = tail.rstrip(b"\x00\r\n\t ").endswith(_JPEG_TRAILER)
    if not whole:
        raise DownloadError(f"{where}: {fmt.upper()} image is truncated (no end marker)", retryable=True)


def file_digest(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of a file on disk, read in chunks: resume's integrity check."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256")
        return f.tell(), digest.hexdigest()


def _local_failure(dest: str | os.PathLike[str], exc: _LocalWriteError) -> Exception:
    """A full or read-only disk stops the run (:class:`WriteFailed`); any other local error (a file
    where a directory should be, no permission) fails this one image, not retryable."""
    cause = exc.__cause__
    if isinstance(cause, OSError) and cause.errno in DISK_FULL_ERRNOS:
        return WriteFailed(dest, cause)
    return DownloadError(f"could not write {dest}: {cause}", retryable=False)


class _LocalWriteError(Exception):
    """An OSError on our side of the download (disk full, permissions), raised ``from`` it."""


class _Spool:
    """Bytes on their way to ``dest``: in memory up to :data:`SPILL_BYTES`, then in a temp file
    beside ``dest``. File work runs in a worker thread; a lock keeps :meth:`discard` (run on
    failure or cancellation, possibly while that thread is mid-write) from racing it."""

    def __init__(self, dest: str | os.PathLike[str], committer: FileCommitter | None = None) -> None:
        self._dest = dest
        self._committer = committer
        self._buffer = bytearray()
        self._fd: int | None = None
        self._tmp: str | None = None
        self._lock = threading.Lock()

    async def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        if len(self._buffer) >= SPILL_BYTES:
            data = bytes(self._buffer)
            self._buffer.clear()
            await asyncio.to_thread(self._locked, self._write_all, data)

    async def commit(self) -> None:
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._committer is not None and self._fd is None:  # never spilled: all of it is in ``data``
            try:
                await self._committer.write(self._dest, data)
            except OSError as exc:
                raise _LocalWriteError(str(exc)) from exc
            return
        await asyncio.to_thread(self._locked, self._commit, data)

    def discard(self) -> None:
        with self._lock:
            self._close()
            if self._tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._tmp)
                self._tmp = None

    def _locked(self, step: Callable[[bytes], None], data: bytes) -> None:
        with self._lock:
            try:
                step(data)
            except OSError as exc:
                raise _LocalWriteError(str(exc)) from exc

    def _write_all(self, data: bytes) -> None:
        if self._fd is None:
            dest = Path(self._dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, self._tmp = create_temp(str(dest.parent), dest.name)
            self._fd = fd
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def _commit(self, data: bytes) -> None:
        self._write_all(data)
        assert self._fd is not None
        assert self._tmp is not None
        os.fsync(self._fd)
        self._close()
        os.replace(self._tmp, self._dest)
        self._tmp = None
        fsync_dir(Path(self._dest).parent)

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

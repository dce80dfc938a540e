"""Where a run directory's objects live: one small interface, zarr-python 3's ``abc.store.Store``
shape, with keys as ``/``-separated relative names.

    get(key)              -> bytes, or None when there is no such object
    set(key, data)        readers see the old object or the new one, never a mix
    set_if_absent(key, d) -> False when the key already exists (a conditional write)
    head(key)             -> Meta (size, etag, modified), or None
    list(prefix)          -> every key under prefix, with its Meta
    delete(key)

:class:`LocalStore` is a directory (atomic replace-by-rename, ``O_EXCL`` for set-if-absent);
:class:`batchflux.rundir.objects.ObjectStore` is a bucket prefix. Failures of the store itself
(unreachable, refused) are :class:`StoreUnavailable`; nothing above this module sees a client
library's exception types.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from batchflux.files.durable import atomic_write_bytes, fsync_dir


class StoreUnavailable(Exception):
    """The store could not be reached or refused the call: what, and why, for one line to the user
    (never a credential)."""


class BadKey(ValueError):
    """A key that would leave the store's root (absolute, ``..``) or is empty."""


@dataclass(frozen=True, slots=True)
class Meta:
    key: str
    size: int
    etag: str | None = None
    modified: float | None = None  # unix seconds


def check_key(key: str) -> str:
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or key.endswith("/"):
        raise BadKey(f"not a key inside the run directory: {key!r}")
    return key


class Store(ABC):
    """A flat namespace of whole objects under one root (a directory or a bucket prefix)."""

    where: str  # what the user sees: the path or the URL

    @abstractmethod
    def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    def set(self, key: str, data: bytes) -> Meta: ...

    @abstractmethod
    def set_if_absent(self, key: str, data: bytes) -> bool: ...

    @abstractmethod
    def head(self, key: str) -> Meta | None: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[Meta]: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    def url_of(self, key: str) -> str:
        """Where the user finds ``key``: a path or a URL."""
        return f"{self.where.rstrip('/')}/{key}"


class LocalStore(Store):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def set(self, key: str, data: bytes) -> Meta:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        return Meta(key, len(data))

    def set_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(path.parent)
        return True

    def head(self, key: str) -> Meta | None:
        try:
            st = self._path(key).stat()
        except OSError:
            return None
        return Meta(key, st.st_size, None, st.st_mtime) if os.path.isfile(self._path(key)) else None

    def list(self, prefix: str = "") -> list[Meta]:
        return sorted(self._walk(prefix), key=lambda m: m.key)

    def _walk(self, prefix: str) -> Iterator[Meta]:
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                full = os.path.join(dirpath, name)
                key = PurePosixPath(os.path.relpath(full, self.root)).as_posix()
                if key.startswith(prefix):
                    try:
                        st = os.stat(full)
                    except OSError:
                        continue
                    yield Meta(key, st.st_size, None, st.st_mtime)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

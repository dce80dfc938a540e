"""Files that survive a crash: directory fsync, filesystem sync and atomic replace-by-rename."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

# A write that fails for one of these fails for every file on that filesystem until someone acts:
# the run stops (exit 75) rather than fail jobs one by one for it.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT})


class WriteFailed(Exception):
    """Writing a run directory's file failed: the path and the OS's error, for one line to the user.
    ``disk_full``: the filesystem is full, read-only or over quota (not this file's fault)."""

    def __init__(self, path: str | os.PathLike[str], error: OSError) -> None:
        self.path = os.fspath(path)
        self.error = error
        super().__init__(f"cannot write {self.path}: {error.strerror or error}")

    @property
    def disk_full(self) -> bool:
        return self.error.errno in DISK_FULL_ERRNOS


def free_bytes(directory: str | os.PathLike[str]) -> int | None:
    """Bytes an unprivileged user may still write on ``directory``'s filesystem; None if unknown."""
    try:
        st = os.statvfs(directory)
    except (OSError, AttributeError):  # no statvfs on Windows
        return None
    return st.f_bavail * st.f_frsize


def _load_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_SYNCFS = _load_syncfs()


def syncfs(fd: int) -> bool:
    """Write back everything on the filesystem that holds ``fd`` (Linux ``syncfs(2)``; the call
    releases the GIL). Many files made durable with one device flush instead of one fsync each:
    on a 2-core VM's virtio disk 44 µs of CPU per small file against 122 µs.

    Returns False where the call does not exist or fails; the caller then fsyncs each file.
    Before Linux 5.8 it reported no writeback errors: a file it "synced" may still be lost to a
    power cut, and resume's size and sha256 check finds it and downloads it again."""
    return _SYNCFS is not None and _SYNCFS(fd) == 0


_TEMP_SEQ = itertools.count()
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def create_temp(directory: str, name: str) -> tuple[int, str]:
    """A new, empty hidden file ``.NAME.<pid>-<n>.part`` in ``directory``, open for writing: the temp
    file a download is written to before its rename to ``NAME``. Created exclusively, with mode 0666
    less the umask: the mode the image keeps after the rename, like any file the user creates
    (mkstemp's 0600 made every image private to its owner). Returns (descriptor, path)."""
    while True:
        path = os.path.join(directory, f".{name}.{os.getpid()}-{next(_TEMP_SEQ)}.part")
        try:
            return os.open(path, _TEMP_FLAGS, 0o666), path
        except FileExistsError:  # left by an earlier process with this pid: take the next number
            continue


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a directory's entries (a created or renamed file) durable; a no-op where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a mix:
    see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix:
    a hidden temp file in the same directory (same filesystem), fsync, ``os.replace``.

    The temp name starts with ``.`` and ends in ``.tmp``, so node_exporter's textfile collector
    (which reads ``*.prom``) never picks it up. ``mode`` is set explicitly because the temp file
    is created private (0600) and a collector usually runs as another user.
    """
    directory = path.parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)

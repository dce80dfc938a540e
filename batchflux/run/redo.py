"""Keep a rejected image aside before its job is redone: ``<stem>.rejected-N.<ext>``, never overwritten.

The image is copied to its new name (a temp file, fsynced, renamed into place: a crash leaves it
whole or absent) — a copy, not a hard link, so that nothing done to the job's file later, in place
or not, can reach the kept one. Rejected images are few; the copy is cheap. Safe to repeat: a
``rejected-N`` that already holds this very image (a run killed between keeping it and recording
it) is the one used again, so an image is kept once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path, PurePosixPath

from batchflux.files.durable import fsync_dir
from batchflux.ledger import JobRecord
from batchflux.ledger.redo import kept_name


def keep_rejected(out_dir: Path, rec: JobRecord) -> str | None:
    """Keep ``rec``'s image aside; its new path relative to ``out_dir``, or None when the image is
    not there (nothing to keep). Raises ``OSError`` when it cannot be kept."""
    relative = PurePosixPath(rec.path or "")
    if not rec.path or relative.is_absolute() or ".." in relative.parts:
        return None
    source = out_dir / relative
    if not source.is_file():
        return None
    digest = rec.sha256 or _sha256(source)
    for n in range(1, 10_000):
        name = kept_name(rec.path, n)
        target = out_dir / name
        if target.exists():
            if _sha256(target) == digest:
                return name  # kept already, by a run that stopped before recording it
            continue
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        try:
            shutil.copyfile(source, tmp)
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(target.parent)
        return name
    raise OSError(f"no free name to keep {source} aside")


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()

"""``--out`` as given: a local path, or a bucket URL (``s3://``, ``gs://``, ``az://``); the one
place that tells them apart."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from batchflux.rundir.base import LocalRunDir, RunDir, TargetError

BUCKET_SCHEMES = ("s3", "gs", "az")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_url(target: str | os.PathLike[str]) -> bool:
    """``target`` names a bucket (or any ``scheme://``): never a local directory named ``s3:``."""
    return isinstance(target, str) and _URL.match(target) is not None


def default_spool(url: str) -> Path:
    """Under the user's cache directory, one folder per URL: ``…/batchflux/spool/<host-ish>-<hash>``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha256(url.rstrip("/").encode("utf-8")).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", url.split("://", 1)[-1]).strip("-")[:48]
    return Path(base) / "batchflux" / "spool" / f"{readable}-{digest}"


def open_run_dir(target: str | os.PathLike[str], *, spool: Path | None = None) -> RunDir:
    """The run directory ``target`` names. Raises :class:`TargetError` for a URL that cannot be
    used here (an unknown scheme; a bucket without the ``[s3]`` extra installed)."""
    if not is_url(target):
        return LocalRunDir(Path(target))
    url = str(target)
    scheme = url.split("://", 1)[0].lower()
    if scheme not in BUCKET_SCHEMES:
        raise TargetError(f"--out {url}: not a local path nor a bucket URL (s3://, gs://, az://)")
    from batchflux.rundir.bucket import BucketRunDir
    from batchflux.rundir.objects import open_object_store

    store = open_object_store(url)
    return BucketRunDir(store, spool if spool is not None else default_spool(url))

"""The output images of run directories in a bucket, for the review page: the spool the review
reads holds the ledger but not the images (a run's ship lets them go), so an image the bucket
holds is fetched into the spool when the page first asks for it, and kept there for the session."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from batchflux.files.durable import atomic_write_bytes
from batchflux.rundir import RunDir


class StoredImages:
    """Which images the run directories hold (their spools, or their store as listed once) and
    how to bring one into its spool."""

    def __init__(self, rundirs: Sequence[RunDir]) -> None:
        self._dirs = [(rd.local, rd, set(rd.names())) for rd in rundirs]

    def _find(self, path: Path) -> tuple[RunDir, str] | None:
        for local, rundir, names in self._dirs:
            if path.is_relative_to(local):
                name = path.relative_to(local).as_posix()  # a listed key is never ``..``
                return (rundir, name) if name in names else None
        return None

    def exists(self, path: Path) -> bool:
        return path.is_file() or self._find(path) is not None

    def fetch(self, path: Path) -> Path | None:
        """``path`` on local disk, fetched from the store if need be; None when it is not there.
        Raises :class:`~batchflux.rundir.store.StoreUnavailable`."""
        if path.is_file():
            return path
        found = self._find(path)
        if found is None:
            return None
        rundir, name = found
        data = rundir.read(name)
        if data is None:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        return path

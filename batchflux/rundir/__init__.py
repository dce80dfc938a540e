"""The run directory, local or in a bucket: one interface (:class:`RunDir`) that the runner, the
readers and the CLI use, and nothing above it asks which one it is.

    open_run_dir("out/catalog")             -> LocalRunDir   (the directory itself)
    open_run_dir("s3://bucket/catalog")     -> BucketRunDir  (a local spool + an object store)

Both are made of a :class:`~batchflux.rundir.store.Store` (zarr-python 3's ``abc.store.Store``
shape: get, set, set-if-absent, list, delete) and a working directory on local disk where the
ledger is appended and fsynced and images are committed; a bucket run directory ships what is new
from that spool to its store.
"""

from batchflux.rundir.base import RunDir, TargetError
from batchflux.rundir.lock import LockHeld
from batchflux.rundir.target import is_url, open_run_dir

__all__ = ["LockHeld", "RunDir", "TargetError", "is_url", "open_run_dir"]

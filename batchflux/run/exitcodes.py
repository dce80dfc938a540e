"""The exit codes: the contract with cron and monitoring (docs/reference/exit-codes.md)."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # every job done, every image on disk
    JOBS_FAILED = 1  # run finished; some jobs failed permanently
    USAGE = 2  # usage or manifest error; nothing was submitted
    STOPPED = 3  # stopped by the API or a cap (auth, credits, budget); resumable
    LOCKED = 4  # another run holds the lock for this output directory
    TEMPFAIL = 75  # a temporary failure (sysexits' EX_TEMPFAIL): API unreachable, disk full; resumable
    INTERRUPTED = 130  # interrupted by a signal; resumable

"""Sharding: ``--shard K/N`` runs a stable, disjoint part of one manifest's jobs.

A job belongs to shard ``K`` of ``N`` when the first 8 bytes of ``sha256(job id)``, read as a
big-endian integer, are ``K`` modulo ``N``. The hash is fixed across processes, machines and
Python versions (unlike ``hash()``, which is salted per process), so every shard computes the
same partition: shards are disjoint and together cover every job.

``K`` is 0-based, ``0 <= K < N``, exactly like Kubernetes' ``$JOB_COMPLETION_INDEX`` in an
Indexed Job with ``completions: N``.

The account's rate quota is shared by all shards, so each one paces at ``rpm / N``
(:meth:`Shard.rate_share`, :meth:`Shard.share_window`).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

_SHARD_RE = re.compile(r"(\d+)/(\d+)")


def _bucket(job_id: str, count: int) -> int:
    digest = hashlib.sha256(job_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count`` (``0 <= index < count``)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"shard count must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index must be in 0..{self.count - 1}, got {self.index}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, job_id: str) -> bool:
        """Whether the job with this id belongs to this shard."""
        return self.count == 1 or _bucket(job_id, self.count) == self.index

    def rate_share(self, rpm: float) -> float:
        """This shard's part of an account-wide rate: ``rpm / N``."""
        return rpm / self.count

    def share_window(self, limit: int, period_s: float) -> tuple[int, float]:
        """This shard's part of a windowed quota ``limit`` per ``period_s``, as a whole count per window.

        When every shard gets at least one request per window, each gets ``floor(limit / N)`` in
        the same window, so the shards together can never exceed the quota in any window (a
        remainder of ``limit mod N`` goes unused). With fewer requests than shards, each gets one
        request per ``period_s * N / limit`` seconds: the same average rate; the shared 429 pause
        absorbs the rare overlap.
        """
        if limit < 1:
            raise ValueError(f"rate limit must be at least 1 per window, got {limit}")
        if not (period_s > 0 and math.isfinite(period_s)):
            raise ValueError(f"rate period must be a positive number of seconds, got {period_s}")
        if limit >= self.count:
            return limit // self.count, period_s
        return 1, period_s * self.count / limit


def parse_shard(text: str) -> Shard:
    """Parse ``"K/N"`` (``0 <= K < N``). Raises ``ValueError`` with a message fit for the user."""
    match = _SHARD_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"--shard expects K/N with whole numbers, e.g. 0/4 for the first of four shards; got {text!r}"
        )
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ValueError(f"--shard {text}: the number of shards N must be at least 1")
    if index >= count:
        hint = ", ".join(f"{k}/{count}" for k in range(min(count, 3)))
        more = ", …" if count > 3 else ""
        raise ValueError(
            f"--shard {text}: K must be in 0..{count - 1}; shard numbers are 0-based like Kubernetes' "
            f"$JOB_COMPLETION_INDEX ({hint}{more})"
        )
    return Shard(index, count)

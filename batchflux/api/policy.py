"""Retry policy: pure decisions about failed calls, no I/O and no event loop.

Every function takes what varies (the random source, "now") as an argument, so the engine's
behaviour under failure is tested with plain tables and Hypothesis properties.

- :func:`backoff_delay` — exponential backoff with *full jitter* (AWS architecture blog,
  "Exponential Backoff And Jitter"; hynek/stamina ``_compute_backoff``): a delay drawn
  uniformly from ``[0, min(cap, base * 2**attempt)]``. Full jitter spreads a herd of callers
  that failed together over the whole interval instead of waking them in lock-step.
- :func:`parse_reset_header` / :func:`parse_retry_after` — what a 429 says about when to come
  back, as seconds from now, never negative, ``None`` when unreadable (they never raise).
- :func:`rate_limit_delay` — the header's delay plus a small cushion, else backoff.
- :func:`classify_failure_text` — the cause of a FAILED job from the server's error text.
"""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # runtime import would be circular (the client uses this module)
    from batchflux.api.errors import RateLimited

# A 429 reset time is usually given to the second; waking a little after it avoids a second 429
# from clocks that disagree by a few milliseconds, and the jitter keeps callers from stampeding.
RATE_LIMIT_CUSHION_S = 0.05
RATE_LIMIT_JITTER_S = 0.1
# Never park the whole run for longer than this on one 429 (a wild clock skew or a daily quota);
# after the wait the call is simply tried again and the server tells us anew.
RATE_LIMIT_MAX_WAIT_S = 300.0

# ``base * 2**attempt`` overflows a float near attempt 1024; past this the cap always wins anyway.
_MAX_EXPONENT = 64


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 30.0, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry), full jitter.

    The result lies in ``[0, min(cap, base * 2**attempt)]``. Negative attempts count as 0.
    """
    exponent = min(max(attempt, 0), _MAX_EXPONENT)
    ceiling = min(cap, base * (2.0**exponent))
    if not ceiling > 0.0:  # also catches NaN
        return 0.0
    return rng.uniform(0.0, ceiling)


def parse_reset_header(value: str, now_unix: float) -> float | None:
    """Seconds from ``now_unix`` until the time in an ``x-rate-limit-reset-at-utc`` header.

    Accepts ISO-8601 (``2025-01-01T12:00:00Z``, fractional seconds, ``+00:00`` offsets; a time
    without an offset is taken as UTC, as the header's name says) and, tolerantly, a bare Unix
    timestamp (seconds or milliseconds) or a small number of seconds until the reset. A time in
    the past gives 0.0. Junk gives ``None``; never raises.
    """
    text = value.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if math.isfinite(number):
        if number > 1e12:  # milliseconds since the epoch
            number /= 1000.0
        if number > 1e9:
            return _seconds_until(number, now_unix)
        return number if 0.0 <= number <= 86_400.0 else None  # "seconds until reset", as some APIs send
    try:
        # 3.11's fromisoformat takes "Z" and fractional seconds of any length; normalise "z" and a space.
        when = datetime.fromisoformat(text.replace("z", "Z").replace(" ", "T", 1))
    except (ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return _seconds_until(when.timestamp(), now_unix)
    except (OverflowError, OSError, ValueError):
        return None


def parse_retry_after(value: str, now_unix: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).

    Never negative; junk gives ``None``; never raises.
    """
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 850 / asctime forms carry no zone but mean GMT
        when = when.replace(tzinfo=UTC)
    try:
        return _seconds_until(when.timestamp(), now_unix)
    except (OverflowError, OSError, ValueError):
        return None


_DELTA_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")


def _seconds_until(when_unix: float, now_unix: float) -> float | None:
    delay = when_unix - now_unix
    if not math.isfinite(delay):
        return None
    return max(0.0, delay)


def rate_limit_delay(
    err: RateLimited, attempt: int, rng: random.Random, *, base: float = 0.5, cap: float = 30.0
) -> float:
    """How long every caller pauses after a 429.

    The server's own answer (``err.delay_s``) plus a small cushion and jitter when it gave one,
    bounded by :data:`RATE_LIMIT_MAX_WAIT_S`; otherwise :func:`backoff_delay` for this attempt.
    """
    if err.delay_s is not None and math.isfinite(err.delay_s):
        wait = max(0.0, err.delay_s) + RATE_LIMIT_CUSHION_S + rng.uniform(0.0, RATE_LIMIT_JITTER_S)
        return min(wait, RATE_LIMIT_MAX_WAIT_S)
    return backoff_delay(attempt, base=base, cap=cap, rng=rng)


_MODERATION = re.compile(r"block|moderat|nsfw|safety|content", re.IGNORECASE)
_INVALID = re.compile(
    r"param|invalid|must be|not (?:a )?(?:valid|supported|allowed)|unsupported|required|validation"
    r"|out of range|too (?:large|long|big)|cannot (?:be )?(?:decode|read|open|download)"
    r"|unable to (?:decode|read)",
    re.IGNORECASE,
)


def classify_failure_text(error: str) -> str:
    """The cause of a failed job, from the server's error text.

    ``"moderation"`` when the text mentions blocking, moderation, NSFW, safety or content;
    ``"invalid"`` when it names a parameter or invalid input; ``"server"`` otherwise.
    Moderation wins over invalid: "input blocked by safety filter: invalid content" is a block.
    """
    if _MODERATION.search(error):
        return "moderation"
    if _INVALID.search(error):
        return "invalid"
    return "server"

"""The retry policy: table tests and Hypothesis properties, no event loop."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchflux.api import RateLimited, policy
from batchflux.api.policy import (
    RATE_LIMIT_CUSHION_S,
    RATE_LIMIT_JITTER_S,
    RATE_LIMIT_MAX_WAIT_S,
    backoff_delay,
    classify_failure_text,
    parse_reset_header,
    parse_retry_after,
    rate_limit_delay,
)

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()


# -- backoff -------------------------------------------------------------------------------------


@given(
    attempt=st.integers(min_value=-5, max_value=10_000),
    base=st.floats(min_value=0.0, max_value=100.0),
    cap=st.floats(min_value=0.0, max_value=1000.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_stays_within_full_jitter_bounds(attempt: int, base: float, cap: float, seed: int) -> None:
    delay = backoff_delay(attempt, base=base, cap=cap, rng=random.Random(seed))
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), 64))
    assert 0.0 <= delay <= ceiling


def test_backoff_ceiling_doubles_then_caps() -> None:
    # With a source that always returns the top of the range, the delay is the ceiling itself.
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    top = Top()
    assert [backoff_delay(n, base=0.5, cap=30.0, rng=top) for n in range(9)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
        30.0,
    ]
    assert backoff_delay(100_000, rng=top) == 30.0
    assert backoff_delay(-3, rng=top) == 0.5


def test_backoff_is_jittered_over_the_whole_interval() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(4, base=1.0, cap=100.0, rng=rng) for _ in range(2000)]
    assert min(delays) < 1.0  # full jitter reaches near zero ...
    assert max(delays) > 15.0  # ... and near the ceiling (16)
    assert 6.0 < sum(delays) / len(delays) < 10.0  # mean of U(0, 16) is 8


def test_backoff_is_deterministic_for_a_seed() -> None:
    a = [backoff_delay(n, rng=random.Random(1)) for n in range(5)]
    b = [backoff_delay(n, rng=random.Random(1)) for n in range(5)]
    assert a == b


# -- 429 headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-03-01T12:00:30Z", 30.0),
        ("2025-03-01T12:00:30.500Z", 30.5),
        ("2025-03-01T12:00:30.123456789Z", 30.123),  # more digits than microseconds
        ("2025-03-01T12:00:30+00:00", 30.0),
        ("2025-03-01T13:00:30+01:00", 30.0),
        ("2025-03-01T12:00:30", 30.0),  # no offset: UTC, as the header's name says
        ("2025-03-01 12:00:30z", 30.0),
        ("  2025-03-01T12:01:00Z  ", 60.0),
        ("2025-03-01T11:59:00Z", 0.0),  # in the past: no wait, never negative
        (str(int(NOW) + 12), 12.0),  # a bare Unix timestamp
        (str(int(NOW * 1000) + 2500), 2.5),  # ... in milliseconds
        ("7", 7.0),  # seconds until the reset
        ("", None),
        ("soon", None),
        ("-5", None),
        ("nan", None),
        ("inf", None),
        ("2025-13-45T99:00:00Z", None),
        ("9999-12-31T23:59:59Z", 253402300799.0 - NOW),
    ],
)
def test_parse_reset_header(value: str, expected: float | None) -> None:
    got = parse_reset_header(value, NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("Sat, 01 Mar 2025 12:00:45 GMT", 45.0),  # IMF-fixdate
        ("Saturday, 01-Mar-25 12:00:45 GMT", 45.0),  # RFC 850
        ("Sat Mar  1 12:00:45 2025", 45.0),  # asctime
        ("Sat, 01 Mar 2025 11:00:00 GMT", 0.0),  # past
        ("-1", None),
        ("1e3", None),
        ("", None),
        ("tomorrow", None),
        ("Sat, 99 Foo 2025 99:99:99 GMT", None),
    ],
)
def test_parse_retry_after(value: str, expected: float | None) -> None:
    got = parse_retry_after(value, NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-3)


@given(st.text(max_size=60), st.floats(allow_nan=True, allow_infinity=True))
def test_header_parsers_never_raise_and_never_go_negative(value: str, now: float) -> None:
    for parse in (parse_reset_header, parse_retry_after):
        got = parse(value, now)
        assert got is None or (math.isfinite(got) and got >= 0.0)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_reset_header_round_trips_any_utc_time(when: datetime) -> None:
    stamp = when.replace(tzinfo=UTC)
    got = parse_reset_header(stamp.isoformat().replace("+00:00", "Z"), NOW)
    assert got == pytest.approx(max(0.0, stamp.timestamp() - NOW), abs=1e-5)


def test_rate_limit_delay_uses_the_header_with_a_small_cushion() -> None:
    rng = random.Random(3)
    for _ in range(200):
        delay = rate_limit_delay(RateLimited(delay_s=12.0), attempt=5, rng=rng)
        assert 12.0 + RATE_LIMIT_CUSHION_S <= delay <= 12.0 + RATE_LIMIT_CUSHION_S + RATE_LIMIT_JITTER_S


def test_rate_limit_delay_without_a_header_backs_off() -> None:
    delays = [
        rate_limit_delay(RateLimited(delay_s=None), attempt=3, rng=random.Random(s)) for s in range(200)
    ]
    assert all(0.0 <= d <= 4.0 for d in delays)  # base 0.5 * 2**3
    assert len(set(delays)) > 100  # jittered


def test_rate_limit_delay_is_bounded_whatever_the_server_says() -> None:
    delay = rate_limit_delay(RateLimited(delay_s=86_400.0), attempt=0, rng=random.Random(0))
    assert delay == RATE_LIMIT_MAX_WAIT_S
    assert rate_limit_delay(RateLimited(delay_s=math.inf), attempt=0, rng=random.Random(0)) <= 0.5


# -- failure causes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("Content blocked by moderation", "moderation"),
        ("NSFW content detected", "moderation"),
        ("Image flagged by safety checker", "moderation"),
        ("Request blocked", "moderation"),
        ("prompt failed moderation", "moderation"),
        ("invalid aspect_ratio '7:3'", "invalid"),
        ("Invalid input image", "invalid"),
        ("parameter seed must be an integer", "invalid"),
        ("input_image: unsupported format", "invalid"),
        ("could not decode input image: cannot decode", "invalid"),
        ("prompt is required", "invalid"),
        ("Worker crashed: CUDA out of memory", "server"),
        ("Internal error", "server"),
        ("", "server"),
        ("blocked: invalid content", "moderation"),  # moderation wins
    ],
)
def test_classify_failure_text(text: str, cause: str) -> None:
    assert classify_failure_text(text) == cause


@given(st.text(max_size=200))
def test_classify_failure_text_is_total(text: str) -> None:
    assert classify_failure_text(text) in {"moderation", "invalid", "server"}


def test_policy_is_pure() -> None:
    # Nothing in the policy module touches the event loop, the clock or the network.
    source = Path(policy.__file__).read_text(encoding="utf-8")
    for forbidden in ("import asyncio", "aiohttp", "time.time", "time.monotonic", "sleep("):
        assert forbidden not in source

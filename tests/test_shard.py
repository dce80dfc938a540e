"""--shard K/N: parsing, a stable partition that is disjoint and complete, and the rate share."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchflux.run.shard import Shard, parse_shard


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0/1", Shard(0, 1)), ("0/4", Shard(0, 4)), ("3/4", Shard(3, 4)), (" 2/10 ", Shard(2, 10))],
)
def test_parse_valid(text: str, expected: Shard) -> None:
    assert parse_shard(text) == expected
    assert str(parse_shard(text)) == text.strip()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4/4", "K must be in 0..3"),
        ("4/4", "0-based"),
        ("1/0", "at least 1"),
        ("0/0", "at least 1"),
        ("-1/4", "K/N with whole numbers"),
        ("1", "K/N with whole numbers"),
        ("a/b", "K/N with whole numbers"),
        ("1/2/3", "K/N with whole numbers"),
        ("1.0/2", "K/N with whole numbers"),
        ("", "K/N with whole numbers"),
    ],
)
def test_parse_invalid_says_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        parse_shard(text)


def test_direct_construction_is_validated() -> None:
    with pytest.raises(ValueError, match=r"0\.\.1"):
        Shard(2, 2)
    with pytest.raises(ValueError, match="at least 1"):
        Shard(0, 0)


def test_assignment_is_sha256_of_the_id() -> None:
    # Pinned: a change here would move jobs between shards of runs already in progress.
    for job_id in ("a", "img-0001", "ünïcode/☃", ""):
        bucket = int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:8], "big") % 7
        assert [Shard(k, 7).owns(job_id) for k in range(7)] == [k == bucket for k in range(7)]


def test_assignment_is_the_same_in_another_process() -> None:
    # hash() is salted per process; the shard function must not be.
    ids = [f"job-{i}" for i in range(50)]
    code = (
        "import sys; from batchflux.run.shard import Shard; "
        "print(''.join(str(next(k for k in range(5) if Shard(k, 5).owns(i))) for i in sys.argv[1:]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *ids],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    ).stdout.strip()
    here = "".join(str(next(k for k in range(5) if Shard(k, 5).owns(i))) for i in ids)
    assert out == here
    assert len(set(here)) > 1  # 50 ids over 5 shards: more than one shard is used


@given(ids=st.sets(st.text(max_size=30), max_size=200), count=st.integers(min_value=1, max_value=64))
def test_shards_are_disjoint_and_complete(ids: set[str], count: int) -> None:
    owners = {job_id: [k for k in range(count) if Shard(k, count).owns(job_id)] for job_id in ids}
    assert all(len(shards) == 1 for shards in owners.values())


def test_partition_is_roughly_even() -> None:
    count = 8
    sizes = [sum(Shard(k, count).owns(f"row-{i}") for i in range(8000)) for k in range(count)]
    assert sum(sizes) == 8000
    # Expected 1000 each with a standard deviation of about 30; the ids are fixed, so this is deterministic.
    assert min(sizes) > 800
    assert max(sizes) < 1200


def test_rate_share() -> None:
    assert Shard(0, 1).rate_share(50) == 50
    assert Shard(2, 4).rate_share(50) == 12.5


@pytest.mark.parametrize(
    ("count", "limit", "period", "expected"),
    [
        (1, 50, 60.0, (50, 60.0)),
        (4, 50, 60.0, (12, 60.0)),
        (5, 50, 60.0, (10, 60.0)),
        (10, 5, 60.0, (1, 120.0)),
        (3, 1, 6.0, (1, 18.0)),
    ],
)
def test_share_window_never_exceeds_the_quota(
    count: int, limit: int, period: float, expected: tuple[int, float]
) -> None:
    share = Shard(0, count).share_window(limit, period)
    assert share == expected
    # Together the shards never send more per window than the quota when each gets a whole share.
    if limit >= count:
        assert share[0] * count <= limit


def test_share_window_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Shard(0, 2).share_window(0, 60.0)
    with pytest.raises(ValueError, match="positive"):
        Shard(0, 2).share_window(10, 0.0)

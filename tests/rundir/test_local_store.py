"""The run-directory seam on local disk: the store's contract, and ``--out`` telling paths from URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchflux.rundir import is_url, open_run_dir
from batchflux.rundir.base import LocalRunDir
from batchflux.rundir.store import BadKey, LocalStore
from batchflux.rundir.target import default_spool


def test_local_store_contract(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert store.get("a/b.txt") is None
    store.set("a/b.txt", b"one")
    store.set("a/b.txt", b"two")
    assert store.get("a/b.txt") == b"two"
    assert store.set_if_absent("lease", b"mine") is True
    assert store.set_if_absent("lease", b"theirs") is False
    assert store.get("lease") == b"mine"
    assert [m.key for m in store.list("a/")] == ["a/b.txt"]
    assert store.head("a/b.txt") is not None
    assert store.head("a/b.txt").size == 3
    store.delete("a/b.txt")
    store.delete("a/b.txt")  # twice is harmless
    assert store.head("a/b.txt") is None
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../x", "a/../../x", "dir/"])
def test_keys_stay_inside(tmp_path: Path, key: str) -> None:
    with pytest.raises(BadKey):
        LocalStore(tmp_path).set(key, b"x")


@pytest.mark.parametrize(
    ("text", "url"),
    [("s3://bucket/x", True), ("gs://b", True), ("az://c/p", True), ("out/x", False), ("s3:", False)],
)
def test_urls_are_told_from_paths(text: str, url: bool) -> None:
    assert is_url(text) is url


def test_a_path_is_a_local_run_dir(tmp_path: Path) -> None:
    rundir = open_run_dir(tmp_path / "out")
    assert isinstance(rundir, LocalRunDir)
    assert rundir.local == (tmp_path / "out").resolve()
    rundir.write("summary.json", b"{}")
    assert rundir.read("summary.json") == b"{}"
    assert rundir.names() == ["summary.json"]


def test_the_default_spool_is_per_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    a, b = default_spool("s3://bucket/a"), default_spool("s3://bucket/b")
    assert a != b
    assert a.parent == b.parent == tmp_path / "batchflux" / "spool"
    assert default_spool("s3://bucket/a/") == a


def test_a_signed_url_is_recorded_by_its_hash_and_still_matches() -> None:
    from batchflux.ledger.reconcile import Intent, body_matches, input_sent

    params = {"prompt": "p", "input_image": "s3://b/in/cat.jpg"}
    signed = "https://b.s3.amazonaws.com/in/cat.jpg?X-Amz-Signature=abc"
    recorded = input_sent(params, {**params, "input_image": signed})
    assert recorded is not None
    assert recorded.startswith("sha256:")
    assert "Signature" not in recorded
    intent = Intent("j", "m", params, False, recorded, 0.0)
    assert body_matches(intent, {"prompt": "p", "input_image": signed})
    assert not body_matches(intent, {"prompt": "p", "input_image": signed + "x"})
    # An http input sent as written records nothing, as before.
    assert input_sent({"input_image": "https://x/y.png"}, {"input_image": "https://x/y.png"}) is None


def test_python_jobs_as_mappings_need_a_local_out_dir() -> None:
    import asyncio

    import batchflux

    with pytest.raises(ValueError, match="local out_dir"):
        asyncio.run(batchflux.run_batch([{"prompt": "p"}], out_dir="s3://b/x", api_key="k"))


def test_the_ledger_is_the_chain_of_segments_from_offset_0() -> None:
    from batchflux.rundir.bucket import chain, segment_key
    from batchflux.rundir.store import Meta

    segs = [Meta(segment_key(0), 10), Meta(segment_key(10), 5), Meta(segment_key(15), 7)]
    assert chain(segs) == (segs, 22)
    compacted = Meta(segment_key(0), 15)  # 0 and 10 compacted; 15 shipped after
    assert chain([compacted, segs[1], segs[2]]) == ([compacted, segs[2]], 22)
    assert chain([segs[1], segs[2]]) == ([], 0)  # no start: nothing to build on
    assert chain([segs[0], segs[2]]) == ([segs[0]], 10)  # a gap ends the ledger

"""Group commit of whole files: batched, each file whole or absent, one file's failure its own."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from batchflux.files import commit as filecommit
from batchflux.files.commit import FileCommitter


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob(".*.part"))


async def test_files_that_arrive_together_share_a_thread_trip(tmp_path: Path) -> None:
    committer = FileCommitter()
    files = {tmp_path / "out" / f"sub{i % 3}" / f"{i}.png": os.urandom(100 + i) for i in range(60)}
    await asyncio.gather(*(committer.write(dest, data) for dest, data in files.items()))
    for dest, data in files.items():
        assert dest.read_bytes() == data
    assert committer.batches < len(files) / 4  # the first file goes alone; the rest wait and go together
    assert leftovers(tmp_path) == []


async def test_files_that_arrive_apart_share_the_spaced_batch(tmp_path: Path) -> None:
    committer = FileCommitter(min_interval=1.0)
    await committer.write(tmp_path / "lone.png", b"lone")  # a lone file goes at once
    assert committer.batches == 1
    writers = []
    for i in range(20):  # downloads finishing one by one
        writers.append(asyncio.ensure_future(committer.write(tmp_path / f"{i}.png", bytes([i]) * 10)))
        await asyncio.sleep(0.005)
    await asyncio.gather(*writers)
    assert committer.batches == 2  # all twenty waited for the next batch the spacing allowed
    assert all((tmp_path / f"{i}.png").read_bytes() == bytes([i]) * 10 for i in range(20))
    assert leftovers(tmp_path) == []


async def test_a_batch_takes_at_most_max_batch_files(tmp_path: Path) -> None:
    committer = FileCommitter(min_interval=0.0)
    count = filecommit.MAX_BATCH + 50
    await asyncio.gather(*(committer.write(tmp_path / f"{i}.png", b"x") for i in range(count)))
    assert committer.batches == 3  # the first alone, then MAX_BATCH, then the other 49
    assert len([n for n in os.listdir(tmp_path) if n.endswith(".png")]) == count
    assert leftovers(tmp_path) == []


async def test_a_timed_batch_whose_files_were_all_withdrawn_sends_nothing(tmp_path: Path) -> None:
    committer = FileCommitter(min_interval=0.2)
    await committer.write(tmp_path / "first.png", b"1")
    withdrawn = asyncio.ensure_future(committer.write(tmp_path / "gone.png", b"2"))
    await asyncio.sleep(0)  # timed to go 0.2 s after the first batch
    withdrawn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await withdrawn
    await committer.write(tmp_path / "later.png", b"3")  # the committer still works afterwards
    assert committer.batches == 2
    assert not (tmp_path / "gone.png").exists()
    assert (tmp_path / "later.png").read_bytes() == b"3"


async def test_a_file_replaces_an_existing_one(tmp_path: Path) -> None:
    dest = tmp_path / "a.png"
    dest.write_bytes(b"old")
    await FileCommitter().write(dest, b"new bytes")
    assert dest.read_bytes() == b"new bytes"


async def test_one_failure_does_not_fail_its_batch(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(b"a file where a directory should be")
    committer = FileCommitter()
    good = [tmp_path / f"ok{i}.png" for i in range(5)]
    bad = tmp_path / "blocker" / "x.png"
    results = await asyncio.gather(
        *(committer.write(p, b"fine") for p in good[:2]),
        committer.write(bad, b"doomed"),
        *(committer.write(p, b"fine") for p in good[2:]),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], OSError)
    assert all(p.read_bytes() == b"fine" for p in good)
    assert not bad.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("filesystem_sync", ["syncfs", "fsync each"])
async def test_a_batch_lands_whole_with_or_without_syncfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filesystem_sync: str
) -> None:
    if filesystem_sync == "fsync each":  # a platform without syncfs(2), or a syncfs that failed
        monkeypatch.setattr(filecommit, "syncfs", lambda fd: False)
    committer = FileCommitter()
    files = {tmp_path / f"d{i % 2}" / f"{i}.png": os.urandom(50 + i) for i in range(12)}
    await asyncio.gather(*(committer.write(dest, data) for dest, data in files.items()))
    assert all(dest.read_bytes() == data for dest, data in files.items())
    assert leftovers(tmp_path) == []


async def test_a_file_that_cannot_be_renamed_into_place_fails_alone(tmp_path: Path) -> None:
    (tmp_path / "taken.png").mkdir()  # a directory where the image should go
    committer = FileCommitter()
    results = await asyncio.gather(
        committer.write(tmp_path / "a.png", b"a"),
        committer.write(tmp_path / "taken.png", b"b"),
        committer.write(tmp_path / "c.png", b"c"),
        return_exceptions=True,
    )
    assert results[0] is None
    assert isinstance(results[1], OSError)
    assert results[2] is None
    assert (tmp_path / "a.png").read_bytes() == b"a"
    assert (tmp_path / "c.png").read_bytes() == b"c"
    assert leftovers(tmp_path) == []


async def test_a_cancelled_writer_withdraws_a_file_not_yet_taken(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
    gate = threading.Event()
    blocker = loop.run_in_executor(None, gate.wait)  # holds the only worker thread
    committer = FileCommitter()
    first = asyncio.ensure_future(committer.write(tmp_path / "first.png", b"1"))
    await asyncio.sleep(0)  # the first batch is sent (and queued behind the blocker)
    withdrawn = asyncio.ensure_future(committer.write(tmp_path / "withdrawn.png", b"2"))
    kept = asyncio.ensure_future(committer.write(tmp_path / "kept.png", b"3"))
    await asyncio.sleep(0)  # both wait for the next batch
    withdrawn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await withdrawn
    gate.set()
    await asyncio.gather(blocker, first, kept)
    assert (tmp_path / "first.png").read_bytes() == b"1"
    assert (tmp_path / "kept.png").read_bytes() == b"3"
    assert not (tmp_path / "withdrawn.png").exists()
    assert committer.batches == 2
    assert leftovers(tmp_path) == []

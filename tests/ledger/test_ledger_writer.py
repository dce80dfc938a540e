"""The writer on real files and real processes: torn tails set aside, group commit, kill -9, a full disk."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from batchflux.ledger import Event, EventType, JobState, LedgerWriter, replay_file

T0 = 1_700_000_000.0


def intent(job: str, ts: float = T0) -> Event:
    return Event(EventType.SUBMIT_INTENT, job, {"fingerprint": "fp", "params": {"prompt": "p"}}, ts=ts)


def submitted(job: str, rid: str) -> Event:
    return Event(EventType.SUBMITTED, job, {"request_id": rid, "status_url": "s", "submitted_at": T0}, ts=T0)


def test_appends_replay(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "ledger.jsonl"
    with LedgerWriter(path) as w:
        w.append(intent("a"))
        w.append(submitted("a", "r1"))
        assert w.events_written == 2
    assert w.closed
    w.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        w.append(intent("b"))
    assert replay_file(path).jobs["a"].request_id == "r1"


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(b'{"v":1,"ts":17000', id="cut-mid-line"),
        pytest.param(b"\x00" * 64, id="zeros"),
        pytest.param(b'{"v":1,"ts":1,"eve\n', id="garbage-with-newline"),
    ],
)
def test_torn_tail_is_set_aside_then_appends_stay_readable(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "ledger.jsonl"
    good = (intent("a").encode() + "\n").encode()
    path.write_bytes(good + tail)
    with LedgerWriter(path) as w:
        assert w.repaired_tail == len(tail)
        w.append(submitted("a", "r1"))
    rep = replay_file(path)
    assert rep.torn_tail is None
    assert rep.jobs["a"].state is JobState.SUBMITTED
    side = (tmp_path / "ledger.jsonl.torn").read_bytes()
    assert side.startswith(b"# ")
    assert tail.rstrip(b"\n") in side  # the bytes are kept, never deleted


def test_complete_last_event_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(intent("a").encode().encode())
    with LedgerWriter(path) as w:
        assert w.repaired_tail == 0
        w.append(submitted("a", "r1"))
    assert replay_file(path).jobs["a"].attempts == 1
    assert not (tmp_path / "ledger.jsonl.torn").exists()


async def test_group_commit_syncs_what_was_appended(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path / "ledger.jsonl")
    w.append(intent("a"))
    assert w.unsynced
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(w.sync_forever(interval=0.01))
        deadline = asyncio.get_running_loop().time() + 10
        while w.unsynced and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 (a deadline poll)
            await asyncio.sleep(0.005)
        assert not w.unsynced
        w.append(intent("b"))  # appended after a commit: dirty again until the next one
        assert w.unsynced
        w.close()  # closing while the commit task runs is safe
        task.cancel()
    assert replay_file(tmp_path / "ledger.jsonl").jobs.keys() == {"a", "b"}


async def test_commit_is_a_shared_durability_barrier(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path / "ledger.jsonl")
    for i in range(50):
        w.append(intent(f"j{i}"))
    async with asyncio.TaskGroup() as tg:
        for _ in range(20):  # a burst of submitters, each waiting for its intent to be on disk
            tg.create_task(w.commit())
    assert not w.unsynced
    await w.commit()  # nothing new: returns at once
    w.close()
    assert len(replay_file(tmp_path / "ledger.jsonl").jobs) == 50


async def test_commits_that_arrive_apart_share_the_spaced_fsync(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path / "ledger.jsonl", min_sync_interval=1.0)
    w.append(intent("first"))
    await w.commit()  # a lone commit goes at once
    assert w.syncs == 1
    committers = []
    for i in range(10):  # submitters arriving one by one, each with its own intent
        w.append(intent(f"j{i}"))
        committers.append(asyncio.ensure_future(w.commit()))
        await asyncio.sleep(0.005)
    await asyncio.gather(*committers)
    assert w.syncs == 2  # all ten waited for the next fsync the spacing allowed, and shared it
    assert not w.unsynced
    w.close()


async def test_close_during_a_spaced_wait_leaves_everything_synced(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    w = LedgerWriter(path, min_sync_interval=0.2)
    w.append(intent("a"))
    await w.commit()
    w.append(intent("b"))
    waiting = asyncio.ensure_future(w.commit())
    await asyncio.sleep(0)  # it is now waiting out the spacing
    w.close()  # fsyncs on the way out; the waiting commit wakes to find nothing left to do
    await asyncio.wait_for(waiting, 5)
    assert w.syncs == 1  # no fsync on a closed file
    assert not w.unsynced
    assert replay_file(path).jobs.keys() == {"a", "b"}


async def test_a_cancelled_commit_strands_no_other(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path / "ledger.jsonl")
    w.append(intent("a"))
    async with asyncio.TaskGroup() as tg:
        first = tg.create_task(w.commit())
        second = tg.create_task(w.commit())
        await asyncio.sleep(0)  # let the first start its fsync
        first.cancel()
    assert first.cancelled()
    assert second.done()
    assert not second.cancelled()
    assert not w.unsynced
    w.close()


WRITER_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from batchflux.ledger import Event, EventType, LedgerWriter

    w = LedgerWriter(Path(sys.argv[1]))
    i = 0
    while True:
        w.append(Event(EventType.SUBMIT_INTENT, f"job-{i}", {"fingerprint": "x" * 200, "attempt": 1}))
        # The dependent action: announce the event only once append() has returned.
        sys.stdout.write(f"{i}\\n")
        sys.stdout.flush()
        i += 1
    """
)


def test_kill_9_loses_no_acknowledged_event(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    for round_ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER_CHILD, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        target = 200 * (round_ + 1)
        acknowledged = -1
        for line in proc.stdout:
            acknowledged = int(line)
            if acknowledged >= target:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        rep = replay_file(path)  # must not raise: at worst a torn last line
        ids = {int(j.split("-")[1]) for j in rep.jobs}
        assert set(range(acknowledged + 1)) <= ids
    assert proc.returncode == -signal.SIGKILL


FULL_DISK_CHILD = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from batchflux.files.durable import WriteFailed
    from batchflux.ledger import Event, EventType, LedgerWriter

    w = LedgerWriter(Path(sys.argv[1]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
    written = 0
    try:
        while True:
            w.append(Event(EventType.SUBMIT_INTENT, f"job-{written}", {"fingerprint": "x" * 100}))
            written += 1
    except WriteFailed as exc:  # the path and the OS's error, for one line to the user
        print(written, exc.error.errno)
    """
)


def test_a_write_that_fails_part_way_leaves_no_torn_line(tmp_path: Path) -> None:
    # A file size limit stands in for a full disk: the write that crosses it lands partially.
    path = tmp_path / "ledger.jsonl"
    out = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CHILD, str(path), "1000"], capture_output=True, text=True, check=True
    )
    written, errno = (int(x) for x in out.stdout.split())
    assert written >= 1
    assert errno != 0
    data = path.read_bytes()
    assert data.endswith(b"\n")
    assert len(data) <= 1000
    rep = replay_file(path)
    assert rep.torn_tail is None
    assert len(rep.jobs) == written


def test_a_second_writer_appends_after_the_first(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    with LedgerWriter(path) as w:
        w.append(intent("a", ts=time.time()))
    with LedgerWriter(path) as w:
        assert w.repaired_tail == 0
        w.append(submitted("a", "r1"))
    rep = replay_file(path)
    assert rep.lines == 2
    assert rep.jobs["a"].state is JobState.SUBMITTED

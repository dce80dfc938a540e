"""run.lock: one live run per output directory, named when refused; dead holders never block."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchflux.rundir.lock import LOCK_FILENAME, LockHeld, RunLock

# A holder in another process: takes the lock, prints what it wrote, then waits for stdin to close.
HOLDER = """
import sys, json
from pathlib import Path
from batchflux.rundir.lock import RunLock
lock = RunLock.acquire(Path(sys.argv[1]))
print(json.dumps(lock.holder), flush=True)
sys.stdin.read()
lock.release()
print("released", flush=True)
"""

# A contender in another process: tries once, prints the outcome.
CONTENDER = """
import sys, json
from pathlib import Path
from batchflux.rundir.lock import RunLock, LockHeld
try:
    with RunLock.acquire(Path(sys.argv[1])) as lock:
        print(json.dumps({"acquired": lock.holder}), flush=True)
except LockHeld as exc:
    print(json.dumps({"held": exc.holder, "message": str(exc)}), flush=True)
    sys.exit(4)
"""

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


@pytest.fixture
def holder_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, object]]]:
    proc = _python(HOLDER, str(tmp_path / "out"), stdin=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the child holds the lock (or died: then "")
    assert line, "holder process died before taking the lock"
    try:
        yield proc, json.loads(line)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def _contend(out_dir: Path) -> tuple[int, dict[str, object]]:
    proc = subprocess.run(
        [sys.executable, "-c", CONTENDER, str(out_dir)], capture_output=True, text=True, cwd=REPO
    )
    return proc.returncode, json.loads(proc.stdout)


def test_acquire_writes_the_holder_and_release_clears_it(tmp_path: Path) -> None:
    out = tmp_path / "out" / "catalog"  # created on demand
    lock = RunLock.acquire(out)
    record = json.loads((out / LOCK_FILENAME).read_text())
    assert record == lock.holder
    assert record["pid"] == os.getpid()
    assert record["host"] == socket.gethostname()
    assert str(record["started_at"]).endswith("Z")
    assert lock.held
    lock.release()
    lock.release()  # twice is harmless
    assert not lock.held
    assert (out / LOCK_FILENAME).read_text() == ""
    with RunLock.acquire(out) as again:  # free again
        assert again.held
    assert not again.held


def test_second_acquire_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with RunLock.acquire(tmp_path) as first:
        with pytest.raises(LockHeld) as info:
            RunLock.acquire(tmp_path)
        assert info.value.holder == first.holder
        assert f"pid {os.getpid()} on {socket.gethostname()}" in str(info.value)
    with RunLock.acquire(tmp_path):  # the with block released it
        pass


def test_context_manager_releases_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), RunLock.acquire(tmp_path):
        raise RuntimeError("boom")
    with RunLock.acquire(tmp_path) as lock:
        assert lock.held


def test_message_names_the_holder(tmp_path: Path) -> None:
    holder = {"pid": 123, "host": "box", "started_at": "2026-11-25T10:00:00Z"}
    exc = LockHeld(holder, Path("out/x/run.lock"))
    assert str(exc) == (
        "another batchflux run (pid 123 on box, started 2026-11-25T10:00:00Z) holds out/x/run.lock"
    )
    assert "still starting" in str(LockHeld({}, "out/x/run.lock"))


def test_holder_in_another_process_refuses_us_by_name(
    tmp_path: Path, holder_process: tuple[subprocess.Popen[str], dict[str, object]]
) -> None:
    proc, written = holder_process
    with pytest.raises(LockHeld) as info:
        RunLock.acquire(tmp_path / "out")
    assert info.value.holder == written
    assert info.value.holder["pid"] == proc.pid
    assert f"(pid {proc.pid} on " in str(info.value)
    assert str(info.value).endswith(f"holds {tmp_path / 'out' / LOCK_FILENAME}")

    # The holder lets go cleanly: the directory is free.
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.close()
    assert proc.stdout.readline().strip() == "released"
    assert proc.wait() == 0
    with RunLock.acquire(tmp_path / "out") as lock:
        assert lock.holder["pid"] == os.getpid()


def test_we_hold_and_another_process_is_refused_with_our_pid(tmp_path: Path) -> None:
    with RunLock.acquire(tmp_path):
        code, answer = _contend(tmp_path)
    assert code == 4
    assert answer["held"] == {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": answer["held"]["started_at"],  # type: ignore[index]
    }
    assert f"pid {os.getpid()}" in str(answer["message"])
    # Released: the other process now gets it.
    code, answer = _contend(tmp_path)
    assert code == 0
    assert "acquired" in answer


def test_lock_of_a_killed_process_never_blocks(
    tmp_path: Path, holder_process: tuple[subprocess.Popen[str], dict[str, object]]
) -> None:
    proc, written = holder_process
    out = tmp_path / "out"
    code, _ = _contend(out)
    assert code == 4  # alive: held
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    # The dead holder's record is still in the file, but the kernel dropped its lock.
    assert json.loads((out / LOCK_FILENAME).read_text())["pid"] == written["pid"]
    with RunLock.acquire(out) as lock:
        assert lock.holder["pid"] == os.getpid()
        assert json.loads((out / LOCK_FILENAME).read_text())["pid"] == os.getpid()


def test_child_processes_do_not_inherit_the_lock(tmp_path: Path) -> None:
    # A subprocess started while we hold the lock (e.g. a viewer) must not keep it alive after we let go.
    lock = RunLock.acquire(tmp_path)
    child = _python("import sys; sys.stdin.read()", stdin=subprocess.PIPE)
    try:
        lock.release()
        code, _ = _contend(tmp_path)
        assert code == 0
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()

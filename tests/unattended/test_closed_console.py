"""A console that goes away (issue 17): the reader of a pipe gone, a terminal hung up.

A run keeps going and keeps obeying signals, logging to ``batchflux.log`` alone; every command
whose output is cut short (``| head -1``) exits quietly with the exit code it would have had.
Real ``python -m batchflux`` children; their stdout and stderr are pipes and terminals the test
holds and closes.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import pty
import re
import signal
import struct
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from runkit import (
    Clis,
    cli_env,
    count,
    plain_jobs,
    read_events,
    summary,
    wait_until,
    write_manifest,
)

from batchflux.emulator import DEFAULT_API_KEY, Emulator, EmulatorConfig
from batchflux.engine.config import EngineConfig
from batchflux.engine.pacing import Rate
from batchflux.ledger import Event, EventType
from batchflux.run.runner import Run, RunOptions

GRACE = 20.0


class Console:
    """What a child's stdout and stderr are attached to: a pipe, or a terminal (a pty of 24×100).
    The test reads (and drops) what the child writes until :meth:`hang_up` closes the reading end."""

    def __init__(self, kind: str) -> None:
        if kind == "terminal":
            self._read, self.fd = pty.openpty()
            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        else:
            self._read, self.fd = os.pipe()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._read, self._drain)
        self.seen = 0

    def _drain(self) -> None:
        try:
            self.seen += len(os.read(self._read, 65536))
        except OSError:  # a terminal whose last writer closed reads as EIO
            self._loop.remove_reader(self._read)

    def child_started(self) -> None:
        os.close(self.fd)  # the child holds its own copy

    def hang_up(self) -> None:
        """The reader goes away: ``tee`` killed, the SSH session closed."""
        self._loop.remove_reader(self._read)
        os.close(self._read)


@pytest.mark.parametrize(
    ("console_kind", "sig"),
    [("pipe", signal.SIGTERM), ("pipe", signal.SIGHUP), ("terminal", signal.SIGHUP)],
)
async def test_a_run_whose_console_went_away_still_drains_on_a_signal(
    tmp_path: Path, clis: Clis, console_kind: str, sig: signal.Signals
) -> None:
    jobs = plain_jobs(200)
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    # 200 jobs at 5 a second: forty seconds of submitting, so the signal lands mid-run.
    args = ("run", manifest, "--out", out, "--rate", "5/1s", "--grace", f"{GRACE:g}", "--no-report")
    async with Emulator(EmulatorConfig(latency_mean=0.5, latency_sd=0.05)) as emu:
        console = Console(console_kind)
        cli = await clis.start(*args, emu=emu, stdout=console.fd, stderr=console.fd)
        console.child_started()
        await wait_until(
            lambda: not cli.running or count(read_events(out), "submitted") >= 3, what="3 submitted"
        )
        assert cli.running, "the run ended before the signal"
        if console_kind == "terminal":
            assert console.seen > 0  # the bars were being drawn
        console.hang_up()
        cli.send(sig)
        stopped = await cli.wait(within=GRACE)
        assert stopped.code == 130

    s = summary(out)
    assert s["exit_code"] == 130
    assert s["interrupted"] is True
    assert s["stop_reason"] == "interrupted"
    assert s["counts"]["in_flight"] == 0  # drained: everything submitted was seen through
    assert s["counts"]["pending"] > 0
    events = read_events(out)
    assert events[-1]["event"] == "run_finished"
    assert events[-1]["exit_code"] == 130
    assert count(events, "submitted") < len(jobs)
    log = (out / "batchflux.log").read_text()
    assert "stopped submitting (interrupted)" in log
    assert "Traceback" not in log


async def test_under_nohup_a_hangup_leaves_the_run_going(tmp_path: Path, clis: Clis) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(200))
    out = tmp_path / "out"
    args = ("run", manifest, "--out", out, "--rate", "5/1s", "--grace", f"{GRACE:g}", "--no-report")
    async with Emulator(EmulatorConfig(latency_mean=0.5, latency_sd=0.05)) as emu:
        console = Console("pipe")  # (nohup would move a terminal's output to nohup.out)
        cli = await clis.start(*args, emu=emu, stdout=console.fd, stderr=console.fd, under=("nohup",))
        console.child_started()
        await wait_until(
            lambda: not cli.running or count(read_events(out), "submitted") >= 3, what="3 submitted"
        )
        console.hang_up()
        cli.send(signal.SIGHUP)
        after = count(read_events(out), "submitted") + 5
        await wait_until(
            lambda: not cli.running or count(read_events(out), "submitted") >= after,
            what="5 more submits after the hangup",
        )
        assert cli.running, "a hangup stopped a run started under nohup"
        cli.send(signal.SIGTERM)
        stopped = await cli.wait(within=GRACE)
    assert stopped.code == 130
    assert summary(out)["stop_reason"] == "interrupted"


async def test_the_stop_is_requested_before_the_line_that_says_so(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(40))
    out = tmp_path / "out"
    said: list[str] = []

    def say(line: str) -> None:  # a console that fails exactly when told about the stop
        said.append(line)
        if line.startswith("stopping"):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    async with Emulator(EmulatorConfig(latency_mean=0.3, latency_sd=0.05)) as emu:
        options = RunOptions(
            manifest=manifest,
            api_key=DEFAULT_API_KEY,
            out_dir=out,
            base_url=emu.base_url,
            engine=EngineConfig(rate=Rate(10, 1.0)),
            report=False,
        )
        run = Run(options, say=say)
        async with asyncio.TaskGroup() as tg:
            running = tg.create_task(run.execute())
            await wait_until(lambda: count(read_events(out), "submitted") >= 3, what="3 submitted")
            with pytest.raises(BrokenPipeError):
                run.request_stop(GRACE)
        result = running.result()
    assert any(line.startswith("stopping: no new submits") for line in said)
    assert result.exit_code == 130
    assert result.summary is not None
    assert result.summary.stop_reason == "interrupted"
    assert result.summary.counts["pending"] > 0


# ---- commands cut short: `| head -1` ------------------------------------------------------------


@pytest.fixture
def widowed_pipe() -> Iterator[int]:
    """The writing end of a pipe whose reader has gone: what ``head -1`` leaves once it has its line."""
    r, w = os.pipe()
    os.close(r)
    yield w
    os.close(w)


def in_flight_ledger(out: Path, jobs: int) -> Path:
    """A run directory whose ledger has ``jobs`` requests in flight: ``status`` lists them all."""
    out.mkdir(parents=True)
    now = time.time()
    lines = [Event(EventType.RUN_STARTED, None, {"run_id": "r1", "jobs": jobs}, ts=now).encode()]
    for n in range(jobs):
        job, rid = f"job{n:05d}", f"req-{n:05d}"
        intent = {"fingerprint": "f", "output": f"{job}.png"}
        submitted = {"request_id": rid, "status_url": "s", "response_url": "r", "submitted_at": now}
        lines.append(Event(EventType.SUBMIT_INTENT, job, intent, ts=now).encode())
        lines.append(Event(EventType.SUBMITTED, job, submitted, ts=now).encode())
    (out / "ledger.jsonl").write_text("\n".join(lines) + "\n")
    return out


def big_csv(path: Path, rows: int, *, bad: bool = False) -> Path:
    """``rows`` valid jobs, or (``bad``) as many rows each with a wrong seed."""
    rows_text = (
        f"row{n},https://img.example.com/{n}.jpg,edit number {n},{'not-a-seed' if bad else n}\n"
        for n in range(rows)
    )
    path.write_text("id,input_image,prompt,seed\n" + "".join(rows_text))
    return path


COMMANDS = {
    # name: (argv, exit code, stderr closed too)
    "status": (("status", "OUT"), 0, False),
    "status --json": (("status", "OUT", "--json"), 0, False),
    "validate": (("validate", "BIG"), 0, False),
    "validate --json, invalid": (("validate", "BAD", "--json"), 2, False),
    "validate, invalid, 2>&1": (("validate", "BAD"), 2, True),
    "report": (("report", "OUT"), 0, False),
    "--help": (("--help",), 0, False),
    "run --dry-run 2>&1": (("run", "BIG", "--out", "OUT", "--dry-run"), 0, True),
    "demo 2>&1": (("demo", "--out", "DEMO", "--latency", "0.05", "--no-progress"), 0, True),
}


@pytest.mark.parametrize("name", list(COMMANDS))
async def test_a_command_piped_into_head_exits_quietly_with_its_own_code(
    tmp_path: Path, clis: Clis, widowed_pipe: int, name: str
) -> None:
    argv, code, both = COMMANDS[name]
    paths = {
        "OUT": in_flight_ledger(tmp_path / "out", 50),
        "BIG": big_csv(tmp_path / "big.csv", 2000),
        "BAD": big_csv(tmp_path / "bad.csv", 200, bad=True),
        "DEMO": tmp_path / "demo",
    }
    args = [paths.get(a, a) for a in argv]
    cli = await clis.start(*args, stdout=widowed_pipe, stderr=widowed_pipe if both else None)
    result = await cli.wait()
    assert result.code == code, result
    assert result.stderr == "", result  # nothing about the closed pipe: no traceback, no "Exception ignored"
    if name == "report":
        assert (paths["OUT"] / "report.html").is_file()
    if name.startswith("demo"):
        assert (paths["DEMO"] / "report.html").is_file()


async def test_emulate_keeps_serving_when_its_printed_lines_have_no_reader(
    tmp_path: Path, clis: Clis, widowed_pipe: int
) -> None:
    cli = await clis.start("emulate", stdout=widowed_pipe)
    line = await wait_until(
        lambda: not cli.running or re.search(r"serving at (\S+);", cli.output()[1]),
        what="the emulator's line",
    )
    assert cli.running, cli.output()
    assert isinstance(line, re.Match)
    async with aiohttp.ClientSession() as http, http.get(f"{line[1]}/_emulator/stats") as reply:
        assert reply.status == 200  # the export lines went nowhere; the emulator serves on
    cli.send(signal.SIGTERM)
    result = await cli.wait()
    assert result.code == 0, result
    assert "Traceback" not in result.stderr
    assert "Exception ignored" not in result.stderr


@pytest.mark.parametrize(
    ("command", "code"),
    [("status OUT --limit 5000", 0), ("validate BAD --json", 2)],
)
async def test_the_real_pipeline_into_head(tmp_path: Path, command: str, code: int) -> None:
    # Output far beyond a pipe's 64 KiB: batchflux is still writing when head exits.
    out = in_flight_ledger(tmp_path / "out", 3000)
    bad = big_csv(tmp_path / "bad.csv", 1000, bad=True)
    line = command.replace("OUT", str(out)).replace("BAD", str(bad))
    script = f'"{sys.executable}" -m batchflux {line} | head -1; echo "exit ${{PIPESTATUS[0]}}" >&2'
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(None, None),
        cwd=tmp_path,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert len(stdout.splitlines()) == 1, stdout
    assert stderr.decode() == f"exit {code}\n"

"""Helpers for tests that run batches: manifests, the real ``batchflux`` CLI in a subprocess or a
:class:`~batchflux.run.runner.Run` in-process, against an in-process emulator; ledger readers and checks.

The emulator serves in the test's event loop, so everything here that waits is async (a blocking
wait would starve the server the child is talking to). Children write stdout/stderr to files
(no pipe to fill up), and :meth:`Clis.close` (the ``clis`` fixture's teardown) kills any child a
failing test left behind.

Ledger readers tolerate a torn last line: a child killed with SIGKILL may have been mid-write.
Imported by name: pytest puts ``tests/`` on sys.path for its conftest.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import random
import shutil
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from batchflux.emulator import DEFAULT_API_KEY, Emulator
from batchflux.engine.config import EngineConfig
from batchflux.run.runner import Run, RunOptions, RunResult

IMAGES = Path(__file__).resolve().parents[1] / "sample_manifests" / "images"
T = TypeVar("T")


# ---- manifests -------------------------------------------------------------------------------


def write_manifest(
    directory: Path,
    jobs: Sequence[dict[str, Any]],
    *,
    name: str = "batch.yaml",
    defaults: dict[str, Any] | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        image = job.get("input_image")
        if isinstance(image, str) and "://" not in image and not (directory / image).exists():
            (directory / image).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(IMAGES / Path(image).name, directory / image)
    path = directory / name
    body = {"model": "flux-kontext-max", "defaults": defaults or {"aspect_ratio": "1:1"}, "jobs": list(jobs)}
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def plain_jobs(n: int, prefix: str = "job", start: int = 0) -> list[dict[str, Any]]:
    ids = range(start, start + n)
    return [{"id": f"{prefix}{i:04d}", "prompt": f"edit number {i}", "seed": i} for i in ids]


# ---- a run in this process -------------------------------------------------------------------


async def run_against(
    emu: Emulator, manifest: Path, out: Path, *, api_key: str = DEFAULT_API_KEY, **options: Any
) -> RunResult:
    """A :class:`Run` of ``manifest`` into ``out`` against ``emu``; ``options`` are RunOptions fields."""
    engine = options.pop("engine", EngineConfig())
    opts = RunOptions(
        manifest=manifest, api_key=api_key, out_dir=out, base_url=emu.base_url, engine=engine, **options
    )
    return await Run(opts).execute()


# ---- the CLI in a subprocess -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


class Cli:
    """One running ``python -m batchflux ...``; output goes to ``<logs>/<n>.out|.err``."""

    def __init__(self, proc: asyncio.subprocess.Process, out: Path, err: Path) -> None:
        self.proc = proc
        self._out = out
        self._err = err

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    def send(self, sig: signal.Signals) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)

    def output(self) -> tuple[str, str]:
        return self._out.read_text(errors="replace"), self._err.read_text(errors="replace")

    async def wait(self, within: float = 60.0) -> CliResult:
        try:
            code = await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            self.send(signal.SIGKILL)
            await self.proc.wait()
            out, err = self.output()
            raise AssertionError(f"batchflux did not exit within {within:g}s\n{out}\n{err}") from None
        out, err = self.output()
        return CliResult(code, out, err)


def cli_env(key: str | None, base_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SEGMIND_API_KEY", "BATCHFLUX_BASE_URL")}
    if key is not None:
        env["SEGMIND_API_KEY"] = key
    if base_url is not None:
        env["BATCHFLUX_BASE_URL"] = base_url
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Clis:
    """Starts CLI children in ``cwd``; whatever is still running at teardown is killed."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.logs = cwd / "cli-logs"
        self.started: list[Cli] = []

    async def start(
        self,
        *args: str | Path,
        emu: Emulator | None = None,
        key: str | None = DEFAULT_API_KEY,
        stdout: int | None = None,
        stderr: int | None = None,
        under: Sequence[str] = (),
    ) -> Cli:
        """``emu`` sets BATCHFLUX_BASE_URL; ``key`` SEGMIND_API_KEY (None: unset). ``stdout`` and
        ``stderr`` give the child a descriptor of the test's (a pipe, a terminal) instead of its
        log file, which then stays empty. ``under`` is a command that execs batchflux (``nohup``)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        n = len(self.started)
        out, err = self.logs / f"{n}.out", self.logs / f"{n}.err"
        with out.open("wb") as fout, err.open("wb") as ferr:
            proc = await asyncio.create_subprocess_exec(
                *under,
                sys.executable,
                "-m",
                "batchflux",
                *map(str, args),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=fout if stdout is None else stdout,
                stderr=ferr if stderr is None else stderr,
                cwd=self.cwd,
                env=cli_env(key, emu.base_url if emu else None),
            )
        cli = Cli(proc, out, err)
        self.started.append(cli)
        return cli

    async def run(
        self,
        *args: str | Path,
        emu: Emulator | None = None,
        key: str | None = DEFAULT_API_KEY,
        within: float = 60.0,
    ) -> CliResult:
        cli = await self.start(*args, emu=emu, key=key)
        return await cli.wait(within)

    async def close(self) -> None:
        for cli in self.started:
            if cli.running:
                cli.send(signal.SIGKILL)
            await cli.proc.wait()


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """A small stand-in server (a proxy, an endpoint that is not there) on 127.0.0.1: its base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def wait_until(
    check: Callable[[], T | bool | None], *, within: float = 30.0, what: str = "condition"
) -> T:
    """Poll ``check`` every 10 ms until it returns something truthy; fail after ``within`` seconds."""
    clock = asyncio.get_running_loop().time
    deadline = clock() + within
    while True:
        got = check()
        if got:
            return got  # type: ignore[return-value]
        if clock() > deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(0.01)


# ---- the ledger --------------------------------------------------------------------------------


def ledger_lines(out: Path) -> int:
    path = out / "ledger.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


async def until_ledger_has(out: Path, lines: int, cli: Cli, *, within: float = 30.0) -> None:
    """Wait until the ledger holds ``lines`` complete lines, or ``cli`` has exited."""
    await wait_until(
        lambda: not cli.running or ledger_lines(out) >= lines, within=within, what=f"{lines} ledger lines"
    )


async def kill_9_runs(
    clis: Clis,
    args: Sequence[str | Path],
    emu: Emulator,
    out: Path,
    rng: random.Random,
    kills: int,
    *,
    lines: tuple[int, int] = (30, 200),
    within: float = 30.0,
) -> list[Phases]:
    """Start ``batchflux`` with ``args`` ``kills`` times, each SIGKILLed after a random number (in
    ``lines``) of new ledger lines, so kills hit every phase whatever the machine's speed; where
    the ledger left the jobs at each kill. Every run must still be running at its kill."""
    at_kill: list[Phases] = []
    for n in range(kills):
        target = ledger_lines(out) + rng.randint(*lines)
        cli = await clis.start(*args, emu=emu)
        await until_ledger_has(out, target, cli, within=within)
        assert cli.running, f"run {n} ended before its kill: {(await cli.wait()).stderr}"
        cli.send(signal.SIGKILL)
        assert await cli.proc.wait() == -signal.SIGKILL
        at_kill.append(phases(read_events(out)))
    return at_kill


async def resume_until_done(
    clis: Clis, args: Sequence[str | Path], emu: Emulator, *, tries: int = 6, within: float = 60.0
) -> list[int]:
    """The same command, run plainly until it exits 0 (a 1 — a submit left unanswered too often —
    is rerun, as a user would); the exit codes."""
    finals: list[int] = []
    for _ in range(tries):
        result = await clis.run(*args, emu=emu, within=within)
        finals.append(result.code)
        assert result.code in (0, 1), result
        if result.code == 0:
            break
    assert finals[-1] == 0, finals
    return finals


def max_in_window(times: Sequence[float], window: float) -> int:
    """The most events inside any half-open window of this length (sliding, two pointers)."""
    ordered = sorted(times)
    best = lo = 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def read_events(out: Path) -> list[dict[str, Any]]:
    """The ledger's events in order; a torn last line (a write cut by SIGKILL) is left out."""
    path = out / "ledger.jsonl"
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    events = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except ValueError:
            if n < len(lines) - 1 and any(rest.strip() for rest in lines[n + 1 :]):
                raise
    return events


def count(events: Sequence[dict[str, Any]], kind: str) -> int:
    return sum(1 for e in events if e["event"] == kind)


def jobs_with(events: Sequence[dict[str, Any]], kind: str) -> set[str]:
    return {e["job"] for e in events if e["event"] == kind}


def since_last_start(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events of the latest run (from its ``run_started`` on)."""
    starts = [i for i, e in enumerate(events) if e["event"] == "run_started"]
    return list(events[starts[-1] :]) if starts else []


def ambiguous_count(events: Sequence[dict[str, Any]]) -> int:
    """Intents never followed by ``submitted`` (nor closed by a failed / NOT_SUBMITTED answer):
    submits whose POST may have created a request nobody heard of."""
    open_intent: dict[str, bool] = {}
    total = 0
    for e in events:
        job, kind = e["job"], e["event"]
        if kind == "submit_intent":
            if open_intent.get(job):
                total += 1
            open_intent[job] = True
        elif kind in ("submitted", "failed") or (kind == "state" and e.get("status") == "NOT_SUBMITTED"):
            open_intent[job] = False
    return total + sum(open_intent.values())


@dataclass(frozen=True, slots=True)
class Phases:
    """Where the ledger left the jobs: what a kill at this point interrupted."""

    open_intents: int  # submit_intent, no answer yet (the POST may be on the wire)
    polling: int  # submitted, no result yet
    downloading: int  # result known, no downloaded yet
    done: int


def phases(events: Sequence[dict[str, Any]]) -> Phases:
    last: dict[str, str] = {}
    for e in events:
        if e["job"] is not None and e["event"] != "state":
            last[e["job"]] = e["event"]
        elif e["event"] == "state" and e.get("status") == "NOT_SUBMITTED":
            last[e["job"]] = "not_submitted"
    c = Counter(last.values())
    return Phases(c["submit_intent"], c["submitted"], c["result"], c["downloaded"])


def abandoned_requests(events: Sequence[dict[str, Any]]) -> list[str]:
    """Request ids never resolved: superseded by a later submit of the same job before any result,
    failed or expired event for them, or still without one at the end of the ledger. For a finished
    run, each is a paid request thrown away while it might still have been fetched."""
    unresolved: dict[str, set[str]] = {}
    bad: list[str] = []
    for e in events:
        job, kind, rid = e["job"], e["event"], e.get("request_id")
        if kind == "submitted":
            unresolved.setdefault(job, set()).add(str(rid))
        elif kind in ("result", "failed", "expired") and rid:
            unresolved.get(job, set()).discard(rid)
        elif kind == "submit_intent":
            bad.extend(sorted(unresolved.pop(job, set())))
    return bad + sorted(rid for rids in unresolved.values() for rid in rids)


def last_downloads(events: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["job"]: e for e in events if e["event"] == "downloaded"}


# ---- outputs -----------------------------------------------------------------------------------


def image_files(out: Path) -> list[Path]:
    """Images in the run directory (not hidden temp files)."""
    found = (p for p in out.iterdir() if p.is_file() and p.suffix in (".png", ".jpg"))
    return sorted(p for p in found if not p.name.startswith("."))


def assert_images_match_emulator(emu: Emulator, out: Path, job_ids: Sequence[str]) -> None:
    """Every job has exactly one image on disk, byte-identical to what the emulator served for the
    request recorded in the job's last ``downloaded`` event."""
    events = read_events(out)
    done = last_downloads(events)
    assert sorted(done) == sorted(job_ids)
    images = image_files(out)
    assert sorted(p.stem for p in images) == sorted(job_ids)
    for job_id, ev in done.items():
        info = emu.request_info(ev["request_id"])
        assert info is not None, job_id
        data = (out / ev["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == ev["sha256"] == info["sha256"], job_id


def files_containing(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def summary(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return data


class FailingStream(io.StringIO):
    """A console whose reader went away (no descriptor): every write fails with ``err``."""

    def __init__(self, err: int) -> None:
        super().__init__()
        self.err = err
        self.attempts = 0

    def write(self, text: str) -> int:
        self.attempts += 1
        raise OSError(self.err, os.strerror(self.err))

"""What every benchmark of the suite shares: emulator processes, manifests, child clients, the table.

- :class:`EmulatorProc` runs ``python -m batchflux.emulator`` in its own process (so the client's CPU is
  measured apart from the server's) and reads its introspection endpoints.
- :func:`run_client` runs one client of :mod:`tests.bench.clients` in a child process and returns the JSON
  it printed: wall, CPU and peak RSS of that process alone.
- :class:`Row` is one line of the suite's table; :func:`render_table` prints them as Markdown.

Nothing here asserts: benchmarks print figures and a verdict against a stated limit.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchflux.emulator import DEFAULT_API_KEY

ROOT = Path(__file__).resolve().parents[2]
API_KEY = DEFAULT_API_KEY
SLUG = "flux-kontext-max"


def say(message: str) -> None:
    """Progress for the person watching: stderr, so stdout stays the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the table --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    benchmark: str
    config: str  # the command or configuration that produced the figure
    figure: str
    limit: str  # the physical limit or the target it is judged against; "" when only informative
    verdict: str  # "pass", "MISS (...)", "info"


def verdict(ok: bool, miss: str = "") -> str:
    return "pass" if ok else f"MISS{f' ({miss})' if miss else ''}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(rows: Sequence[Row]) -> str:
    head = ("benchmark", "command / config", "figure", "limit / target", "verdict")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = (r.benchmark, r.config, r.figure, r.limit, r.verdict)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mhz = next(
            float(line.split(":", 1)[1])
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("cpu MHz")
        )
        model += f" @ {mhz / 1000:.1f} GHz"
    except (OSError, ValueError, StopIteration):
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({model}){mem}, Python {platform.python_version()}, {platform.system()}"


# --- small statistics -------------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """``median (a, b, c)`` for a figure measured several times."""
    return f"{fmt.format(median(values))} ({', '.join(fmt.format(v) for v in values)})"


# --- manifests --------------------------------------------------------------------------------------


def write_manifest(path: Path, jobs: int, *, prefix: str = "job", output_format: str = "png") -> Path:
    """A CSV manifest of ``jobs`` prompt-only edits, every body distinct (a duplicate is a real one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["id", "prompt", "aspect_ratio", "output_format", "seed"])
        for i in range(jobs):
            out.writerow([f"{prefix}{i:06d}", f"edit number {i}: a watercolour", "1:1", output_format, i])
    return path


# --- the emulator in its own process ----------------------------------------------------------------


class EmulatorProc:
    """``python -m batchflux.emulator ARGS`` as a child; ``url`` once it listens. Use as a context manager."""

    def __init__(self, args: Sequence[str]) -> None:
        self.args = list(args)
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> EmulatorProc:
        cmd = [sys.executable, "-m", "batchflux.emulator", *self.args]
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT
        )
        assert self._proc.stdout is not None
        first = self._proc.stdout.readline().strip()
        if not first.startswith("BATCHFLUX_EMULATOR_URL="):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the emulator did not start ({' '.join(cmd)}): {first!r}")
        self.url = first.partition("=")[2]
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        self._proc = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU the emulator process has used so far (from /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as resp:  # loopback only
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.get("/_emulator/stats")
        return stats

    def request_info(self, request_id: str) -> dict[str, Any]:
        info: dict[str, Any] = self.get(f"/_emulator/requests/{request_id}")
        return info


@contextmanager
def emulator(*args: str) -> Iterator[EmulatorProc]:
    with EmulatorProc(args) as emu:
        yield emu


def emulator_args(
    *,
    latency: str = "0,0",
    latency_min: float = 0.0,
    workers: int = 100_000,
    rpm: int | None = None,
    window: float | None = None,
    faults: dict[str, float] | None = None,
    seed: int = 1,
    image_size: int = 64,
    retention: float | None = None,
    credits: float = 1e9,
    count_polls: bool = False,
    limiter: str | None = None,
    busy_429: int | None = None,
    busy_reset: float | None = None,
) -> list[str]:
    """Flags for ``python -m batchflux.emulator``; the latency floor defaults to 0 (the emulator's: 20 ms)."""
    args = ["--latency", latency, "--latency-min", str(latency_min), "--workers", str(workers)]
    args += ["--seed", str(seed), "--image-size", str(image_size), "--credits", f"{credits:g}"]
    if rpm is not None:
        args += ["--rpm", str(rpm)]
    if window is not None:
        args += ["--window", str(window)]
    if retention is not None:
        args += ["--retention", str(retention)]
    for kind, rate in (faults or {}).items():
        args += ["--fault", f"{kind}={rate}"]
    if count_polls:
        args.append("--count-polls")
    if limiter is not None:
        args += ["--limiter", limiter]
    if busy_429 is not None:
        args += ["--busy-429", str(busy_429)]
    if busy_reset is not None:
        args += ["--busy-reset", str(busy_reset)]
    return args


# --- clients in child processes ---------------------------------------------------------------------


def run_client(kind: str, args: Sequence[str], *, timeout: float = 600, root: Path = ROOT) -> dict[str, Any]:
    """``python -m tests.bench.clients KIND ARGS`` in ``root`` (where batchflux is imported from
    first: another checkout runs another version of it); its last stdout line is a JSON report."""
    cmd = [sys.executable, "-m", "tests.bench.clients", kind, *args]
    env = {**os.environ, "SEGMIND_API_KEY": API_KEY}
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=root, env=env, timeout=timeout, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise RuntimeError(f"client {kind} failed (exit {proc.returncode}): {tail}")
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def batchflux_cmd(manifest: Path, out: Path, url: str, *extra: str) -> list[str]:
    """The ``batchflux run`` arguments every batchflux client here uses (no bars, no report page)."""
    return [
        "run",
        str(manifest),
        "--out",
        str(out),
        "--base-url",
        url,
        "--no-progress",
        "--no-report",
        *extra,
    ]


def show_cmd(args: Sequence[str], manifest_label: str) -> str:
    """A readable form of a batchflux command line for the table (paths shortened)."""
    shown: list[str] = ["batchflux"]
    skip = False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a in ("--out", "--base-url"):
            skip = True
            continue
        if a == "--no-progress":
            continue
        shown.append(manifest_label if i == 1 else a)
    return " ".join(shown)


@dataclass(frozen=True, slots=True)
class Measured:
    """One child process, timed from the outside: its exit code, wall time, CPU and peak RSS."""

    exit_code: int
    wall: float
    cpu: float
    maxrss_mib: float
    stdout: str


def run_measured(cmd: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 600) -> Measured:
    """Run ``cmd`` and read its own rusage with ``os.wait4`` (RUSAGE_CHILDREN would mix in every child)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"timed out: {' '.join(cmd)}")
            time.sleep(0.01)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
    return Measured(proc.returncode, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text)


# --- ledgers ----------------------------------------------------------------------------------------


def rmtree_quiet(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def rss_mib_now() -> float:
    """This process's current resident set, MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")

"""Issue 21's outage and polls-counted rows, every batchflux flag at its default.

- **outage**: 120 jobs at ``--rate 20/2s``, media on its own host; the API goes away 4 s into the
  run (its port closed). Figures: exit code, seconds from the outage to the exit, jobs recorded
  failed; then the API comes back and the same command runs again: exit code, duplicate submits.
- **polls counted**: 200 jobs, latency N(2.4 s, 0.5 s) (the real ~24 s scaled by 1/10), a quota of
  50 calls per 6 s window counting polls (the real 50 a minute, scaled), no ``--rate`` (learned);
  the result URL answering pending requests, and answering 404. Figures: counted calls a job (the
  emulator's ``counted_calls``), 429s, calls inside an announced pause (all of them, and those
  after the first pause's end), makespan.

The emulator runs in this process (it must go down and come back on its own ports); batchflux runs
as the real CLI in a child process. Run alone: ``python -m tests.bench.bench_hosts [--only outage|polls]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from batchflux.emulator import DEFAULT_API_KEY, Emulator, EmulatorConfig
from tests.bench.harness import Row, say, verdict


def _manifest(directory: Path, jobs: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    body = {
        "model": "flux-kontext-max",
        "defaults": {"aspect_ratio": "1:1"},
        "jobs": [{"id": f"job{i:04d}", "prompt": f"edit number {i}", "seed": i} for i in range(jobs)],
    }
    path = directory / "batch.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


CLIENT_PATH: str | None = None  # --client-path: run another checkout's batchflux (a before/after)


def _env(base_url: str) -> dict[str, str]:
    env = {**os.environ, "SEGMIND_API_KEY": DEFAULT_API_KEY, "BATCHFLUX_BASE_URL": base_url}
    if CLIENT_PATH:
        env["PYTHONPATH"] = CLIENT_PATH
    return env


async def _start(args: list[str], base_url: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "batchflux", *args, env=_env(base_url), cwd=CLIENT_PATH,  # -m: cwd first
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


def _events(out: Path) -> list[dict[str, object]]:
    path = out / "ledger.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a torn last line
            rows.append(json.loads(line))
    return rows


async def outage(tmp: Path) -> list[Row]:
    manifest = _manifest(tmp / "m", 120)
    out = tmp / "out"
    args = ["run", str(manifest), "--out", str(out), "--no-progress", "--no-report", "--rate", "20/2s"]
    config = EmulatorConfig(latency_mean=0.3, latency_sd=0.05, media_port=0)
    cmd = "batchflux run <120 jobs> --rate 20/2s (else defaults); emulator --media-port 0; API down at 4 s"
    async with Emulator(config) as emu:
        clock = asyncio.get_running_loop().time
        proc = await _start(args, emu.base_url)
        while not any(e.get("event") == "submitted" for e in _events(out)):  # noqa: ASYNC110 - a file
            await asyncio.sleep(0.05)
        await asyncio.sleep(4)
        await emu.go_down()
        down = clock()
        code = await proc.wait()
        took = clock() - down
        failed = sum(1 for e in _events(out) if e.get("event") == "failed")
        await emu.come_back()
        again = await (await _start(args, emu.base_url)).wait()
        stats = emu.stats()
    say(f"outage: exit {code} {took:.1f}s after the API went down, {failed} failed; rerun exit {again}")
    return [
        Row("outage (API down)", cmd, f"exit {code} after {took:.1f} s; {failed} jobs failed",
            "exit 75 within 60 s, 0 failed", verdict(code == 75 and took < 60 and failed == 0)),
        Row("outage rerun", "the same command, API back",
            f"exit {again}; {stats['duplicate_submits']} duplicates",
            "exit 0, 0 duplicates", verdict(again == 0 and stats["duplicate_submits"] == 0)),
    ]  # fmt: skip


async def polls_counted(tmp: Path, pending: str, jobs: int = 200) -> Row:
    manifest = _manifest(tmp / f"m-{pending}", jobs)
    out = tmp / f"out-{pending}"
    config = EmulatorConfig(
        latency_mean=2.4, latency_sd=0.5, latency_min=0.0, workers=100_000, rpm=50, window_s=6.0,
        count_polls=True, result_pending=pending,
    )  # fmt: skip
    async with Emulator(config) as emu:
        proc = await _start(
            ["run", str(manifest), "--out", str(out), "--no-progress", "--no-report"], emu.base_url
        )
        code = await proc.wait()
        stats = emu.stats()
    first = min(stats["submit_times"])
    last_done = max(float(e["ts"]) for e in _events(out) if e.get("event") == "downloaded")  # type: ignore[arg-type]
    makespan = last_done - first
    per_job = stats["counted_calls"] / jobs
    limited = stats["rate_limited_times"]
    first_pause_end = min(limited) + config.window_s if limited else first
    late = [t for t in stats["in_announced_pause_times"] if t > first_pause_end]
    ideal = jobs * per_job / config.rpm * config.window_s  # type: ignore[operator]
    say(
        f"polls counted, result {pending}: exit {code}, {per_job:.2f} counted calls a job, "
        f"{len(limited)} 429s, {stats['calls_in_announced_pause']} in a pause "
        f"({len(late)} after the first), {makespan:.1f} s"
    )
    figure = (
        f"exit {code}; {per_job:.2f} counted calls a job (status {stats['status_calls']}, result "
        f"{stats['result_calls']}); {len(limited)} 429s; {stats['calls_in_announced_pause']} calls in an "
        f"announced pause, {len(late)} after the first pause; makespan {makespan:.1f} s "
        f"({stats['counted_calls']} counted calls = {ideal:.1f} s of the quota's windows; the emulator's "
        "windows start before the first submit)"
    )
    target = (
        "≤ 2.2 counted calls a job; 0 calls in a pause after the first" if pending == "answers" else "info"
    )
    ok = per_job <= 2.2 and not late if pending == "answers" else True
    config_text = (
        f"{jobs} jobs, N(2.4,0.5) s, 50 per 6 s counting polls, --result-pending {pending}; "
        "batchflux run (defaults, learned)"
    )
    return Row(f"polls counted, result URL {pending}", config_text, figure, target,
               verdict(ok) if pending == "answers" else "info")  # fmt: skip


async def main_async(only: str | None, *, quick: bool = False) -> list[Row]:
    """``quick``: the polls rows at 60 jobs, and no outage row (its length is the defaults' 20 s
    breaker and 30 s drain, whatever the size)."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-hosts-") as tmp:
        if only in (None, "outage") and not quick:
            rows += await outage(Path(tmp))
        if only in (None, "polls"):
            for pending in ("answers", "404"):
                rows.append(await polls_counted(Path(tmp), pending, 60 if quick else 200))
    return rows


def run(quick: bool = False) -> list[Row]:
    return asyncio.run(main_async(None, quick=quick))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("outage", "polls"))
    parser.add_argument("--client-path", metavar="DIR", help="the batchflux of this checkout (PYTHONPATH)")
    args = parser.parse_args()
    global CLIENT_PATH
    CLIENT_PATH = args.client_path
    started = time.time()
    for row in asyncio.run(main_async(args.only)):
        print(f"| {row.benchmark} | {row.config} | {row.figure} | {row.limit} | {row.verdict} |")
    say(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()

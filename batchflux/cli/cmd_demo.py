"""``batchflux demo``: the bundled demo manifest, end to end, against the built-in emulator."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from batchflux.cli.session import execute, pick_progress
from batchflux.emulator import DEFAULT_API_KEY, Emulator, EmulatorConfig
from batchflux.engine.config import EngineConfig
from batchflux.engine.pacing import Rate
from batchflux.run.exitcodes import ExitCode
from batchflux.run.logs import configure_logging
from batchflux.run.runner import Run, RunOptions, RunResult


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run the bundled demo manifest against the built-in emulator (offline, free)",
        description="Start the Segmind v2 emulator on 127.0.0.1, run the bundled demo manifest through it "
        "(upload, submit, poll, fetch, download), and write the images and report.html. Nothing leaves "
        "this machine and no key is needed.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("out/demo"),
        metavar="DIR",
        help="where the images go (default: out/demo)",
    )
    p.add_argument(
        "--latency",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="the emulator's mean time per edit (default 1.0; the real API takes ~24)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=run)


def demo_manifest() -> Path:
    return Path(str(resources.files("batchflux") / "demo" / "demo.yaml"))


async def _demo(args: argparse.Namespace) -> tuple[RunResult, str]:
    config = EmulatorConfig(latency_mean=args.latency, latency_sd=args.latency / 4, rpm=30, window_s=10.0)
    async with Emulator(config) as emu:
        print(f"emulator listening on {emu.base_url}", file=sys.stderr)
        options = RunOptions(
            manifest=demo_manifest(),
            api_key=DEFAULT_API_KEY,
            out_dir=args.out,
            base_url=emu.base_url,
            engine=EngineConfig(rate=Rate(30, 10.0)),
            fresh=True,
        )
        run = Run(
            options, progress=pick_progress(args.no_progress), say=lambda line: print(line, file=sys.stderr)
        )
        result = await execute(run, grace=5.0)  # SIGINT, SIGTERM, SIGHUP: stop as a run does
        stats = emu.stats()
    calls = (
        f"emulator saw {stats['submits']} submits, {stats['status_calls']} status calls, "
        f"{stats['result_calls']} result calls, {stats['media_calls']} downloads"
    )
    return result, calls


def run(args: argparse.Namespace) -> int:
    teardown = configure_logging(
        args.out, level=logging.INFO, fmt="text", secrets=[DEFAULT_API_KEY], console=True
    )
    try:
        result, calls = asyncio.run(_demo(args))
    finally:
        teardown()
    print(result.message, file=sys.stderr)
    print(calls, file=sys.stderr)
    if result.out_dir is not None and result.exit_code in (ExitCode.OK, ExitCode.JOBS_FAILED):
        print(f"images:  {result.out_dir}/", file=sys.stderr)
        print(f"report:  {result.out_dir / 'report.html'}", file=sys.stderr)
    return result.exit_code

"""Running a :class:`~batchflux.run.runner.Run` from the terminal: logging, progress, signals, output."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Iterator

from tqdm.contrib.logging import logging_redirect_tqdm

from batchflux.engine.progress import Progress
from batchflux.run.exitcodes import ExitCode
from batchflux.run.logs import configure_logging, log_said
from batchflux.run.progress import BarProgress, LogProgress
from batchflux.run.runner import Run, RunOptions, RunResult, out_dir_unusable
from batchflux.rundir import TargetError


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def pick_progress(no_progress: bool) -> Progress:
    if not no_progress and sys.stderr.isatty():
        return BarProgress()
    return LogProgress(interval=30.0)


def _stop_signals() -> tuple[signal.Signals, ...]:
    """The signals that stop a run: SIGINT, SIGTERM, and SIGHUP (the terminal of an interactive run
    closed, an SSH session ended) unless it is ignored — under ``nohup`` the user asked the run to
    outlive its terminal, and it does, writing to batchflux.log alone."""
    hangup = () if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN else (signal.SIGHUP,)
    return (signal.SIGINT, signal.SIGTERM, *hangup)


async def execute(run: Run, grace: float) -> RunResult:
    """Run ``run``; the stop signals stop it gracefully (a second one at once), never a traceback."""
    loop = asyncio.get_running_loop()
    signals = _stop_signals()
    for sig in signals:
        loop.add_signal_handler(sig, run.request_stop, grace)
    try:
        return await run.execute()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


@contextlib.contextmanager
def _fewer_gc_passes(gen0: int = 10_000) -> Iterator[None]:
    """A run allocates a few hundred short-lived objects per job (futures, handles, replies);
    at the default threshold (700) the cyclic collector ran ~80 times per 1 000 jobs and took
    ~3 % of the run's CPU. A higher first threshold does the same work in a few passes."""
    old = gc.get_threshold()
    gc.set_threshold(gen0, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


@contextlib.contextmanager
def _console(bars: bool) -> Iterator[None]:
    if bars:
        with logging_redirect_tqdm(loggers=[logging.getLogger("batchflux")]):
            yield
    else:
        yield


def execute_run(
    options: RunOptions, *, grace: float, no_progress: bool, log_format: str, verbose: bool
) -> int:
    progress = pick_progress(no_progress or options.dry_run)
    try:
        run_dir = options.open_run_dir()
    except TargetError as exc:
        _say(f"error: {exc}")
        return ExitCode.USAGE
    try:
        teardown = configure_logging(
            None if options.dry_run else run_dir.local,
            level=logging.DEBUG if verbose else logging.INFO,
            fmt=log_format,
            secrets=[options.api_key],
            console=True,
        )
    except OSError as exc:  # the run directory (for batchflux.log) cannot be created or written
        _say(out_dir_unusable(run_dir.where, exc))
        return ExitCode.USAGE

    def say(line: str) -> None:  # on the console, and in batchflux.log
        _say(line)
        log_said(line)

    try:
        run = Run(options, progress=progress, say=say, run_dir=run_dir)
        with _console(isinstance(progress, BarProgress)), _fewer_gc_passes():
            result = asyncio.run(execute(run, grace))
        if result.message:
            say(result.message)
    finally:
        teardown()
    return result.exit_code

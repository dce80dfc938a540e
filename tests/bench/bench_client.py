"""Benchmark: the API client's own CPU cost per call and per job, against an emulator in another process.

Run: ``python tests/bench/bench_client.py [--jobs 1000] [--concurrency 32]``

The emulator runs as ``python -m batchflux emulate`` in a subprocess, so ``time.process_time()`` here
counts only the client side: aiohttp, JSON, the error mapping. Each job is one submit, one status
(after it completed), one result and one media download (with its fsync and rename).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp

from batchflux.api import ApiClient, JobResult, Submission
from batchflux.emulator import DEFAULT_API_KEY
from batchflux.files.download import download_image


@contextlib.contextmanager
def emulator_process() -> Iterator[str]:
    cmd = [sys.executable, "-m", "batchflux", "emulate", "--latency", "0.01,0", "--image-size", "64"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            found = re.search(r"BATCHFLUX_BASE_URL=(\S+)", line)
            if found:
                yield found.group(1)
                return
        raise RuntimeError("the emulator did not start")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def timed(
    label: str, items: list[Any], call: Callable[[Any], Awaitable[Any]], concurrency: int
) -> list[Any]:
    sem = asyncio.Semaphore(concurrency)
    results: list[Any] = [None] * len(items)

    async def one(i: int) -> None:
        async with sem:
            results[i] = await call(items[i])

    wall0, cpu0 = time.perf_counter(), time.process_time()
    async with asyncio.TaskGroup() as tg:
        for i in range(len(items)):
            tg.create_task(one(i))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    n = len(items)
    print(f"{label:>9}: {n / wall:8.0f} calls/s   {cpu / n * 1e6:7.0f} µs CPU per call")
    timed.cpu_total += cpu  # type: ignore[attr-defined]
    return results


timed.cpu_total = 0.0  # type: ignore[attr-defined]


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with emulator_process() as base_url, tempfile.TemporaryDirectory() as tmp:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency)) as session:
            client = ApiClient(session, api_key=DEFAULT_API_KEY, base_url=base_url)
            await client.credits()  # warm the pool
            print(f"{args.jobs} jobs, concurrency {args.concurrency}, emulator at {base_url} (own process)")
            params = [{"prompt": f"edit {i}", "aspect_ratio": "1:1"} for i in range(args.jobs)]
            subs: list[Submission] = await timed(
                "submit", params, lambda p: client.submit("flux-kontext-max", p), args.concurrency
            )
            await asyncio.sleep(0.2)  # every job's 10 ms of "inference" is over
            await timed("status", subs, lambda s: client.status(s.status_url), args.concurrency)
            results: list[JobResult] = await timed(
                "result", subs, lambda s: client.result(s.response_url), args.concurrency
            )
            pairs = list(enumerate(results))
            await timed(
                "download",
                pairs,
                lambda p: download_image(
                    client.media, p[1].output, Path(tmp) / f"{p[0]}.png", output_format="png"
                ),
                args.concurrency,
            )
            per_job = timed.cpu_total / args.jobs  # type: ignore[attr-defined]
            print(f"client CPU per job (submit + status + result + download): {per_job * 1e3:.3f} ms")
            print(f"calls: {dict(client.calls)}; files written: {len(os.listdir(tmp))}")


if __name__ == "__main__":
    asyncio.run(main())

"""The clients the benchmarks compare, each run alone in a child process that reports itself as JSON.

    python -m tests.bench.clients batchflux [--rss-samples] -- run MANIFEST --out DIR --base-url URL ...
    python -m tests.bench.clients sdk --url URL --manifest M.csv --out DIR --threads 25 --interval 0.1
    python -m tests.bench.clients bare --url URL --jobs 5000 --concurrency 64

- ``batchflux``: the ``batchflux`` command line itself (``batchflux.cli.main``), in this process so the
  CPU figure is the run's, not the interpreter's start-up and imports (reported apart as ``import_cpu``).
- ``sdk``: what a user does today — the official ``segmind`` SDK (``submit_async(...).wait()``) in a
  ``ThreadPoolExecutor``, one client per thread, then the image fetched with httpx and written to disk.
  The SDK has no 429 handling and no retries: a job that meets an error is counted as failed.
- ``bare``: the floor — one aiohttp session doing the same four requests per job (submit, status,
  result, media; bodies read and JSON parsed), nothing else: no ledger, no files, no retries.

The last stdout line is the JSON report: ``wall`` (s), ``cpu`` (s, this process's user+system during the
work), ``maxrss_mib`` (peak resident set of the process), ``base_rss_mib`` (before the work), and
kind-specific fields. The emulator is another process; none of its CPU is counted here.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import resource
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

IMPORT_CPU0 = time.process_time()


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _rss_now_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler:
    """A daemon-free sampling thread: (unix time, current RSS MiB) every ``every`` seconds until stopped."""

    def __init__(self, every: float = 0.05) -> None:
        self.every = every
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), _rss_now_mib()))
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), _rss_now_mib()))


def _measure(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    base = _rss_now_mib()
    t0, c0, u0, m0 = time.perf_counter(), time.process_time(), time.time(), time.thread_time()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    extra = work()
    wall, cpu, main_cpu = time.perf_counter() - t0, time.process_time() - c0, time.thread_time() - m0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall": wall,
        "cpu": cpu,
        "user_cpu": r1.ru_utime - r0.ru_utime,
        "sys_cpu": r1.ru_stime - r0.ru_stime,
        "main_thread_cpu": main_cpu,
        "started_unix": u0,
        "maxrss_mib": _maxrss_mib(),
        "base_rss_mib": base,
        **extra,
    }


# --- batchflux ---------------------------------------------------------------------------------------


def run_batchflux(argv: list[str], rss_samples: bool) -> dict[str, Any]:
    from batchflux.cli import build_parser
    from batchflux.cli import main as cli_main

    build_parser()  # imports every command module, so their import is not counted as the run's CPU
    import_cpu = time.process_time() - IMPORT_CPU0

    def work() -> dict[str, Any]:
        if rss_samples:
            with RssSampler() as sampler:
                code = cli_main(argv)
            return {"exit_code": code, "rss_samples": sampler.samples}
        return {"exit_code": cli_main(argv)}

    return {**_measure(work), "import_cpu": import_cpu}


# --- the official SDK in a thread pool ---------------------------------------------------------------


def _read_jobs(manifest: Path) -> list[dict[str, Any]]:
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    jobs = []
    for row in rows:
        params: dict[str, Any] = {k: v for k, v in row.items() if k != "id" and v != ""}
        if "seed" in params:
            params["seed"] = int(params["seed"])
        jobs.append({"id": row["id"], "params": params})
    return jobs


def run_sdk(url: str, manifest: Path, out: Path, threads: int, interval: float) -> dict[str, Any]:
    import httpx
    from segmind import SegmindClient
    from segmind.exceptions import SegmindError

    from batchflux.emulator import DEFAULT_API_KEY

    import_cpu = time.process_time() - IMPORT_CPU0
    jobs = _read_jobs(manifest)
    out.mkdir(parents=True, exist_ok=True)
    local = threading.local()

    def clients() -> tuple[Any, httpx.Client]:
        if not hasattr(local, "sdk"):
            local.sdk = SegmindClient(api_key=DEFAULT_API_KEY, base_url=f"{url}/v1")
            local.media = httpx.Client(timeout=30.0)  # no key: the output host must not see it
        return local.sdk, local.media

    def one(job: dict[str, Any]) -> dict[str, Any]:
        sdk, media = clients()
        try:
            handle = sdk.submit_async("flux-kontext-max", **job["params"])
        except SegmindError as exc:
            return {"ok": False, "why": f"submit {exc.status}"}
        except httpx.HTTPError as exc:
            return {"ok": False, "why": f"submit {type(exc).__name__}"}
        try:
            body = handle.wait(timeout=600, interval=interval)
            result_at = time.time()
            resp = media.get(body["output"])
            resp.raise_for_status()
            ext = "jpg" if job["params"].get("output_format") == "jpg" else "png"
            (out / f"{job['id']}.{ext}").write_bytes(resp.content)
        except SegmindError as exc:
            return {"ok": False, "why": f"poll {exc.status}", "rid": handle.request_id}
        except httpx.HTTPError as exc:
            return {"ok": False, "why": f"poll {type(exc).__name__}", "rid": handle.request_id}
        return {"ok": True, "rid": handle.request_id, "result_at": result_at, "done_at": time.time()}

    def work() -> dict[str, Any]:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(one, jobs))
        failures = Counter(r["why"] for r in results if not r["ok"])
        done = [r for r in results if r["ok"]]
        return {
            "jobs": len(jobs),
            "done": len(done),
            "failures": dict(failures),
            "result_at": {r["rid"]: r["result_at"] for r in done},
            "last_done_unix": max((r["done_at"] for r in done), default=None),
        }

    return {**_measure(work), "import_cpu": import_cpu, "threads": threads, "interval": interval}


# --- the floor: a bare aiohttp loop ------------------------------------------------------------------


async def _bare(url: str, jobs: int, concurrency: int) -> dict[str, Any]:
    import aiohttp

    from batchflux.emulator import DEFAULT_API_KEY

    headers = {"x-api-key": DEFAULT_API_KEY}
    polls = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(jobs):
        queue.put_nowait(i)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal polls
        while not queue.empty():
            i = queue.get_nowait()
            body = {"prompt": f"edit number {i}: a watercolour", "aspect_ratio": "1:1", "seed": i}
            async with session.post(f"{url}/v2/flux-kontext-max", json=body, headers=headers) as r:
                sub = await r.json()
            while True:
                polls += 1
                async with session.get(sub["status_url"], headers=headers) as r:
                    state = (await r.json())["status"]
                if state == "COMPLETED":
                    break
                await asyncio.sleep(0.01)
            async with session.get(sub["response_url"], headers=headers) as r:
                result = await r.json()
            async with session.get(result["output"]) as r:
                await r.read()

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session, asyncio.TaskGroup() as tg:
        for _ in range(concurrency):
            tg.create_task(worker(session))
    return {"jobs": jobs, "status_calls": polls}


def run_bare(url: str, jobs: int, concurrency: int) -> dict[str, Any]:
    import aiohttp  # noqa: F401  (imported before the clock starts, as the other clients do)

    import_cpu = time.process_time() - IMPORT_CPU0
    report = _measure(lambda: asyncio.run(_bare(url, jobs, concurrency)))
    return {**report, "import_cpu": import_cpu, "concurrency": concurrency}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.clients", description=__doc__)
    sub = parser.add_subparsers(dest="kind", required=True)
    bf = sub.add_parser("batchflux", help="the batchflux CLI, in this process")
    bf.add_argument("--rss-samples", action="store_true", help="sample the resident set every 50 ms")
    bf.add_argument("argv", nargs=argparse.REMAINDER, help="-- then the batchflux arguments")
    sdk = sub.add_parser("sdk", help="the official SDK in a thread pool")
    sdk.add_argument("--url", required=True)
    sdk.add_argument("--manifest", type=Path, required=True)
    sdk.add_argument("--out", type=Path, required=True)
    sdk.add_argument("--threads", type=int, default=32)
    sdk.add_argument("--interval", type=float, default=1.0)
    bare = sub.add_parser("bare", help="the four requests per job, nothing else")
    bare.add_argument("--url", required=True)
    bare.add_argument("--jobs", type=int, required=True)
    bare.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    if args.kind == "batchflux":
        rest = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        report = run_batchflux(rest, args.rss_samples)
    elif args.kind == "sdk":
        report = run_sdk(args.url, args.manifest, args.out, args.threads, args.interval)
    else:
        report = run_bare(args.url, args.jobs, args.concurrency)
    sys.stdout.flush()
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

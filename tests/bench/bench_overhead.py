"""Benchmark: what a job costs the client — jobs/s, CPU per job, peak memory — against the floor.

    python -m tests.bench.bench_overhead [--jobs 5000] [--repeat 3] [--sdk-threads 32] [--concurrency 64]

The emulator (its own process) answers at once: zero latency, no quota, 16 px images, so the client's
own cost is what is left. Three clients, each in its own child process, ``--repeat`` times (medians shown):

- ``batchflux run`` (the CLI, ``--no-report``): submit, poll, result, download with fsync and rename,
  the ledger;
- the official SDK in a 32-thread pool (the best of 16/32/64 on this 2-core machine), writing each image;
- the floor: a bare aiohttp loop doing the same four requests per job with 64 jobs in flight, reading
  and parsing every body and nothing else.

CPU is the client process's user+system time during the run (``time.process_time``), not its
interpreter start-up and imports; peak RSS is the child's ``ru_maxrss``. Jobs/s on this machine is
bounded by the emulator, which shares the two cores (its CPU per job is shown too). Target
(DESIGN.md): ≤ 1 ms of client CPU per job.

A second figure isolates what a durable image write costs (``bench_outputs``' writers, 4 KiB images).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.bench import harness as h

KINDS = ("batchflux", "sdk", "bare")


@dataclass(frozen=True, slots=True)
class OverheadRun:
    kind: str
    jobs: int
    wall: float
    cpu: float
    user: float
    sys: float
    main_thread: float
    maxrss: float
    server_cpu: float
    ok: bool
    note: str


def _one(kind: str, jobs: int, tmp: Path, manifest: Path, sdk_threads: int, concurrency: int) -> OverheadRun:
    with h.emulator(*h.emulator_args(latency="0,0", image_size=16)) as emu:
        server0 = emu.cpu_seconds()
        out = tmp / f"out-{kind}"
        if kind == "batchflux":
            report = h.run_client("batchflux", ["--", *h.batchflux_cmd(manifest, out, emu.url)])
            ok, note = report["exit_code"] == 0, f"exit {report['exit_code']}"
        elif kind == "sdk":
            args = ["--url", emu.url, "--manifest", str(manifest), "--out", str(out)]
            report = h.run_client("sdk", [*args, "--threads", str(sdk_threads), "--interval", "0.1"])
            ok, note = report["done"] == jobs, f"{report['done']} done"
        else:
            args = ["--url", emu.url, "--jobs", str(jobs), "--concurrency", str(concurrency)]
            report = h.run_client("bare", args)
            ok, note = True, f"{report['status_calls']} status calls"
        server = emu.cpu_seconds() - server0
        stats = emu.stats()
    ok = ok and stats["media_calls"] >= jobs
    return OverheadRun(
        kind, jobs, report["wall"], report["cpu"], report["user_cpu"], report["sys_cpu"],
        report["main_thread_cpu"], report["maxrss_mib"], server, ok, note,
    )  # fmt: skip


def measure(jobs: int, repeat: int, sdk_threads: int, concurrency: int) -> dict[str, list[OverheadRun]]:
    runs: dict[str, list[OverheadRun]] = {k: [] for k in KINDS}
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp_name:
        tmp = Path(tmp_name)
        manifest = h.write_manifest(tmp / "m.csv", jobs)
        for i in range(repeat):
            for kind in KINDS:  # interleaved, so a slow spell of the machine hits every client alike
                h.say(f"overhead: {kind}, {jobs} jobs, repetition {i + 1}/{repeat}")
                runs[kind].append(_one(kind, jobs, tmp, manifest, sdk_threads, concurrency))
                h.rmtree_quiet(tmp / f"out-{kind}")
    return runs


def durable_write_cost(n: int = 400) -> tuple[float, float]:
    """CPU ms per 4 KiB image: batchflux's writer (fsync file and directory) and the same without fsync."""
    from tests.bench import bench_outputs as bo

    data = bo.png_like(4 * 1024)

    async def both(directory: Path) -> tuple[float, float]:
        spool = [(await bo.run_writes(bo.spool_writer, data, n, 16, directory))[1] for _ in range(3)]
        plain = [(await bo.run_writes(bo.no_fsync_writer, data, n, 16, directory))[1] for _ in range(3)]
        return h.median(spool) * 1e3, h.median(plain) * 1e3

    with tempfile.TemporaryDirectory(prefix="bench-writes-") as tmp:
        return asyncio.run(both(Path(tmp)))


def _figure(runs: list[OverheadRun]) -> str:
    jobs = runs[0].jobs
    rate = [r.jobs / r.wall for r in runs]
    cpu = [r.cpu / jobs * 1e3 for r in runs]
    main = h.median(r.main_thread / jobs * 1e3 for r in runs)
    user = h.median(r.user / jobs * 1e3 for r in runs)
    sys_ = h.median(r.sys / jobs * 1e3 for r in runs)
    rss = h.median(r.maxrss for r in runs)
    server = h.median(r.server_cpu / jobs * 1e3 for r in runs)
    return (
        f"{h.spread(rate, '{:.0f}')} jobs/s; client CPU {h.spread(cpu)} ms/job "
        f"(user {user:.2f} + sys {sys_:.2f}; event-loop thread {main:.2f}); peak RSS {rss:.0f} MiB; "
        f"emulator CPU {server:.2f} ms/job"
    )


def rows(runs: dict[str, list[OverheadRun]], sdk_threads: int, concurrency: int,
         writes: tuple[float, float] | None) -> list[h.Row]:  # fmt: skip
    jobs = runs["batchflux"][0].jobs
    base = (
        f"{jobs} jobs, emulator --latency 0,0 --latency-min 0 --image-size 16, no quota; "
        f"median of {len(runs['batchflux'])}"
    )
    floor = h.median(r.cpu / jobs * 1e3 for r in runs["bare"])
    bf = h.median(r.cpu / jobs * 1e3 for r in runs["batchflux"])
    all_ok = all(r.ok for r in runs["batchflux"])
    out = [
        h.Row("3. overhead: batchflux", f"batchflux run m.csv --no-report; {base}",
              _figure(runs["batchflux"]),
              f"≤ 1 ms CPU/job; floor {floor:.2f} ms (bare aiohttp)",
              h.verdict(bf <= 1.0 and all_ok, f"{bf:.2f} ms/job, {bf / floor:.1f}× the floor")),
        h.Row(f"3. overhead: official SDK, {sdk_threads} threads",
              f"segmind SDK submit_async().wait(interval=0.1) × {sdk_threads} threads + httpx download; "
              f"{base}",
              _figure(runs["sdk"]), "", "info (baseline)"),
        h.Row("3. overhead: floor, bare aiohttp",
              f"4 requests/job (submit, status, result, media), {concurrency} jobs in flight; {base}",
              _figure(runs["bare"]), "", "info (floor)"),
    ]  # fmt: skip
    if writes is not None:
        durable, plain = writes
        out.append(
            h.Row("3. overhead: durable image write",
                  "bench_outputs writers, 4 KiB images, 16 at once, median of 3",
                  f"{durable:.2f} ms CPU/image with fsync of file and directory, {plain:.2f} ms without",
                  "", "info")
        )  # fmt: skip
    return out


def run(quick: bool = False) -> list[h.Row]:
    jobs, repeat = (500, 1) if quick else (5000, 3)
    runs = measure(jobs, repeat, sdk_threads=32, concurrency=64)
    h.say("overhead: durable write cost")
    return rows(runs, 32, 64, durable_write_cost(100 if quick else 400))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sdk-threads", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=64, help="jobs in flight in the bare loop")
    args = ap.parse_args()
    runs = measure(args.jobs, args.repeat, args.sdk_threads, args.concurrency)
    print(h.render_table(rows(runs, args.sdk_threads, args.concurrency, durable_write_cost())))


if __name__ == "__main__":
    main()

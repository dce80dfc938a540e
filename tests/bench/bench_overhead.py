"""Benchmark: what a job costs the client — jobs/s, CPU per job, peak memory — against the floor.

    python -m tests.bench.bench_overhead [--jobs 5000] [--repeat 3] [--sdk-threads 32] [--concurrency 64]
                                         [--dir DIR] [--ram-dir /dev/shm]

The emulator (its own process) answers at once: zero latency, no quota, 16 px images, so the client's
own cost is what is left. The clients, each in its own child process, ``--repeat`` times, interleaved
(medians shown):

- ``batchflux run`` (the CLI, ``--no-report``): submit, poll, result, download, each image made durable
  (synced and renamed into place), the ledger — with the run directory on disk (``--dir``, default
  ``out/bench`` in the checkout, where a user's runs go);
- the same with the run directory in RAM (``--ram-dir``, a tmpfs): the client without the disk's cost;
- the official SDK in a 32-thread pool (the best of 16/32/64 on this 2-core machine), writing each
  image (no fsync);
- the floor: a bare aiohttp loop doing the same four requests per job with 64 jobs in flight, reading
  and parsing every body and nothing else — no files, no ledger.

CPU is the client process's user+system time during the run (``time.process_time``), not its
interpreter start-up and imports; peak RSS is the child's ``ru_maxrss``. Jobs/s on this machine is
bounded by the emulator, which shares the two cores (its CPU per job is shown too). Target
(DESIGN.md): ≤ 1 ms of client CPU per job.

A last row, measured first, prices the files alone in the same directory: a 4 KiB image created,
written and renamed with no sync (what the SDK client does), and written through batchflux's file
committer in batches (one ``syncfs`` per batch where Linux has it, else an fsync per file). It shows
the state of the filesystem too: ext4 without a journal scans recently deleted inodes when it creates
a file, so for a few minutes after thousands of files were deleted nearby, each creation costs ~10×
more CPU. So the benchmark keeps every run directory until it ends instead of deleting between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench import harness as h

KINDS = ("batchflux", "batchflux-ram", "sdk", "bare")
LABELS = {
    "batchflux": "3. overhead: batchflux",
    "batchflux-ram": "3. overhead: batchflux, run dir in RAM",
    "sdk": "3. overhead: official SDK, {threads} threads",
    "bare": "3. overhead: floor, bare aiohttp",
}


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


def ram_dir() -> Path | None:
    """A tmpfs to run in, if the machine has one at /dev/shm."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "/dev/shm" and fields[2] == "tmpfs":
            return Path("/dev/shm")
    return None


def _one(kind: str, jobs: int, manifest: Path, out: Path, sdk_threads: int, concurrency: int) -> OverheadRun:
    with h.emulator(*h.emulator_args(latency="0,0", image_size=16)) as emu:
        server0 = emu.cpu_seconds()
        if kind.startswith("batchflux"):
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


def measure(
    jobs: int, repeat: int, sdk_threads: int, concurrency: int, disk: Path, ram: Path | None
) -> dict[str, list[OverheadRun]]:
    """Every client ``repeat`` times, interleaved (a slow spell of the machine hits each alike). Run
    directories are kept until the end: deleting thousands of files slows the next creations."""
    kinds = [k for k in KINDS if k != "batchflux-ram" or ram is not None]
    runs: dict[str, list[OverheadRun]] = {k: [] for k in kinds}
    with (
        tempfile.TemporaryDirectory(prefix="bench-overhead-", dir=disk) as disk_tmp,
        tempfile.TemporaryDirectory(prefix="bench-overhead-", dir=ram or disk) as ram_tmp,
    ):
        manifest = h.write_manifest(Path(disk_tmp) / "m.csv", jobs)
        for i in range(repeat):
            for kind in kinds:
                h.say(f"overhead: {kind}, {jobs} jobs, repetition {i + 1}/{repeat}")
                base = Path(ram_tmp if kind == "batchflux-ram" else disk_tmp)
                out = base / f"out-{kind}-{i}"
                runs[kind].append(_one(kind, jobs, manifest, out, sdk_threads, concurrency))
    return runs


# --- the files alone --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileCosts:
    """CPU µs per 4 KiB image (all threads), medians of 3."""

    plain: float  # create, write, close, rename; no sync
    committer: float  # batchflux's batches, syncfs where available
    committer_fsync: float  # the same with an fsync per file
    syncfs: bool  # whether this platform has syncfs at all
    images: int  # written at once, per measurement


def file_costs(directory: Path, n: int = 400) -> FileCosts:
    from batchflux.files import commit as filecommit
    from batchflux.files import durable
    from tests.bench import bench_outputs as bo

    data = bo.png_like(4 * 1024)

    def plain(d: Path) -> float:
        d.mkdir()
        c0 = time.process_time()
        for i in range(n):
            tmp, dest = d / f".{i}.part", d / f"{i}.png"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)
        return (time.process_time() - c0) / n

    def committed(d: Path) -> float:  # all at once: batches as full as the engine's get
        d.mkdir()
        return asyncio.run(bo.run_writes(bo.committer_writer, data, n, n, d))[1]

    def with_fsync_each(d: Path) -> float:
        saved = filecommit.syncfs
        filecommit.syncfs = lambda fd: False  # as where syncfs(2) is missing
        try:
            return committed(d)
        finally:
            filecommit.syncfs = saved

    with tempfile.TemporaryDirectory(prefix="bench-files-", dir=directory) as tmp:
        root = Path(tmp)
        cells: dict[str, list[float]] = {"plain": [], "committer": [], "fsync": []}
        for r in range(3):
            cells["plain"].append(plain(root / f"plain{r}"))
            cells["committer"].append(committed(root / f"committer{r}"))
            cells["fsync"].append(with_fsync_each(root / f"fsync{r}"))
    return FileCosts(
        plain=h.median(cells["plain"]) * 1e6,
        committer=h.median(cells["committer"]) * 1e6,
        committer_fsync=h.median(cells["fsync"]) * 1e6,
        syncfs=durable._SYNCFS is not None,
        images=n,
    )


# --- the table --------------------------------------------------------------------------------------


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


def rows(
    runs: dict[str, list[OverheadRun]], sdk_threads: int, concurrency: int, files: FileCosts | None,
    disk: Path, ram: Path | None,
) -> list[h.Row]:  # fmt: skip
    jobs = runs["batchflux"][0].jobs
    base = (
        f"{jobs} jobs, emulator --latency 0,0 --latency-min 0 --image-size 16, no quota; "
        f"median of {len(runs['batchflux'])}, interleaved"
    )
    floor = h.median(r.cpu / jobs * 1e3 for r in runs["bare"])
    disk = disk.relative_to(h.ROOT) if disk.is_relative_to(h.ROOT) else disk  # as the table shows it

    def cpu(kind: str) -> float:
        return h.median(r.cpu / jobs * 1e3 for r in runs[kind])

    def judged(kind: str) -> str:
        ms, ok = cpu(kind), all(r.ok for r in runs[kind])
        return h.verdict(ms <= 1.0 and ok, f"{ms:.2f} ms/job, {ms / floor:.2f}× the floor")

    target = f"≤ 1 ms CPU/job; floor {floor:.2f} ms (bare aiohttp)"
    out = [
        h.Row(LABELS["batchflux"], f"batchflux run m.csv --no-report, run dir in {disk}; {base}",
              _figure(runs["batchflux"]), target, judged("batchflux")),
    ]  # fmt: skip
    if "batchflux-ram" in runs:
        out.append(
            h.Row(LABELS["batchflux-ram"], f"the same, run dir in {ram} (tmpfs); {base}",
                  _figure(runs["batchflux-ram"]), target, judged("batchflux-ram"))
        )  # fmt: skip
    out += [
        h.Row(LABELS["sdk"].format(threads=sdk_threads),
              f"segmind SDK submit_async().wait(interval=0.1) × {sdk_threads} threads + httpx download, "
              f"images written (no fsync) to {disk}; {base}",
              _figure(runs["sdk"]), "", "info (baseline)"),
        h.Row(LABELS["bare"],
              f"4 requests/job (submit, status, result, media), {concurrency} jobs in flight, "
              f"no files; {base}",
              _figure(runs["bare"]), "", "info (floor)"),
    ]  # fmt: skip
    if files is not None:
        how = "one syncfs per batch" if files.syncfs else "no syncfs on this platform: an fsync per file"
        out.append(
            h.Row("3. overhead: the files alone",
                  f"4 KiB images in {disk}, {files.images} at once, median of 3",
                  f"CPU per image: {files.plain:.0f} µs created, written and renamed with no sync; "
                  f"{files.committer:.0f} µs through batchflux's file committer ({how}); "
                  f"{files.committer_fsync:.0f} µs with an fsync per file",
                  "", "info")
        )  # fmt: skip
    return out


def disk_dir() -> Path:
    """``out/bench`` in the checkout: where a user's runs go (``out/<manifest>``), and away from
    ``/tmp``, where test suites create and delete thousands of files."""
    path = h.ROOT / "out" / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run(quick: bool = False) -> list[h.Row]:
    jobs, repeat = (500, 1) if quick else (5000, 3)
    disk = disk_dir()
    ram = ram_dir()
    h.say("overhead: the files alone")  # first: the filesystem as the clients will find it
    files = file_costs(disk, 100 if quick else 400)
    runs = measure(jobs, repeat, sdk_threads=32, concurrency=64, disk=disk, ram=ram)
    return rows(runs, 32, 64, files, disk, ram)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sdk-threads", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=64, help="jobs in flight in the bare loop")
    ap.add_argument("--dir", type=Path, default=None, help="the disk to run in (default: out/bench)")
    ap.add_argument("--ram-dir", type=Path, default=ram_dir(), help="a tmpfs to run in as well")
    args = ap.parse_args()
    args.dir = args.dir or disk_dir()
    files = file_costs(args.dir)
    runs = measure(args.jobs, args.repeat, args.sdk_threads, args.concurrency, args.dir, args.ram_dir)
    print(h.render_table(rows(runs, args.sdk_threads, args.concurrency, files, args.dir, args.ram_dir)))


if __name__ == "__main__":
    main()

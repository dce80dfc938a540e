"""Benchmark: a run whose directory is a bucket, beside the same run into a local directory.

Run: ``python -m tests.bench.bench_bucket [--jobs 1000] [--repeat 3] [--ledger-jobs 10000]``

Part 1: ``--jobs`` prompt-only edits, zero latency, 256 px PNGs, the emulator and moto's S3 server
each in its own process on 127.0.0.1; ``batchflux run`` into a local directory and into
``s3://bench/…`` (a new prefix and spool each time), interleaved, ``--repeat`` times; images per
second (jobs ÷ the command's wall time, interpreter start included) and client CPU per image
(the batchflux process alone, read with ``os.wait4``), medians.

Part 2: a new pod's start with a ``--ledger-jobs``-job ledger in the bucket: that many jobs are
run into the bucket first; then, with the spool deleted, ``batchflux run`` of the same manifest
plus one new job starts; the figure is the time from the process's start to the ``submit_intent``
of the new job (its ledger time), median of ``--repeat``: the spool rebuilt from the segments, the
listing read, the ledger replayed and planned, and the first submit sent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from tests.bench import harness as h

REGION = "us-east-1"


def start_moto(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto did not start")


def make_bucket(endpoint: str, name: str) -> None:
    request = urllib.request.Request(f"{endpoint}/{name}", method="PUT")
    with urllib.request.urlopen(request, timeout=10):
        pass


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(args: argparse.Namespace) -> None:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SEGMIND_API_KEY": h.API_KEY,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
    }
    moto = start_moto(port)
    work = Path(
        tempfile.mkdtemp(prefix="bench-bucket-", dir=h.ROOT / "out" if (h.ROOT / "out").exists() else None)
    )
    try:
        make_bucket(endpoint, "bench")
        with h.emulator(*h.emulator_args(image_size=256)) as emu:
            part1(args, emu.url, env, work)
            if args.ledger_jobs > 0:
                part2(args, emu.url, env, work)
    finally:
        moto.terminate()
        moto.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)


def part1(args: argparse.Namespace, url: str, env: dict[str, str], work: Path) -> None:
    manifest = h.write_manifest(work / "p1.csv", args.jobs)
    figures: dict[str, list[tuple[float, float]]] = {"local directory": [], "s3:// (moto)": []}
    for i in range(args.repeat):
        for label in figures:
            if label.startswith("s3"):
                out = f"s3://bench/p1-{uuid.uuid4().hex[:8]}"
                extra = ["--spool", str(work / f"spool-{i}")]
            else:
                out, extra = str(work / f"local-{i}"), []
            cmd = [sys.executable, "-m", "batchflux", *h.batchflux_cmd(manifest, Path(out), url, *extra)]
            cmd[cmd.index("--out") + 1] = out  # a URL stays a URL
            got = h.run_measured(cmd, env=env)
            if got.exit_code != 0:
                raise RuntimeError(f"{label}: exit {got.exit_code}")
            figures[label].append((args.jobs / got.wall, 1000 * got.cpu / args.jobs))
            rate, cpu = args.jobs / got.wall, 1000 * got.cpu / args.jobs
            h.say(f"  {label}: {rate:.0f} images/s, {cpu:.2f} ms CPU/image")
    print(f"\n{args.jobs} jobs, zero latency, 256 px PNG, median of {args.repeat} (interleaved):")
    print("| run directory | images/s | client CPU per image |")
    print("|---|---|---|")
    for label, values in figures.items():
        rate = h.median(v[0] for v in values)
        cpu = h.median(v[1] for v in values)
        print(f"| {label} | {rate:.0f} | {cpu:.2f} ms |")


def part2(args: argparse.Namespace, url: str, env: dict[str, str], work: Path) -> None:
    n = args.ledger_jobs
    manifest = h.write_manifest(work / "p2.csv", n)
    prefix = f"s3://bench/p2-{uuid.uuid4().hex[:8]}"
    h.say(f"  filling {prefix} with a {n}-job run")
    fill = [
        sys.executable,
        "-m",
        "batchflux",
        *h.batchflux_cmd(manifest, Path("x"), url, "--spool", str(work / "fill")),
    ]
    fill[fill.index("--out") + 1] = prefix
    got = h.run_measured(fill, env=env, timeout=1800)
    if got.exit_code != 0:
        raise RuntimeError(f"filling the bucket: exit {got.exit_code}")
    print(f"\nfilling: {n} jobs into the bucket in {got.wall:.1f} s ({n / got.wall:.0f} images/s)")
    shutil.rmtree(work / "fill")
    bigger = h.write_manifest(work / "p2b.csv", n + 1)  # the same jobs and one new one
    times = []
    for i in range(args.repeat):
        spool = work / f"pod-{i}"
        cmd = [
            sys.executable,
            "-m",
            "batchflux",
            *h.batchflux_cmd(bigger, Path("x"), url, "--spool", str(spool)),
        ]
        cmd[cmd.index("--out") + 1] = prefix
        start = time.time()
        got = h.run_measured(cmd, env=env)
        if got.exit_code != 0:
            raise RuntimeError(f"new pod: exit {got.exit_code}")
        first = None
        for line in (spool / "ledger.jsonl").read_text().splitlines():
            event = json.loads(line)
            if event["event"] == "submit_intent" and event["ts"] >= start:
                first = event["ts"]
                break
        assert first is not None
        times.append(first - start)
        h.say(f"  new pod {i}: first submit {first - start:.2f} s after start; whole run {got.wall:.2f} s")
        shutil.rmtree(spool)
        # The next pod meets the same bucket: one more job each time, so a new manifest.
        bigger = h.write_manifest(work / f"p2-{i}.csv", n + 2 + i)
    each = ", ".join(f"{t:.2f}" for t in times)
    print(f"new pod, {n}-job ledger in the bucket, spool gone: first submit after "
          f"{h.median(times):.2f} s (median of {args.repeat}: {each})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ledger-jobs", type=int, default=10_000, help="0: skip the new pod's start")
    run(ap.parse_args())


if __name__ == "__main__":
    main()

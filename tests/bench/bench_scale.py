"""Benchmark: a nightly batch at scale — a 100 000-job manifest, a 1 000 000-event ledger, a 20 000-job run,
and the export of a 100 000-job run directory.

    python -m tests.bench.bench_scale [--rows 100000] [--events 1000000] [--run-jobs 20000] [--repeat 3]

1. **validate**: ``batchflux validate big.csv`` on ``bench_manifest``'s 100 000-row CSV, as a user runs it
   (interpreter start-up included), ``--repeat`` times; wall time and the process's peak RSS (``wait4``).
2. **replay**: ``bench_ledger``'s killed-run ledger of ~1 000 000 events, replayed and planned for resume
   in a fresh interpreter, ``--repeat`` times; peak RSS above the interpreter's own.
3. **run**: ``batchflux run`` of 20 000 jobs against a zero-latency emulator (its own process, 16 px
   images), with the client's resident set sampled every 50 ms; the RSS when the 5 000th, 10 000th and
   20 000th image was on disk shows how memory grows with the batch. The verdict extrapolates that growth
   linearly to 10× the jobs (200 000) and asks that it stay under 1 GiB.
4. **export**: ``batchflux export`` of a made-up 100 000-job run directory (``bench_export``), ``--repeat``
   times; wall time and peak RSS beside ``batchflux validate``'s of the same manifest.
"""

from __future__ import annotations

import argparse
import bisect
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests import runkit
from tests.bench import harness as h

RSS_BUDGET_MIB = 1024.0


def validate_rows(rows: int, repeat: int) -> h.Row:
    from tests.bench import bench_manifest as bm

    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp_name:
        tmp = Path(tmp_name)
        shutil.copytree(bm.IMAGES, tmp / "images")
        manifest = tmp / "big.csv"
        bm.write_csv(manifest, rows)
        size = manifest.stat().st_size / 2**20
        runs = []
        for i in range(repeat):
            h.say(f"scale: batchflux validate, {rows} rows, {i + 1}/{repeat}")
            runs.append(h.run_measured([sys.executable, "-m", "batchflux", "validate", str(manifest)]))
    ok = all(r.exit_code == 0 for r in runs)
    figure = (
        f"{h.spread([r.wall for r in runs])} s wall, CPU {h.median(r.cpu for r in runs):.2f} s, "
        f"peak RSS {h.median(r.maxrss_mib for r in runs):.0f} MiB ({size:.1f} MiB CSV)"
        + ("" if ok else f"; exit codes {[r.exit_code for r in runs]}")
    )
    return h.Row(
        "4. scale: validate 100k-job manifest" if rows == 100_000 else f"4. scale: validate {rows} jobs",
        f"batchflux validate big.csv ({rows} rows from bench_manifest.write_csv); median of {repeat}",
        figure,
        "validate in seconds, memory bounded",
        h.verdict(ok, "validation failed"),
    )


def replay_row(events: int, repeat: int) -> h.Row:
    from tests.bench import bench_ledger as bl

    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp_name:
        path = Path(tmp_name) / "ledger.jsonl"
        n_jobs = bl.jobs_for(events)
        now = time.time()
        h.say(f"scale: writing a ledger of ~{events} events")
        written = bl.write_ledger(path, n_jobs, now)
        size = path.stat().st_size / 1e6
        results: list[dict[str, Any]] = []
        for i in range(repeat):
            h.say(f"scale: replaying it, {i + 1}/{repeat}")
            results.append(bl.replay_in_child(path, n_jobs, now))
    walls = [float(r["replay_wall"]) for r in results]
    plans = [float(r["plan_wall"]) for r in results]
    peaks = [(int(r["replay_peak_kb"]) - int(r["base_kb"])) / 1024 for r in results]
    ok = all(int(r["lines"]) == written for r in results)
    figure = (
        f"replay {h.spread(walls)} s, resume plan {h.median(plans):.2f} s; "
        f"peak RSS +{h.median(peaks):.0f} MiB over the interpreter; "
        f"{written:,} events, {n_jobs:,} jobs, {size:.0f} MB"
    )
    return h.Row(
        f"4. scale: replay {written / 1e6:.1f}M-event ledger",
        f"bench_ledger.write_ledger + replay_in_child (replay_file + plan_resume); median of {repeat}",
        figure,
        "resume start-up not the slow part of a nightly run",
        h.verdict(ok, "lines read ≠ events written"),
    )


def rss_at(samples: list[tuple[float, float]], when: float) -> float:
    """The last RSS sample taken at or before ``when`` (the first one if none was)."""
    times = [t for t, _ in samples]
    i = bisect.bisect_right(times, when) - 1
    return samples[max(i, 0)][1]


def run_row(jobs: int) -> h.Row:
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp_name:
        tmp = Path(tmp_name)
        manifest = h.write_manifest(tmp / "m.csv", jobs)
        h.say(f"scale: batchflux run, {jobs} jobs, zero latency")
        with h.emulator(*h.emulator_args(latency="0,0", image_size=16)) as emu:
            argv = h.batchflux_cmd(manifest, tmp / "out", emu.url)
            report = h.run_client("batchflux", ["--rss-samples", "--", *argv], timeout=900)
        ledger = tmp / "out" / "ledger.jsonl"
        events = runkit.read_events(tmp / "out") if ledger.exists() else []
        done_ts = sorted(e["ts"] for e in events if e["event"] == "downloaded")
    samples = [(float(t), float(r)) for t, r in report["rss_samples"]]
    marks = sorted({m for m in (jobs // 4, jobs // 2, jobs) if 0 < m <= len(done_ts)})
    at = {m: rss_at(samples, done_ts[m - 1]) for m in marks}
    peak = max(float(report["maxrss_mib"]), max(r for _, r in samples))
    base = float(report["base_rss_mib"])
    if len(marks) >= 2 and marks[-1] > marks[0]:
        slope = (at[marks[-1]] - at[marks[0]]) / (marks[-1] - marks[0])  # MiB per job
    else:
        slope = 0.0
    projected = peak + max(slope, 0.0) * (10 * jobs - jobs)
    ok = report["exit_code"] == 0 and len(done_ts) == jobs and projected < RSS_BUDGET_MIB
    marks_text = ", ".join(f"{at[m]:.0f} MiB at {m:,}" for m in marks)
    figure = (
        f"peak RSS {peak:.0f} MiB (before the run {base:.0f}); {marks_text} done; "
        f"growth {slope * 1e3 * 1024:.0f} KiB per 1 000 jobs → ~{projected:.0f} MiB at {10 * jobs:,}; "
        f"{jobs / report['wall']:.0f} jobs/s, {report['cpu'] / jobs * 1e3:.2f} ms CPU/job"
    )
    return h.Row(
        f"4. scale: {jobs:,}-job run",
        h.show_cmd(argv, "m.csv") + "; emulator --latency 0,0 --latency-min 0 --image-size 16",
        figure,
        f"RSS bounded: 10× the jobs < {RSS_BUDGET_MIB:.0f} MiB",
        h.verdict(ok, f"exit {report['exit_code']}, {len(done_ts)} done, ~{projected:.0f} MiB at 10×"),
    )


def run(quick: bool = False) -> list[h.Row]:
    from tests.bench.bench_export import export_row

    if quick:
        return [validate_rows(10_000, 1), replay_row(100_000, 1), run_row(2_000), export_row(10_000, 1)]
    return [validate_rows(100_000, 3), replay_row(1_000_000, 3), run_row(20_000), export_row(100_000, 3)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--run-jobs", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from tests.bench.bench_export import export_row

    rows = [
        validate_rows(args.rows, args.repeat),
        replay_row(args.events, args.repeat),
        run_row(args.run_jobs),
        export_row(args.rows, args.repeat),
    ]
    print(h.render_table(rows))


if __name__ == "__main__":
    main()

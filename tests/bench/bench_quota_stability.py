"""Benchmark (opt-in, long): how steady the learned quota is on a sliding limiter next to a busy CPU.

    python -m tests.bench.bench_quota_stability [--runs 20] [--side-by-side 2]

``--runs`` runs of ``batchflux run`` with no rate, each against its own emulator with a sliding
limiter of 60 per 6 s (600 jobs, latency N(2.4 s, 0.5 s)), ``--side-by-side`` at a time, while a
neighbour process spins on one core the whole time. Shows the minimum and median quota use (the
target: minimum ≥ 0.93), the 429s, and what each run learned. Not in the suite: ~10 minutes.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.bench import harness as h
from tests.bench.bench_quota import QuotaRun, QuotaSetup, _batchflux


def _spin(stop: multiprocessing.synchronize.Event) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def measure(setup: QuotaSetup, runs: int, side_by_side: int) -> list[QuotaRun]:
    stop = multiprocessing.Event()
    neighbour = multiprocessing.Process(target=_spin, args=(stop,), daemon=True)
    neighbour.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-stability-") as tmp_name:
            tmp = Path(tmp_name)
            manifest = h.write_manifest(tmp / "m.csv", setup.jobs)
            h.say(
                f"quota stability: {runs} learned runs, {side_by_side} at a time, CPU-bound neighbour, "
                + setup.label()
            )
            with ThreadPoolExecutor(side_by_side) as pool:
                return list(pool.map(functools.partial(_batchflux, setup, tmp, manifest, False), range(runs)))
    finally:
        stop.set()
        neighbour.join(5)


def stability_row(setup: QuotaSetup, runs: list[QuotaRun], side_by_side: int) -> h.Row:
    uses = sorted(r.use(setup.bound) if r.done == setup.jobs else 0.0 for r in runs)
    median = h.median(uses)
    figure = (
        f"quota use min {uses[0]:.1%}, median {median:.1%} of {len(runs)} runs "
        f"({', '.join(f'{u:.3f}' for u in uses)}); 429s {', '.join(str(r.rate_limited) for r in runs)}; "
        f"at most {max(r.worst_later_window for r in runs)} 429s in a window after the first; "
        f"learned {', '.join(sorted({r.learned or 'nothing' for r in runs}))}"
    )
    command = (
        f"{runs[0].command}; {setup.label()}; {side_by_side} side by side, a CPU-bound neighbour process"
    )
    target = f"limit {setup.bound:.1f} s; target min ≥ 93 % use"
    ok = h.verdict(uses[0] >= 0.93, f"min {uses[0]:.1%}")
    return h.Row("1. quota stability: learned, sliding limiter, busy CPU", command, figure, target, ok)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--side-by-side", type=int, default=2)
    args = ap.parse_args()
    setup = QuotaSetup(limiter="sliding")
    print(
        h.render_table(
            [stability_row(setup, measure(setup, args.runs, args.side_by_side), args.side_by_side)]
        )
    )


if __name__ == "__main__":
    main()

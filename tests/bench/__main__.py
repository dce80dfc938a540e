"""``python -m tests.bench``: the whole benchmark suite, one table on stdout, progress on stderr.

    python -m tests.bench                      # everything, ~10 minutes on a 2-core machine
    python -m tests.bench --only quota,polling # some of it
    python -m tests.bench --quick              # a smaller version of each, ~1 minute (a smoke run)
    python -m tests.bench --markdown FILE      # also write the table, the machine and the time to FILE

Run from the repository root. Every emulator runs as its own process and every client in its own child
process, so CPU and memory figures are the client's alone. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.bench import harness as h

# In the order of the table.
SUITE: tuple[tuple[str, str], ...] = (
    ("quota", "tests.bench.bench_quota"),
    ("polling", "tests.bench.bench_polling"),
    ("overhead", "tests.bench.bench_overhead"),
    ("scale", "tests.bench.bench_scale"),
    ("faults", "tests.bench.bench_faults"),
    ("hosts", "tests.bench.bench_hosts"),
)
# The CPU benchmark runs first: the others delete thousands of files when they end, and on ext4
# without a journal that makes file creation nearby costlier for minutes (see bench_overhead).
RUN_FIRST = "overhead"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(n for n, _ in SUITE)}")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, one repetition: a smoke run")
    ap.add_argument("--markdown", type=Path, metavar="FILE", help="also write the table to FILE")
    args = ap.parse_args(argv)
    wanted = [n.strip() for n in args.only.split(",") if n.strip()] or [n for n, _ in SUITE]
    unknown = set(wanted) - {n for n, _ in SUITE}
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    rows: dict[str, list[h.Row]] = {}
    started = time.perf_counter()
    failures = 0
    for name, module in sorted(SUITE, key=lambda entry: entry[0] != RUN_FIRST):
        if name not in wanted:
            continue
        h.say(f"=== {name}")
        t0 = time.perf_counter()
        try:
            run: Callable[..., list[h.Row]] = importlib.import_module(module).run
            got = run(quick=args.quick)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            failures += 1
            got = [h.Row(name, module, f"benchmark crashed: {type(exc).__name__}: {exc}", "", "ERROR")]
        rows[name] = got
        h.say(f"=== {name} took {time.perf_counter() - t0:.0f} s:\n{h.render_table(got)}")
    total = time.perf_counter() - started
    table = h.render_table([row for name, _ in SUITE for row in rows.get(name, [])])
    footer = (
        f"Machine: {h.machine()}. Suite{' (--quick)' if args.quick else ''}: {total / 60:.1f} min, "
        f"{time.strftime('%Y-%m-%d')}."
    )
    print(table)
    print()
    print(footer)
    if args.markdown is not None:
        args.markdown.write_text(f"{table}\n\n{footer}\n", encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

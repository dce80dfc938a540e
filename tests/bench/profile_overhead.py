"""Where a job's client CPU goes: a sampling profile of ``batchflux run`` at zero latency.

    pip install py-spy
    python -m tests.bench.profile_overhead [--jobs 5000] [--dir /dev/shm] [--top 40] [--raw FILE]

Starts the emulator as its own process (zero latency, no quota, 16 px images, as the overhead
benchmark does), runs ``python -m batchflux run`` under ``py-spy record --gil`` (only samples where a
thread holds the GIL: Python's own CPU, not time blocked in syscalls), and prints the share of samples
by the innermost batchflux frame and the frame it called: so "ApiClient._call -> aiohttp" is the HTTP
library working for batchflux, "... -> (leaf)" is batchflux's own code, and "execute_run -> asyncio"
is the event loop itself. Use ``--dir /dev/shm`` to leave the disk out.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench import harness as h

# py-spy names a frame "function (path:line)"; paths under the package may be shortened to the
# module's file name, so the engine's modules are matched by name too.
_OURS = re.compile(
    r"batchflux/|^(core|fetch|submit|tracks|deadlines|inflight|latency|inputs|stats|config)\.py$"
)
_FILE = re.compile(r"\(([^:)]*)")
_LINE = re.compile(r":\d+\)")


def breakdown(raw: Path) -> tuple[int, collections.Counter[str]]:
    """Samples per "innermost batchflux frame -> what it called", from py-spy's raw output."""
    shares: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        files = [(m.group(1) if (m := _FILE.search(f)) else "") for f in frames]
        ours = [i for i, f in enumerate(files) if _OURS.search(f)]
        if not ours:
            shares["(no batchflux frame: other threads, start-up)"] += n
            continue
        i = ours[-1]
        callee = frames[i + 1] if i + 1 < len(frames) else "(leaf)"
        shares[f"{_LINE.sub(')', frames[i])}  ->  {_LINE.sub(')', callee)}"] += n
    return total, shares


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the run directory goes"
    )
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--raw", type=Path, help="keep py-spy's raw samples here")
    args = ap.parse_args()
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-profile-", dir=args.dir) as tmp_name:
        tmp = Path(tmp_name)
        manifest = h.write_manifest(tmp / "m.csv", args.jobs)
        raw = args.raw or tmp / "samples.txt"
        with h.emulator(*h.emulator_args(latency="0,0", image_size=16)) as emu:
            run = [sys.executable, "-m", "batchflux", *h.batchflux_cmd(manifest, tmp / "out", emu.url)]
            cmd = [pyspy, "record", "--gil", "-r", "1000", "-f", "raw", "-o", str(raw), "--", *run]
            env = {**os.environ, "SEGMIND_API_KEY": h.API_KEY}
            proc = subprocess.run(cmd, cwd=h.ROOT, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not raw.exists():
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        total, shares = breakdown(raw)
    print(f"{total} samples of Python holding the GIL, {args.jobs} jobs (1 000 samples a second)")
    for key, n in shares.most_common(args.top):
        print(f"{n * 100 / total:5.1f}%  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: validating a 100 000-row CSV manifest — wall time, CPU time and memory.

Run: ``python tests/bench/bench_manifest.py [--rows 100000] [--repeat 3]``

The CSV is generated in a temporary directory: a third of the rows reuse one of four local images
(the bundled samples), the rest point at distinct https URLs; every row has its own prompt, a few
aspect ratios, both output formats, some seeds, some explicit ids. Figures printed:

- wall and CPU time of ``load_manifest`` (best of ``--repeat``), and per row;
- peak RSS of the process (``ru_maxrss``) against the RSS before loading, and the size of the file;
- the Python heap's peak during one more load under ``tracemalloc`` (slower; only for the memory figure),
  and how much of it the jobs themselves hold when loading has finished.
"""

from __future__ import annotations

import argparse
import csv
import gc
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from batchflux.manifest import load_manifest

IMAGES = Path(__file__).resolve().parents[2] / "sample_manifests" / "images"
RATIOS = ("16:9", "1:1", "4:5", "", "match_input_image", "3:2")
VERBS = ("Recolour the sofa", "Put the mug on a beach", "Make it snow", "Turn it into a watercolour")


def write_csv(path: Path, rows: int) -> None:
    locals_ = sorted(p.name for p in IMAGES.glob("*.jpg"))
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["id", "input_image", "prompt", "aspect_ratio", "output_format", "seed"])
        for i in range(rows):
            image = (
                f"images/{locals_[i % len(locals_)]}" if i % 3 == 0 else f"https://cdn.example.com/p/{i}.jpg"
            )
            out.writerow(
                [
                    f"item-{i}" if i % 2 == 0 else "",
                    image,
                    f"{VERBS[i % len(VERBS)]}, variant {i}, keep the lighting",
                    RATIOS[i % len(RATIOS)],
                    "jpg" if i % 4 == 0 else "",
                    str(i) if i % 5 == 0 else "",
                ]
            )


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(IMAGES, root / "images")
        manifest = root / "big.csv"
        t0 = time.perf_counter()
        write_csv(manifest, args.rows)
        size_mib = manifest.stat().st_size / 2**20
        print(f"generated {args.rows} rows, {size_mib:.1f} MiB, in {time.perf_counter() - t0:.2f} s")
        gc.collect()
        rss_before = rss_mib()
        walls, cpus = [], []
        for _ in range(args.repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            loaded = load_manifest(manifest)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
            assert len(loaded.jobs) == args.rows
            del loaded
            gc.collect()
        rss_after = rss_mib()
        best = min(walls)
        print(
            f"load_manifest: best {best:.2f} s wall ({min(cpus):.2f} s CPU) of {args.repeat}; "
            f"{best / args.rows * 1e6:.1f} µs per row; all runs: {', '.join(f'{w:.2f}' for w in walls)} s"
        )
        print(
            f"peak RSS: {rss_after:.0f} MiB (before loading {rss_before:.0f} MiB, "
            f"+{rss_after - rss_before:.0f} MiB for {args.rows} jobs)"
        )
        tracemalloc.start()
        loaded = load_manifest(manifest)
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"tracemalloc: peak {peak / 2**20:.0f} MiB during the load, {held / 2**20:.0f} MiB held by the "
            f"manifest afterwards ({held / args.rows:.0f} B per job); the file is {size_mib:.1f} MiB"
        )
        local = sum(1 for job in loaded.jobs if job.local_input is not None)
        print(f"jobs with a local input: {local} (4 distinct files, each read once)")


if __name__ == "__main__":
    sys.exit(main())

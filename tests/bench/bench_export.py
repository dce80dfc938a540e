"""Benchmark: ``batchflux export`` of a 100 000-job run directory — wall time, CPU and peak memory.

    python -m tests.bench.bench_export [--jobs 100000] [--repeat 3]

The run directory is made up, not run: ``bench_manifest``'s CSV of 100 000 rows (a third with local
inputs), and a ledger through ``LedgerWriter`` with ``bench_ledger``'s mix of fates per job — 90 %
downloaded (intent, submitted, state, result, downloaded: five events), the rest in flight, awaiting
download, failed or with an open intent — whose ``run_started`` names the manifest, as a run's does.
Every downloaded job has its image on disk (a small PNG or JPEG, written once per job), so the export
reads 90 000 image headers for the dimensions, as it would after a real run.

Timed from outside with ``wait4``: ``batchflux export OUT -o results.csv``, interpreter start-up
included, ``--repeat`` times. For scale, ``batchflux validate`` of the same manifest once: the
manifest alone is most of the memory; the rest is the ledger's records (one per job, however many
events) — the rows themselves are streamed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from PIL import Image

from batchflux.ledger import Event, EventType, LedgerWriter
from batchflux.manifest import load_manifest
from tests.bench import bench_ledger as bl
from tests.bench import bench_manifest as bm
from tests.bench import harness as h

NOW = 1_800_000_000.0


def sample_images() -> dict[str, bytes]:
    out = {}
    for ext, fmt in (("png", "PNG"), ("jpg", "JPEG")):
        buffer = io.BytesIO()
        Image.new("RGB", (96, 64), (200, 120, 40)).save(buffer, fmt)
        out[ext] = buffer.getvalue()
    return out


def make_run_dir(tmp: Path, n: int) -> tuple[Path, Path, Counter[str], int]:
    """The manifest, the run directory, the jobs by fate, and the ledger's event count."""
    shutil.copytree(bm.IMAGES, tmp / "images")
    manifest = tmp / "big.csv"
    bm.write_csv(manifest, n)
    jobs = load_manifest(manifest).jobs
    out = tmp / "out"
    out.mkdir()
    images = sample_images()
    digests = {ext: hashlib.sha256(data).hexdigest() for ext, data in images.items()}
    fates: Counter[str] = Counter()
    w = LedgerWriter(out / "ledger.jsonl")
    w.append(Event(EventType.RUN_STARTED, None, {
        "run_id": "r1", "manifest": str(manifest), "manifest_path": str(manifest.resolve()), "set": {},
        "price_usd": 0.1, "jobs": n, "shard": None,
    }, ts=NOW))  # fmt: skip
    for i, job in enumerate(jobs):
        kind = bl.fate(i)
        fates[kind] += 1
        ts = NOW + i * 0.01
        rid = hashlib.md5(job.id.encode()).hexdigest()
        w.append(Event(EventType.SUBMIT_INTENT, job.id, {
            "fingerprint": job.fingerprint, "model": job.model, "params": job.params,
            "input": str(job.local_input) if job.local_input else job.params.get("input_image"),
            "output": job.output, "attempt": 1,
        }, ts=ts))  # fmt: skip
        if kind == "intent":
            continue
        w.append(Event(EventType.SUBMITTED, job.id, {
            "request_id": rid, "status_url": f"https://api.segmind.com/v2/requests/{rid}/status",
            "response_url": f"https://api.segmind.com/v2/requests/{rid}", "submitted_at": ts,
        }, ts=ts))  # fmt: skip
        w.append(Event(EventType.STATE, job.id, {"request_id": rid, "status": "PROCESSING"}, ts=ts + 8))
        if kind == "submitted":
            continue
        if kind == "failed":
            w.append(Event(EventType.FAILED, job.id, {
                "request_id": rid, "cause": "moderation", "error": "Content flagged by moderation",
                "http_status": 422,
            }, ts=ts + 20))  # fmt: skip
            continue
        w.append(Event(EventType.RESULT, job.id, {
            "request_id": rid, "output_url": f"https://images.segmind.com/outputs/{rid}.png",
            "metrics": {"inference_time": 24.3}, "completed_at": ts + 24,
        }, ts=ts + 24))  # fmt: skip
        if kind == "completed":
            continue
        ext = job.output_format
        (out / job.output).write_bytes(images[ext])
        w.append(Event(EventType.DOWNLOADED, job.id, {
            "request_id": rid, "path": job.output, "size": len(images[ext]), "sha256": digests[ext],
        }, ts=ts + 25))  # fmt: skip
    w.close()
    return manifest, out, fates, w.events_written


def export_row(n: int, repeat: int) -> h.Row:
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp_name:
        tmp = Path(tmp_name)
        h.say(f"export: making a {n}-job run directory")
        manifest, out, fates, events = make_run_dir(tmp, n)
        ledger_mb = (out / "ledger.jsonl").stat().st_size / 1e6
        dest = tmp / "results.csv"
        runs = []
        for i in range(repeat):
            h.say(f"export: batchflux export, {n} jobs, {i + 1}/{repeat}")
            runs.append(
                h.run_measured([sys.executable, "-m", "batchflux", "export", str(out), "-o", str(dest)])
            )
        h.say("export: batchflux validate of the same manifest, for its memory")
        validate = h.run_measured([sys.executable, "-m", "batchflux", "validate", str(manifest)])
        with dest.open(encoding="utf-8-sig", newline="") as fh:
            statuses = Counter(row["status"] for row in csv.DictReader(fh))
    in_flight = fates["submitted"] + fates["completed"] + fates["intent"]
    expected = Counter({"done": fates["downloaded"], "in_flight": in_flight, "failed": fates["failed"]})
    ok = all(r.exit_code == 0 for r in runs) and statuses == expected
    peak = h.median(r.maxrss_mib for r in runs)
    figure = (
        f"{h.spread([r.wall for r in runs])} s wall, CPU {h.median(r.cpu for r in runs):.2f} s, "
        f"peak RSS {peak:.0f} MiB (validate of the manifest alone: {validate.maxrss_mib:.0f} MiB, "
        f"{validate.wall:.2f} s); {sum(statuses.values()):,} rows, "
        f"{fates['downloaded']:,} image headers read; "
        f"ledger {events:,} events, {ledger_mb:.0f} MB"
        + ("" if ok else f"; exit codes {[r.exit_code for r in runs]}, statuses {dict(statuses)}")
    )
    return h.Row(
        f"4. scale: export a {n:,}-job run",
        "batchflux export OUT -o results.csv (bench_export: bench_manifest's CSV, a ledger of "
        f"bench_ledger's mix, the images on disk); median of {repeat}",
        figure,
        "export in seconds, memory bounded by the jobs (not the events)",
        h.verdict(ok, "rows do not match the ledger"),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(h.render_table([export_row(args.jobs, args.repeat)]))


if __name__ == "__main__":
    main()

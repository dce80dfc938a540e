"""Benchmark: the ledger at nightly-batch scale — write, replay and plan a resume over ~1 000 000 events.

Run: ``python tests/bench/bench_ledger.py [--events 1000000] [--dir DIR] [--files 200]``

1. **write** — a killed run's ledger through :class:`LedgerWriter` (one ``write()`` per event, as the
   engine does): ~205 000 jobs, 90 % downloaded (intent, submitted, state, result, downloaded), the rest
   in flight, awaiting download, failed or with an open intent; plus run_started/run_finished.
2. **replay** — ``replay_file`` in a fresh interpreter: wall and CPU time, and the peak RSS above the
   interpreter's own (imports included), so the figure is the replay's.
3. **plan** — ``plan_resume`` over the replay for the whole manifest (``file_ok`` answering at once, so
   this is the decision cost alone), in the same fresh interpreter.
4. **file check** — what ``check_file`` costs per downloaded image (1 MiB files), hashing and ``quick``.
5. **commit** — the fsync barrier an intent can wait for before its POST: alone, and 50 submitters at once.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from batchflux.ledger import Event, EventType, JobRecord, LedgerWriter
from batchflux.ledger.resume import check_file

MIX = (("downloaded", 0.90), ("submitted", 0.04), ("completed", 0.02), ("failed", 0.02), ("intent", 0.02))
EVENTS_PER_JOB = {"downloaded": 5, "submitted": 3, "completed": 4, "failed": 4, "intent": 1}


def fate(i: int) -> str:
    x = (i * 7919 % 10_000) / 10_000  # a fixed spread, the same on every run
    for name, share in MIX:
        if x < share:
            return name
        x -= share
    return "downloaded"


def job_id(i: int) -> str:
    return f"catalog-{i:07d}"


def fingerprint(i: int) -> str:
    return hashlib.sha256(job_id(i).encode()).hexdigest()


def params(i: int) -> dict[str, object]:
    return {
        "prompt": f"turn product photo {i} into a soft watercolour on cream paper, keep the label legible",
        "input_image": f"images/product-{i:07d}.jpg",
        "aspect_ratio": "match_input_image",
        "output_format": "png",
        "safety_tolerance": 2,
        "seed": i,
    }


def jobs_for(n_events: int) -> int:
    """Jobs whose events (plus the two run events) reach ``n_events``."""
    total, n = 2, 0
    while total < n_events:
        total += EVENTS_PER_JOB[fate(n)]
        n += 1
    return n


def write_ledger(path: Path, n_jobs: int, now: float) -> int:
    """A run that started 6 h ago and was killed: submits 10 ms apart, the in-flight ones recent."""
    t0 = now - 6 * 3600
    w = LedgerWriter(path)
    w.append(Event(EventType.RUN_STARTED, None, {"run_id": "r1", "jobs": n_jobs, "pid": 1}, ts=t0))
    for i in range(n_jobs):
        jid, kind = job_id(i), fate(i)
        ts = now - 1800 + i * 1e-3 if kind == "submitted" else t0 + i * 0.01
        rid = hashlib.md5(jid.encode()).hexdigest()
        p = params(i)
        w.append(Event(EventType.SUBMIT_INTENT, jid, {
            "fingerprint": fingerprint(i), "model": "flux-kontext-max", "params": p,
            "input": p["input_image"], "output": f"{jid}.png", "attempt": 1,
        }, ts=ts))  # fmt: skip
        if kind == "intent":
            continue
        w.append(Event(EventType.SUBMITTED, jid, {
            "request_id": rid, "status_url": f"https://api.segmind.com/v2/requests/{rid}/status",
            "response_url": f"https://api.segmind.com/v2/requests/{rid}", "submitted_at": ts,
        }, ts=ts))  # fmt: skip
        w.append(Event(EventType.STATE, jid, {"request_id": rid, "status": "PROCESSING"}, ts=ts + 8))
        if kind == "submitted":
            continue
        if kind == "failed":
            w.append(Event(EventType.FAILED, jid, {
                "request_id": rid, "cause": "moderation", "error": "Content flagged by moderation",
                "http_status": 422,
            }, ts=ts + 20))  # fmt: skip
            continue
        w.append(Event(EventType.RESULT, jid, {
            "request_id": rid, "output_url": f"https://images.segmind.com/outputs/{rid}.png",
            "metrics": {"inference_time": 24.3, "queue_time": 0.8}, "completed_at": ts + 24,
        }, ts=ts + 24))  # fmt: skip
        if kind == "completed":
            continue
        w.append(Event(EventType.DOWNLOADED, jid, {
            "request_id": rid, "path": f"{jid}.png", "size": 1_482_113,
            "sha256": hashlib.sha256(rid.encode()).hexdigest(),
        }, ts=ts + 25))  # fmt: skip
    w.append(Event(EventType.RUN_FINISHED, None, {"run_id": "r1", "exit_code": 130}, ts=t0 + n_jobs * 0.01))
    w.close()
    return w.events_written


CHILD = """
import gc, json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {here!r})
import bench_ledger as b
from batchflux.manifest.job import Job
from batchflux.ledger import replay_file
from batchflux.ledger.resume import plan_resume

path, n_jobs, now = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
w, c = time.perf_counter(), time.process_time()
rep = replay_file(path)
replay_wall, replay_cpu = time.perf_counter() - w, time.process_time() - c
replay_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
jobs = [Job(id=b.job_id(i), index=i, model="flux-kontext-max", params=b.params(i),
            output=f"{{b.job_id(i)}}.png", fingerprint=b.fingerprint(i)) for i in range(n_jobs)]
w, c = time.perf_counter(), time.process_time()
plan = plan_resume(jobs, rep, now=now, file_ok=lambda rec: True)
line = plan.summary_line()
plan_wall, plan_cpu = time.perf_counter() - w, time.process_time() - c
print(json.dumps(dict(
    jobs=len(rep.jobs), lines=rep.lines, replay_wall=replay_wall, replay_cpu=replay_cpu,
    base_kb=base, replay_peak_kb=replay_peak, plan_wall=plan_wall, plan_cpu=plan_cpu,
    counts=plan.counts(), summary=line,
)))
"""


def replay_in_child(path: Path, n_jobs: int, now: float) -> dict[str, object]:
    code = CHILD.format(here=str(Path(__file__).parent))
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), str(n_jobs), str(now)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def bench_file_check(directory: Path, n_files: int) -> tuple[float, float]:
    """Seconds per 1 MiB image for check_file: full hash, and quick (unchanged since download)."""
    recs = []
    for i in range(n_files):
        data = os.urandom(1 << 20)
        (directory / f"img-{i}.png").write_bytes(data)
        rec = JobRecord(
            job_id=str(i), path=f"img-{i}.png", size=len(data), sha256=hashlib.sha256(data).hexdigest()
        )
        rec.downloaded_at = time.time() + 1
        recs.append(rec)
    timings = []
    for quick in (False, True):
        check = check_file(directory, quick=quick)
        start = time.perf_counter()
        assert all(check(rec) == "intact" for rec in recs)
        timings.append((time.perf_counter() - start) / n_files)
    return timings[0], timings[1]


async def bench_commit(path: Path, n: int = 200) -> tuple[float, float]:
    """Seconds per commit when each append waits alone, and per commit in bursts of 50 concurrent."""
    w = LedgerWriter(path)
    ev = Event(EventType.SUBMIT_INTENT, "j", {"fingerprint": "0" * 64, "params": params(1)})
    start = time.perf_counter()
    for _ in range(n):
        w.append(ev)
        await w.commit()
    alone = (time.perf_counter() - start) / n

    async def submitter() -> None:
        w.append(ev)
        await w.commit()

    start = time.perf_counter()
    for _ in range(n // 50):
        async with asyncio.TaskGroup() as tg:
            for _ in range(50):
                tg.create_task(submitter())
    burst = (time.perf_counter() - start) / (n // 50 * 50)
    w.close()
    return alone, burst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary directory)")
    ap.add_argument("--files", type=int, default=200, help="1 MiB images for the file-check part")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        path = directory / "ledger.jsonl"
        n_jobs = jobs_for(args.events)
        now = time.time()
        start = time.perf_counter()
        written = write_ledger(path, n_jobs, now)
        write_s = time.perf_counter() - start
        size_mb = path.stat().st_size / 1e6
        rate, per_event = written / write_s, write_s / written * 1e6
        print(f"write   {written:,} events for {n_jobs:,} jobs, {size_mb:,.0f} MB: {write_s:.2f} s "
              f"({rate:,.0f} events/s, {per_event:.1f} µs/event incl. building them)")  # fmt: skip
        r = replay_in_child(path, n_jobs, now)
        peak_mb = (int(str(r["replay_peak_kb"])) - int(str(r["base_kb"]))) / 1024
        wall, cpu = float(str(r["replay_wall"])), float(str(r["replay_cpu"]))
        base_mb = int(str(r["base_kb"])) / 1024
        print(f"replay  {r['lines']:,} lines → {r['jobs']:,} jobs: {wall:.2f} s wall, {cpu:.2f} s CPU; "
              f"peak RSS +{peak_mb:,.0f} MB over the interpreter ({base_mb:.0f} MB)")  # fmt: skip
        print(f"plan    plan_resume over {n_jobs:,} jobs: {float(str(r['plan_wall'])):.2f} s wall, "
              f"{float(str(r['plan_cpu'])):.2f} s CPU")  # fmt: skip
        print(f"        {r['summary']}")
        files = directory / "images"
        files.mkdir()
        full, quick = bench_file_check(files, args.files)
        print(f"check   check_file per 1 MiB image: {full * 1e3:.2f} ms hashing, {quick * 1e6:.0f} µs quick "
              f"→ 3 000 images: {3000 * full:.1f} s / {3000 * quick:.2f} s")  # fmt: skip
        alone, burst = asyncio.run(bench_commit(directory / "commit.jsonl"))
        print(f"commit  append + commit(): {alone * 1e3:.2f} ms each alone, {burst * 1e3:.3f} ms each "
              f"in bursts of 50 (fsyncs shared)")  # fmt: skip


if __name__ == "__main__":
    main()

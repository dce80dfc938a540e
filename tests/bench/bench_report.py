"""How long the report takes for a big run, and whether the page stays responsive.

    python tests/bench/bench_report.py [--jobs 10000] [--no-browser]

Builds a run directory of N jobs (90 % done with real PNG outputs, the rest failed or expired;
inputs drawn from 40 shared local images, as a catalog does), then times:
- write_report, first call (thumbnails made) and second call (thumbnails reused);
- the HTML size;
- in headless Chromium (when available): load to first cards, a status-filter click and a search.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from batchflux.ledger import LEDGER_FILENAME, Event, EventType, LedgerWriter
from batchflux.report import write_report

T0 = 1_760_000_000.0
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def build(root: Path, jobs: int) -> Path:
    out = root / "out"
    inputs = []
    for i in range(40):
        p = root / "photos" / f"p{i}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (1024, 768), (i * 6, 100, 200 - i * 4)).save(p, quality=85)
        inputs.append(p)
    outputs = [png((1024, 576), (40, 6 * i, 120)) for i in range(40)]
    out.mkdir(parents=True)
    with LedgerWriter(out / LEDGER_FILENAME) as w:

        def ev(kind: EventType, job: str | None, ts: float, **data: object) -> None:
            w.append(Event(kind, job, dict(data), ts=ts))

        ev(EventType.RUN_STARTED, None, T0, run_id="bench", manifest="big.yaml")
        for i in range(jobs):
            t = T0 + i * 60 / 50  # 50 submits a minute
            job, rid, src = f"job-{i:05d}", f"r{i}", str(inputs[i % 40])
            params = {"prompt": f"edit number {i}: make the sky dramatic", "input_image": src}
            ev(
                EventType.SUBMIT_INTENT,
                job,
                t,
                model="flux-kontext-max",
                params=params,
                input=src,
                output=f"{job}.png",
            )
            ev(EventType.SUBMITTED, job, t + 0.1, request_id=rid, submitted_at=t)
            if i % 10 == 7:
                ev(
                    EventType.FAILED,
                    job,
                    t + 20,
                    request_id=rid,
                    cause="moderation",
                    error="blocked",
                    http_status=422,
                )
                continue
            if i % 50 == 9:
                ev(EventType.EXPIRED, job, t + 3600, request_id=rid)
                continue
            ev(
                EventType.RESULT,
                job,
                t + 25,
                request_id=rid,
                metrics={"inference_time": 24.0},
                completed_at=t + 25,
            )
            data = outputs[i % 40]
            (out / f"{job}.png").write_bytes(data)
            digest = hashlib.sha256(data).hexdigest()
            ev(
                EventType.DOWNLOADED,
                job,
                t + 26,
                request_id=rid,
                path=f"{job}.png",
                size=len(data),
                sha256=digest,
            )
    return out


async def browser(url: str, exe: str) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=exe, args=ARGS)
        page = await b.new_page(viewport={"width": 1360, "height": 900})
        t = time.perf_counter()
        await page.goto(url)
        await page.wait_for_selector("#grid .card")
        print(f"browser: load to first cards {time.perf_counter() - t:.2f} s")
        took = await page.evaluate(
            """() => { const t = performance.now();
                document.querySelector('#chips .chip[data-status="failed"]').click();
                return performance.now() - t; }"""
        )
        print(f"browser: 'failed' filter click {took:.0f} ms ({await page.text_content('#count')})")
        took = await page.evaluate(
            """() => { const s = document.getElementById('search'); const t = performance.now();
                document.querySelector('#chips .chip[data-status=""]').click();
                s.value = 'number 77'; s.dispatchEvent(new Event('input'));
                return new Promise(r => setTimeout(() => r(performance.now() - t), 160)); }"""
        )
        print(
            f"browser: search incl. 150 ms typing pause {took:.0f} ms ({await page.text_content('#count')})"
        )
        await b.close()


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        out = build(Path(tmp), args.jobs)
        print(f"jobs: {args.jobs}; built the run directory in {time.perf_counter() - t:.1f} s")
        t, cpu = time.perf_counter(), time.process_time()
        report = write_report([out])
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        print(f"write_report, first (makes thumbnails): {wall:.2f} s wall, {cpu:.1f} s CPU (all threads)")
        thumbs = list((out / "thumbs").iterdir())
        size = sum(p.stat().st_size for p in thumbs) / 1e6
        print(f"thumbnails: {len(thumbs)}, {size:.1f} MB, {cpu / len(thumbs) * 1000:.1f} ms CPU each")
        t = time.perf_counter()
        write_report([out])
        print(f"write_report, second (thumbnails reused): {time.perf_counter() - t:.2f} s")
        print(f"report.html: {report.stat().st_size / 1e6:.2f} MB")
        exe = shutil.which("chromium")
        if args.no_browser or exe is None or importlib.util.find_spec("playwright") is None:
            print("browser: skipped (--no-browser, or no chromium/playwright)")
        else:
            asyncio.run(browser(report.absolute().as_uri(), exe))


if __name__ == "__main__":
    main(sys.argv[1:])

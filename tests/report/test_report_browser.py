"""The report of a real emulator run, opened in headless Chromium.

Needs Debian's ``chromium`` (``apt-get install chromium``) and Playwright for Python (the test
extra); Playwright drives the system browser through ``executable_path`` and never downloads
one. Skips, saying why, only when either is missing.

Set ``BATCHFLUX_REPORT_SCREENSHOT=/some/file.png`` to keep a copy of the screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image, ImageDraw

from batchflux.api import ApiClient, JobFailed
from batchflux.emulator import DEFAULT_API_KEY, Emulator
from batchflux.ledger import LEDGER_FILENAME, Event, EventType, LedgerWriter
from batchflux.report import write_report

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EVIL = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">"onerror=alert(1) make it gold'
JOBS = [
    ("sunset", "Turn the sky into a warm sunset"),
    ("winter", "Cover the hills in fresh snow"),
    ("neon", "Make it a neon-lit night scene"),
    ("evil", EVIL),
    ("blocked", "nsfw version of this photo"),
    ("watercolour", "Paint it as a soft watercolour"),
    ("blocked-2", "an NSFW poster"),
    ("retro", "Give it a 1970s film look"),
]
FAILED = {"blocked", "blocked-2"}


def chromium_path() -> str | None:
    for candidate in (os.environ.get("BATCHFLUX_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # the tests below skip, saying so
    async_playwright = expect = None


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    if async_playwright is None:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium: apt-get install chromium (or set BATCHFLUX_CHROMIUM)")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            pg = await browser.new_page(viewport={"width": 1360, "height": 900})
            yield pg
        finally:
            await browser.close()


def make_input(path: Path, hue: int) -> Path:
    """A small landscape: sky gradient, a sun, hills, so before/after are easy to tell apart."""
    w, h = 320, 200
    img = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(img)
    for y in range(h):
        t = y / h
        draw.line(
            [(0, y), (w, y)],
            fill=(int(40 + 120 * t + hue) % 256, int(90 + 80 * t), int(200 - 60 * t + hue // 2)),
        )
    draw.ellipse((220, 30, 270, 80), fill=(255, 214, 90))
    draw.polygon(
        [(0, 150), (90, 95), (170, 140), (250, 105), (320, 150), (320, 200), (0, 200)], fill=(40, 110, 60)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


async def emulator_run(emu: Emulator, root: Path) -> Path:
    """One run against the emulator through the real API client, recorded in the ledger event by
    event as the engine does: intent before the POST, submitted right after, then state, result,
    downloaded — or failed with the server's reason."""
    out = root / "out"
    inputs = [make_input(root / "photos" / f"{job_id}.png", 37 * i) for i, (job_id, _) in enumerate(JOBS)]
    async with aiohttp.ClientSession() as session:
        client = ApiClient(session, api_key=DEFAULT_API_KEY, base_url=emu.base_url)
        with LedgerWriter(out / LEDGER_FILENAME) as ledger:
            started = time.time()
            ledger.append(
                Event(
                    EventType.RUN_STARTED,
                    data={"run_id": "browser", "manifest": str(root / "photos.yaml"), "jobs": len(JOBS)},
                )
            )

            async def one(job_id: str, prompt: str, src: Path) -> None:
                params = {"prompt": prompt, "input_image": str(src), "aspect_ratio": "match_input_image"}
                params |= {"output_format": "png", "safety_tolerance": 2}
                hosted = await client.upload(data_uri(src))
                ledger.append(
                    Event(
                        EventType.SUBMIT_INTENT,
                        job_id,
                        {"fingerprint": job_id, "model": "flux-kontext-max", "params": params,
                         "input": str(src), "output": f"{job_id}.png", "attempt": 1},
                    )
                )  # fmt: skip
                sub = await client.submit("flux-kontext-max", {**params, "input_image": hosted})
                ledger.append(
                    Event(
                        EventType.SUBMITTED,
                        job_id,
                        {"request_id": sub.request_id, "status_url": sub.status_url,
                         "response_url": sub.response_url, "submitted_at": time.time()},
                    )
                )  # fmt: skip
                try:
                    while (status := await client.status(sub.status_url)).status != "COMPLETED":
                        ledger.append(
                            Event(
                                EventType.STATE,
                                job_id,
                                {"request_id": sub.request_id, "status": status.status},
                            )
                        )
                        await asyncio.sleep(0.05)  # the poll cadence, as the engine's short cadence
                    result = await client.result(sub.response_url)
                except JobFailed as exc:
                    ledger.append(
                        Event(
                            EventType.FAILED,
                            job_id,
                            {"request_id": sub.request_id, "cause": exc.cause, "error": exc.error,
                             "http_status": exc.http_status},
                        )
                    )  # fmt: skip
                    return
                assert result.output is not None
                ledger.append(
                    Event(
                        EventType.RESULT,
                        job_id,
                        {"request_id": sub.request_id, "output_url": result.output, "metrics": result.metrics,
                         "completed_at": time.time()},
                    )
                )  # fmt: skip
                got = await client.download(result.output, out / f"{job_id}.png", output_format="png")
                ledger.append(
                    Event(
                        EventType.DOWNLOADED,
                        job_id,
                        {"request_id": sub.request_id, "path": f"{job_id}.png", "size": got.size,
                         "sha256": got.sha256},
                    )
                )  # fmt: skip

            async with asyncio.TaskGroup() as tg:
                for (job_id, prompt), src in zip(JOBS, inputs, strict=True):
                    tg.create_task(one(job_id, prompt, src))
            ledger.append(
                Event(
                    EventType.RUN_FINISHED,
                    data={"run_id": "browser", "exit_code": 1, "wall_s": time.time() - started},
                )
            )
    return out


async def visible_cards(pg: Any) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = await pg.eval_on_selector_all(
        "#grid .card", "cards => cards.map(c => [c.dataset.key, c.dataset.status])"
    )
    return [tuple(p) for p in pairs]  # type: ignore[misc]


async def test_report_of_an_emulator_run_in_chromium(
    page: Any, make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    async with make_emulator(latency_mean=0.15, latency_sd=0.05, moderation_words=("nsfw",)) as emu:
        out = await emulator_run(emu, tmp_path)
        media_with_key = emu.stats()["media_with_key"]
    assert media_with_key == 0
    report = write_report([out])

    dialogs: list[str] = []
    errors: list[str] = []
    requests: list[str] = []

    async def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", dismiss)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda req: requests.append(req.url))

    await page.goto(report.absolute().as_uri())
    await page.wait_for_selector("#grid .card")
    cards = await visible_cards(page)
    assert len(cards) == len(JOBS)
    assert {k for k, s in cards if s == "failed"} == FAILED
    assert await page.text_content("#count") == f"{len(JOBS)} jobs"

    # Every thumbnail resolves (relative links into OUT/thumbs and to the inputs), all from disk.
    await page.wait_for_function(
        "() => { const i = Array.from(document.querySelectorAll('#grid img'));"
        " return i.length > 0 && i.every(x => x.complete && x.naturalWidth > 0); }",
        timeout=10_000,
    )
    images = await page.eval_on_selector_all("#grid img", "i => i.length")
    assert images == 2 * len(JOBS) - len(FAILED)  # a failed job has its input but no output
    assert all(url.startswith("file://") for url in requests), [
        u for u in requests if not u.startswith("file")
    ]

    # The prompt with markup is text: shown exactly, nothing from it ran.
    evil_text = await page.text_content('.card[data-key="evil"] .prompt')
    assert evil_text == EVIL
    assert await page.evaluate("typeof window.__pwned") == "undefined"
    assert await page.eval_on_selector_all('#grid img[src="x"]', "i => i.length") == 0
    blocked_error = await page.text_content('.card[data-key="blocked"] .error')
    assert blocked_error is not None
    assert "moderation" in blocked_error
    assert "blocked" in blocked_error.lower()

    # Status filter: failed only, then done only, then all again.
    await page.click('#chips .chip[data-status="failed"]')
    assert {k for k, _ in await visible_cards(page)} == FAILED
    assert await page.text_content("#count") == f"{len(FAILED)} of {len(JOBS)} jobs"
    await page.click('#chips .chip[data-status="done"]')
    done = await visible_cards(page)
    assert {s for _, s in done} == {"done"}
    assert len(done) == len(JOBS) - len(FAILED)
    await page.click('#chips .chip[data-status=""]')
    assert len(await visible_cards(page)) == len(JOBS)

    # Search by prompt words and by id (large reports debounce typing: wait for the result).
    cards_loc = page.locator("#grid .card")
    await page.fill("#search", "SNOW")
    await expect(cards_loc).to_have_count(1)
    assert [k for k, _ in await visible_cards(page)] == ["winter"]
    await page.fill("#search", "blocked")
    await expect(cards_loc).to_have_count(len(FAILED))
    assert {k for k, _ in await visible_cards(page)} == FAILED
    await page.fill("#search", "no such thing")
    await expect(cards_loc).to_have_count(0)
    await expect(page.locator("#empty")).to_be_visible()
    await page.fill("#search", "")
    await expect(cards_loc).to_have_count(len(JOBS))

    # Click a thumbnail: the full-size image opens over the page; Escape closes it.
    await page.click('.card[data-key="sunset"] .side:nth-child(2) a')
    assert await page.is_visible("#lightbox")
    assert await page.get_attribute("#lb-img", "src") == "./sunset.png"
    await page.wait_for_function("() => document.getElementById('lb-img').naturalWidth > 0")
    await page.keyboard.press("Escape")
    assert await page.is_hidden("#lightbox")

    await page.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")
    shot = tmp_path / "report.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if keep := os.environ.get("BATCHFLUX_REPORT_SCREENSHOT"):
        shutil.copyfile(shot, keep)
    assert dialogs == []
    assert errors == []


async def test_pages_of_two_hundred_and_filters_across_pages(
    page: Any, fabricate: Callable[..., Path], spec: Any, tmp_path: Path
) -> None:
    # Remote inputs and no outputs: 450 cards without writing 900 images.
    specs = [
        spec(f"j{i:03d}", prompt=f"edit {i}", outcome="failed" if i % 3 == 0 else "in_flight",
             input_url=f"https://example.com/{i}.png")
        for i in range(450)
    ]  # fmt: skip
    report = write_report([fabricate(tmp_path / "out", specs)])
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    await page.goto(report.absolute().as_uri())
    await page.wait_for_selector("#grid .card")
    assert len(await visible_cards(page)) == 200
    assert await page.text_content("#pager-top .pginfo") == "page 1 of 3"
    await page.click("#pager-bottom button:has-text('next')")
    await page.click("#pager-bottom button:has-text('next')")
    last = await visible_cards(page)
    assert last[0][0] == "j400"
    assert len(last) == 50
    await page.click('#chips .chip[data-status="failed"]')
    assert len(await visible_cards(page)) == 150, "a filter starts again at its first page"
    assert await page.text_content("#pager-top") == ""
    assert requests == [report.absolute().as_uri()], "remote inputs are linked, never fetched"

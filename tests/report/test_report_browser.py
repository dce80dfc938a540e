"""The report of a real emulator run (``run_batch`` against the emulator), opened in headless Chromium.

The browser comes from ``tests/browserkit.py`` (Debian's Chromium through Playwright; skips, saying
why, when either is missing, unless ``BATCHFLUX_REQUIRE_BROWSER=1``).
Set ``BATCHFLUX_REPORT_SCREENSHOT=/some/file.png`` to keep a copy of the screenshot.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from browserkit import CHROMIUM_ARGS, EVIL, browser_ready, expect, make_input

from batchflux import run_batch
from batchflux.emulator import DEFAULT_API_KEY, Emulator
from batchflux.report import REPORT_FILENAME, write_report
from batchflux.run.exitcodes import ExitCode

pytestmark = pytest.mark.browser

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


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    playwright, exe = browser_ready()
    async with playwright() as pw:
        browser = await pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            pg = await browser.new_page(viewport={"width": 1360, "height": 900})
            yield pg
        finally:
            await browser.close()


def write_manifest(root: Path) -> Path:
    jobs = []
    for i, (job_id, prompt) in enumerate(JOBS):
        make_input(root / "photos" / f"{job_id}.png", 37 * i)
        jobs.append({"id": job_id, "prompt": prompt, "input_image": f"photos/{job_id}.png"})
    manifest = root / "photos.yaml"
    defaults = {"aspect_ratio": "match_input_image", "output_format": "png"}
    manifest.write_text(yaml.safe_dump({"model": "flux-kontext-max", "defaults": defaults, "jobs": jobs}))
    return manifest


async def emulator_run(emu: Emulator, root: Path) -> Path:
    """A real run: a YAML manifest of local photos through ``run_batch`` (the engine, the API client,
    uploads, downloads, the ledger) against the emulator. The run writes ``report.html`` itself."""
    manifest = write_manifest(root)
    result = await run_batch(manifest, api_key=DEFAULT_API_KEY, out_dir=root / "out", base_url=emu.base_url)
    assert result.exit_code == ExitCode.JOBS_FAILED, result.message
    return result.out_dir


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
    report = out / REPORT_FILENAME
    assert report.is_file(), "every run writes its report at the end"

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

    # Click a thumbnail: before and after open at full size over the page; Escape closes them.
    await page.click('.card[data-key="sunset"] .side:nth-child(2) a')
    assert await page.is_visible("#lightbox")
    assert await page.get_attribute("#lb-after img", "src") == "./sunset.png"
    assert await page.get_attribute("#lb-before img", "src") == "../photos/sunset.png"
    await page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#lightbox img')).every(i => i.naturalWidth > 0)"
    )
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

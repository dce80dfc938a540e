"""The review page of a real emulator run, driven in headless Chromium by its keyboard.

One browser for the module (a fresh context per test), a review server over a fresh copy of the
run per test (``review``). Set ``BATCHFLUX_REVIEW_SCREENSHOT=/some/file.png`` to keep the
screenshot the how-to shows.
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from browserkit import CHROMIUM_ARGS, EVIL, browser_ready, expect
from PIL import Image
from reviewkit import DONE, FAILED, JOBS, Served, emulator_config, run_once

from batchflux import run_batch
from batchflux.emulator import Emulator
from batchflux.ledger import replay_file
from batchflux.ledger.reviews import merge_reviews
from batchflux.run.exitcodes import ExitCode
from batchflux.run.export import prepare_export

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Any]:
    playwright, exe = browser_ready()
    async with playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Any) -> AsyncIterator[Any]:
    ctx = await browser.new_context(viewport={"width": 1360, "height": 900})
    errors: list[str] = []
    ctx.on("weberror", lambda err: errors.append(str(err.error)))
    try:
        yield ctx
    finally:
        await ctx.close()
    assert errors == []


async def open_page(context: Any, url: str) -> Any:
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    page.errors = errors
    await page.goto(url)
    await page.wait_for_selector("#grid .card.sel")
    return page


async def selected(page: Any) -> str:
    key: str = await page.get_attribute("#grid .card.sel", "data-key")
    return key


def card(page: Any, key: str) -> Any:
    return page.locator(f'.card[data-key="{key}"]')


def verdicts_on_disk(out: Path) -> dict[str, tuple[str | None, str]]:
    replay = replay_file(out / "ledger.jsonl")
    merge_reviews(replay, out)
    return {
        job: (rec.verdict.verdict, rec.verdict.note)
        for job, rec in replay.jobs.items()
        if rec.verdict is not None
    }


async def screenshot(page: Any, tmp_path: Path) -> None:
    """The page as the how-to shows it; kept (as a small 256-colour PNG) when
    BATCHFLUX_REVIEW_SCREENSHOT names a file."""
    await page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "review.png"
    await page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if keep := os.environ.get("BATCHFLUX_REVIEW_SCREENSHOT"):
        with Image.open(shot) as img:
            img.convert("RGB").quantize(colors=256).save(keep, optimize=True)


async def test_keyboard_verdicts_show_at_once_are_saved_at_once_and_survive_a_reload(
    context: Any, review: Served
) -> None:
    page = await open_page(context, review.url)
    keys = await page.eval_on_selector_all("#grid .card", "cs => cs.map(c => c.dataset.key)")
    assert keys == [j for j, _ in JOBS], "manifest order"
    assert await selected(page) == "sunset", "the first card is selected when the page opens"

    await page.keyboard.press("a")
    await expect(card(page, "sunset").locator(".verdict")).to_have_text("approved")
    await page.keyboard.press("j")
    assert await selected(page) == "winter"
    await page.keyboard.press("r")
    await expect(card(page, "winter").locator(".vbadge")).to_have_text("rejected")
    await page.keyboard.press("n")
    await page.keyboard.type("the hills lost their shape")
    await page.keyboard.press("Enter")
    await expect(card(page, "winter").locator(".vnote")).to_have_text("the hills lost their shape")
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("ArrowDown")
    assert await selected(page) == "evil"
    await page.keyboard.press("r")
    await page.keyboard.press("k")
    await page.keyboard.press("ArrowUp")
    assert await selected(page) == "winter"
    await expect(card(page, "evil").locator(".vbadge")).to_have_text("rejected")

    # Saved at once: the review log has them, as the ledger's readers see them.
    want = {"sunset": ("approved", ""), "winter": ("rejected", "the hills lost their shape"),
            "evil": ("rejected", "")}  # fmt: skip
    for _ in range(100):
        if verdicts_on_disk(review.out) == want:
            break
        await page.wait_for_timeout(50)
    assert verdicts_on_disk(review.out) == want

    # u clears; a reload shows what was saved, nothing more.
    await page.keyboard.press("j")
    await page.keyboard.press("j")
    await page.keyboard.press("u")
    await expect(card(page, "evil").locator(".verdict")).to_have_count(0)
    await page.wait_for_function("() => !document.querySelector('#problem:not([hidden])')")
    for _ in range(100):
        if "evil" not in verdicts_on_disk(review.out):
            break
        await page.wait_for_timeout(50)
    await page.reload()
    await page.wait_for_selector("#grid .card.sel")
    await expect(card(page, "sunset").locator(".vbadge")).to_have_text("approved")
    await expect(card(page, "winter").locator(".vnote")).to_have_text("the hills lost their shape")
    await expect(card(page, "evil").locator(".verdict")).to_have_count(0)
    assert page.errors == []


async def test_keys_help_full_size_and_a_failed_job_with_its_reason(context: Any, review: Served) -> None:
    page = await open_page(context, review.url)
    await page.keyboard.press("?")
    await expect(page.locator("#help")).to_be_visible()
    await expect(page.locator("#help")).to_contain_text("approve")
    await page.keyboard.press("Escape")
    await expect(page.locator("#help")).to_be_hidden()

    # Thumbnails on the cards; the full-size images only when asked for.
    await page.wait_for_function(
        "() => { const i = Array.from(document.querySelectorAll('#grid img'));"
        " return i.length > 0 && i.every(x => x.complete && x.naturalWidth > 0); }"
    )
    srcs = await page.eval_on_selector_all("#grid img", "i => i.map(x => x.getAttribute('src'))")
    assert len(srcs) == 2 * len(JOBS) - len(FAILED)
    assert all("w=it" in s or "w=ot" in s for s in srcs)
    await page.keyboard.press("f")
    await expect(page.locator("#lightbox")).to_be_visible()
    await page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#lightbox img')).every(i => i.naturalWidth > 0)"
    )
    assert "w=oh" in await page.get_attribute("#lb-after img", "src")
    await page.keyboard.press("Escape")
    await expect(page.locator("#lightbox")).to_be_hidden()

    error = await page.text_content('.card[data-key="blocked"] .error')
    assert error is not None
    assert "moderation" in error
    # A failed job has no image to approve: the page says so and records nothing.
    for _ in range(4):
        await page.keyboard.press("j")
    assert await selected(page) == "blocked"
    await page.keyboard.press("a")
    await expect(page.locator("#problem")).to_contain_text("no image to review")
    assert verdicts_on_disk(review.out) == {}
    assert page.errors == []


async def test_a_second_tab_sees_a_verdict_without_a_reload(context: Any, review: Served) -> None:
    first = await open_page(context, review.url)
    second = await open_page(context, review.url)
    await first.keyboard.press("r")
    await expect(card(second, "sunset").locator(".vbadge")).to_have_text("rejected", timeout=8000)
    await second.keyboard.press("a")
    await expect(card(first, "sunset").locator(".vbadge")).to_have_text("approved", timeout=8000)
    assert verdicts_on_disk(review.out) == {"sunset": ("approved", "")}


async def test_filters_and_search(context: Any, review: Served) -> None:
    page = await open_page(context, review.url)
    await page.keyboard.press("a")  # sunset
    await page.keyboard.press("j")
    await page.keyboard.press("r")  # winter
    await expect(page.locator('[data-count="approved"]')).to_have_text("1")
    await expect(page.locator('[data-count="rejected"]')).to_have_text("1")
    await expect(page.locator('[data-count="unreviewed"]')).to_have_text(str(len(DONE) - 2))
    cards = page.locator("#grid .card")

    async def shown() -> list[str]:
        keys: list[str] = await page.eval_on_selector_all("#grid .card", "cs => cs.map(c => c.dataset.key)")
        return keys

    await page.click('#filters .chip[data-filter="rejected"]')
    await expect(cards).to_have_count(1)
    assert await shown() == ["winter"]
    assert await selected(page) == "winter"
    await page.click('#filters .chip[data-filter="approved"]')
    assert await shown() == ["sunset"]
    await page.click('#filters .chip[data-filter="unreviewed"]')
    assert await shown() == [j for j in DONE if j not in ("sunset", "winter")]
    await page.click('#filters .chip[data-filter="failed"]')
    assert await shown() == sorted(FAILED)
    await page.click('#filters .chip[data-filter="all"]')
    await expect(cards).to_have_count(len(JOBS))

    await page.fill("#search", "SNOW")
    await expect(cards).to_have_count(1)
    assert await shown() == ["winter"]
    await page.keyboard.press("Escape")  # leaves the search box: the keys work again
    await page.keyboard.press("a")
    await expect(card(page, "winter").locator(".vbadge")).to_have_text("approved")
    await page.fill("#search", "")
    await expect(cards).to_have_count(len(JOBS))
    assert page.errors == []


async def test_a_prompt_carrying_markup_stays_text(context: Any, review: Served, tmp_path: Path) -> None:
    page = await open_page(context, review.url)
    assert await page.text_content('.card[data-key="evil"] .prompt') == EVIL
    assert await page.evaluate("typeof window.__pwned") == "undefined"
    assert await page.eval_on_selector_all('#grid img[src="x"]', "i => i.length") == 0
    # A note with markup is text too, here and after a reload.
    for _ in range(3):
        await page.keyboard.press("j")
    await page.keyboard.press("r")
    await page.keyboard.press("n")
    await page.keyboard.type(EVIL)
    await page.keyboard.press("Enter")
    await expect(card(page, "evil").locator(".vnote")).to_have_text(EVIL)
    await page.reload()
    await page.wait_for_selector("#grid .card.sel")
    await expect(card(page, "evil").locator(".vnote")).to_have_text(EVIL)
    assert await page.evaluate("typeof window.__pwned") == "undefined"
    assert page.errors == []


async def test_without_the_token_every_path_answers_403(context: Any, review: Served) -> None:
    page = await context.new_page()
    for path in ("/", "/?token=wrong", "/img?k=sunset&w=ot", "/api/verdicts", "/nothing"):
        answer = await page.goto(review.base + path)
        assert answer is not None
        assert answer.status == 403, path
    assert "403" in (await page.text_content("body") or "")


async def test_reject_two_approve_one_then_redo_the_rejected(
    context: Any, review: Served, batch: Path, tmp_path: Path
) -> None:
    """The loop the review closes: verdicts through the page, then ``run --redo-rejected``: exactly
    the two rejected jobs submitted again, with new seeds; their images kept; export shows it."""
    page = await open_page(context, review.url)
    await page.keyboard.press("r")  # sunset
    await page.keyboard.press("j")
    await page.keyboard.press("a")  # winter
    await page.keyboard.press("j")
    await page.keyboard.press("r")  # neon
    await page.keyboard.press("n")
    await page.keyboard.type("too dark")
    await page.keyboard.press("Enter")
    await expect(card(page, "neon").locator(".vnote")).to_have_text("too dark")
    want = {"sunset": ("rejected", ""), "winter": ("approved", ""), "neon": ("rejected", "too dark")}
    for _ in range(100):
        if verdicts_on_disk(review.out) == want:
            break
        await page.wait_for_timeout(50)
    assert verdicts_on_disk(review.out) == want
    await screenshot(page, tmp_path)
    before = {j: (review.out / f"{j}.png").read_bytes() for j in ("sunset", "neon")}
    manifest = batch.parent / "photos.yaml"

    rejects = tmp_path / "rejects.csv"
    exported = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "batchflux", "export", str(review.out), "--status", "rejected",
        "--as-manifest", "-o", str(rejects), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(exported.communicate(), 60)
    assert exported.returncode == 0, err
    with rejects.open(encoding="utf-8-sig") as fh:
        assert [row["id"] for row in csv.DictReader(fh)] == ["sunset", "neon"]

    dry = await run_batch(manifest, api_key="unused", out_dir=review.out, redo_rejected=True, dry_run=True)
    assert dry.exit_code == ExitCode.OK
    assert "would submit 2 (2 rejected in review, redone with new seeds)" in dry.message
    assert "estimated cost $0.20" in dry.message

    async with Emulator(emulator_config()) as emu:
        result = await run_once(batch.parent, emu, out_dir=review.out, redo_rejected=True)
        stats = emu.stats()
    assert stats["submits"] == 2, "exactly the two rejected jobs"
    assert result.summary is not None
    assert result.summary.redone == 2
    assert result.summary.reviews == {"approved": 1, "rejected": 0, "unreviewed": len(DONE) - 1}

    replay = replay_file(review.out / "ledger.jsonl")
    for job in ("sunset", "neon"):
        rec = replay.jobs[job]
        assert rec.redo == 1
        assert rec.params["seed"] not in (7, None), "a new seed"
        kept = review.out / f"{job}.rejected-1.png"
        assert kept.read_bytes() == before[job], "the rejected image, kept as it was"
        assert rec.set_aside == [f"{job}.rejected-1.png"]
    assert replay.jobs["sunset"].params["seed"] != replay.jobs["neon"].params["seed"]

    export = prepare_export([review.out])
    rows = {row["id"]: row for row in export.rows()}
    assert (rows["winter"]["review"], rows["winter"]["seed"]) == ("approved", 7), "the approval is kept"
    for job in ("sunset", "neon"):
        row = rows[job]
        assert row["review"] is None, "a redone job's verdict is gone with its image"
        assert row["redo"] == 1
        assert row["seed"] == replay.jobs[job].params["seed"]
        assert row["rejected_images"] == [f"{job}.rejected-1.png"]
    rejected = [r.id for r in export.manifest_rows(frozenset({"rejected"}))]
    assert rejected == []
    assert [r.id for r in export.manifest_rows(frozenset({"approved"}))] == ["winter"]

    # A plain run afterwards redoes nothing: the redone images are the jobs' images now.
    async with Emulator(emulator_config()) as emu:
        await run_once(batch.parent, emu, out_dir=review.out)
        assert emu.stats()["submits"] == 0

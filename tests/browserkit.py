"""Headless Chromium for the page tests (the report, the review), through Playwright.

Needs Debian's ``chromium`` (``apt-get install chromium``) and Playwright for Python (the test
extra); Playwright drives the system browser through ``executable_path`` and never downloads one.
:func:`missing` skips, saying why, only when either is missing — unless
``BATCHFLUX_REQUIRE_BROWSER=1`` (as CI sets), which fails instead.
Imported by name: pytest puts ``tests/`` on sys.path for its conftest.py.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, NoReturn

import pytest
from PIL import Image, ImageDraw

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
# A prompt that would run script if it ever became markup.
EVIL = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">"onerror=alert(1) make it gold'

try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # the browser tests skip, saying so
    async_playwright = expect = None


def chromium_path() -> str | None:
    for candidate in (os.environ.get("BATCHFLUX_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def missing(reason: str) -> NoReturn:
    """Skip, saying why; CI sets BATCHFLUX_REQUIRE_BROWSER=1 so that a lost install fails loudly."""
    if os.environ.get("BATCHFLUX_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and BATCHFLUX_REQUIRE_BROWSER=1")
    pytest.skip(reason)


def browser_ready() -> tuple[Any, str]:
    """Playwright's entry point and the Chromium to drive, or skip (or fail) saying what is missing."""
    if async_playwright is None:
        missing("playwright is not installed (pip install -e '.[test]')")
    exe = chromium_path()
    if exe is None:
        missing("no Chromium: apt-get install chromium (or set BATCHFLUX_CHROMIUM)")
    return async_playwright, exe


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

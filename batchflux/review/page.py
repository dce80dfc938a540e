"""The review page as one HTML string (pure): the report's look and cards, and the review's keys.

The same safety rules as the report (:mod:`batchflux.report.render`): values in markup are
escaped, the cards are inert JSON built into the page with ``textContent`` only, and a strict
Content-Security-Policy lets only this page's nonce-tagged style and script run, load images
from this server only and talk to nothing but it. The page carries the session's token (its
URLs need it) and nothing else secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from batchflux import __version__
from batchflux.report.render import LIGHTBOX, asset, embed_json

FILTERS = (
    ("all", "all"),
    ("unreviewed", "unreviewed"),
    ("approved", "approved"),
    ("rejected", "rejected"),
    ("failed", "failed"),
)
KEYS = (
    ("j  ↓  →", "next job"),
    ("k  ↑  ←", "previous job"),
    ("a", "approve"),
    ("r", "reject"),
    ("u", "clear the verdict"),
    ("n", "write a note (Enter saves, Esc leaves)"),
    ("f  Enter", "full size (Esc closes)"),
    ("/", "search"),
    ("?", "these keys"),
)


def csp(nonce: str) -> str:
    n = escape(nonce, quote=True)
    return (
        "default-src 'none'; img-src 'self'; connect-src 'self'; "
        f"style-src 'nonce-{n}'; script-src 'nonce-{n}'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


def render_review(
    *,
    title: str,
    out_dirs: Sequence[Path],
    cards: Sequence[Mapping[str, Any]],
    counts: Mapping[str, int],
    token: str,
    version: int,
    nonce: str,
) -> str:
    css = asset("report.css") + "\n" + _own("review.css")
    js = asset("cards.js") + "\n" + _own("review.js")
    n = escape(nonce, quote=True)
    heading = f"Review — {title}" if title else "Review"
    dirs = ", ".join(str(d) for d in out_dirs)
    chips = "".join(
        f'<button type="button" class="chip f-{value}" data-filter="{value}" '
        f'aria-pressed="{"true" if value == "all" else "false"}">{escape(label)} '
        f'<span class="n" data-count="{value}">{int(counts.get(value, 0))}</span></button>'
        for value, label in FILTERS
    )
    keys = "".join(f"<dt><kbd>{escape(k)}</kbd></dt><dd>{escape(what)}</dd>" for k, what in KEYS)
    return "".join(
        [
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            '<meta name="referrer" content="no-referrer">\n',
            f"<title>{escape(heading)}</title>\n",
            f'<link rel="icon" href="./favicon.svg?token={escape(token, quote=True)}">\n',
            f'<style nonce="{n}">{css}</style>\n</head>\n<body>\n',
            '<header class="top"><div class="wrap">',
            f"<h1>{escape(heading)}</h1>",
            f'<p class="sub">{escape(dirs)} · batchflux {escape(__version__)} · '
            "verdicts are saved as you give them · press ? for the keys</p>",
            '</div></header>\n<div class="wrap">\n',
            '<p id="stale" class="banner" hidden>A run has changed these directories since the page '
            'was loaded: <a href="" id="reload">reload</a> to see the new images.</p>\n',
            '<p id="problem" class="banner bad" hidden role="alert"></p>\n',
            '<nav class="controls" aria-label="filter">',
            f'<div class="chips" id="filters">{chips}</div>',
            '<input id="search" type="search" placeholder="search prompt, job id or note" autocomplete="off"'
            ' aria-label="search prompt, job id or note">',
            '<span id="count" class="count" aria-live="polite"></span>',
            '<button type="button" id="keys" class="pg" aria-haspopup="dialog">? keys</button>',
            '<div class="pager" id="pager-top"></div>',
            "</nav>\n",
            '<p id="empty" class="empty" hidden>No job matches.</p>\n',
            '<main id="grid" class="grid review"></main>\n',
            '<nav class="pager" id="pager-bottom" aria-label="pages"></nav>\n',
            '<noscript><p class="empty">The review needs JavaScript.</p></noscript>\n',
            "</div>\n",
            '<div id="help" class="help" hidden role="dialog" aria-modal="true" aria-label="keys">'
            f'<div class="help-box"><h2>Keys</h2><dl>{keys}</dl>'
            '<p class="n">Verdicts go to reviews.jsonl beside the ledger, at once.</p></div></div>\n',
            LIGHTBOX,
            f'<script type="application/json" id="jobs-data" data-token="{escape(token, quote=True)}" '
            f'data-version="{int(version)}">',
            embed_json(list(cards)),
            "</script>\n",
            f'<script nonce="{n}">{js}</script>\n</body></html>\n',
        ]
    )


def _own(name: str) -> str:
    text = resources.files("batchflux.review").joinpath(name).read_text(encoding="utf-8")
    if "</" in text or "<!--" in text:  # an asset must never be able to end its own element
        raise ValueError(f"{name} contains '</' or '<!--'")
    return text

"""The report page as one HTML string (pure).

Safety rules, in one place:
- every value from the manifest, the ledger or the server that lands in markup goes through
  :func:`html.escape` (``quote=True``: also safe inside attributes);
- the job cards are data, not markup: one JSON array in a ``<script type="application/json">``,
  with ``<``, ``>``, ``&`` and U+2028/9 escaped (:func:`embed_json`), so neither ``</script>``
  nor ``<!--`` can end the block; the page's script builds cards with ``textContent`` and
  ``setAttribute`` only;
- links are made by the report itself: relative paths percent-encoded (no ``javascript:``
  can form), remote inputs only when ``http(s)``, and never loaded, only linked;
- a Content-Security-Policy allows only this page's own nonce-tagged style and script, images
  from the report's own files, and no network at all: a script that got in anyway would not run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from importlib import resources
from typing import Any

from batchflux import __version__
from batchflux.report.figures import STATUS_ORDER, Figures
from batchflux.report.model import ReportModel
from batchflux.report.rows import JobRow
from batchflux.report.timeline import format_duration

PAGE_SIZE = 200
# The full-size before/after overlay; cards.js's lightbox() drives it (the report and the review).
LIGHTBOX = (
    '<div id="lightbox" class="lightbox" hidden role="dialog" aria-modal="true" aria-label="images">'
    '<div class="lb-pair"><figure id="lb-before"><img alt=""><figcaption></figcaption></figure>'
    '<figure id="lb-after"><img alt=""><figcaption></figcaption></figure></div>'
    '<p id="lb-title" class="lb-title"></p>'
    '<button type="button" id="lb-close" class="lb-close" aria-label="close">×</button></div>\n'
)


@dataclass(frozen=True, slots=True)
class Links:
    """Where a card's images are, as hrefs relative to the report (already URL-encoded)."""

    input_thumb: str | None = None
    input_full: str | None = None
    output_thumb: str | None = None
    output_full: str | None = None
    output_missing: bool = False  # the ledger says done but the file is not there


def card_data(row: JobRow, links: Links) -> dict[str, Any]:
    """One card as compact JSON for the page's script; empty fields left out."""
    remote = row.input_url if row.input_url and row.input_url.startswith(("http://", "https://")) else None
    data: dict[str, Any] = {
        "k": row.key,
        "id": row.job_id,
        "sh": row.shard,
        "st": row.status,
        "p": row.prompt,
        "pa": [list(kv) for kv in row.params],
        "m": row.model,
        "it": links.input_thumb,
        "ih": links.input_full,
        "iu": remote,
        "ot": links.output_thumb,
        "oh": links.output_full,
        "om": links.output_missing,
        "inf": _round(row.inference_s, 2),
        "sub": _round(row.submitted_s, 1),
        "cmp": _round(row.completed_s, 1),
        "att": row.attempts,
        "dup": row.possible_duplicates,
        "rid": row.request_id,
        "cause": row.cause,
        "err": row.error,
        "http": row.http_status,
        "rv": row.review,
        "rn": row.review_note,
    }
    keep = ("k", "id", "st")
    return {k: v for k, v in data.items() if k in keep or not (v is None or v is False or v == "" or v == [])}


def embed_json(value: object) -> str:
    """JSON that is inert inside a ``<script>`` element (and valid JSON for ``JSON.parse``)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def render_page(
    model: ReportModel,
    cards: Sequence[Mapping[str, Any]],
    *,
    timeline_svg: str,
    nonce: str,
    generated: str,
    page_size: int = PAGE_SIZE,
) -> str:
    css = asset("report.css")
    js = asset("cards.js") + "\n" + asset("report.js")
    n = escape(nonce, quote=True)
    csp = (
        "default-src 'none'; img-src 'self' file:; "
        f"style-src 'nonce-{n}'; script-src 'nonce-{n}'; base-uri 'none'; form-action 'none'"
    )
    title = f"batchflux report — {model.title}" if model.title else "batchflux report"
    dirs = ", ".join(str(d) for d in model.out_dirs)
    f = model.figures
    return "".join(
        [
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n',
            '<meta name="referrer" content="no-referrer">\n',
            f"<title>{escape(title)}</title>\n",
            f'<style nonce="{n}">{css}</style>\n</head>\n<body>\n',
            '<header class="top"><div class="wrap">',
            f"<h1>{escape(title)}</h1>",
            f'<p class="sub">{escape(dirs)} · {f.runs} run{"" if f.runs == 1 else "s"} · '
            f"generated {escape(generated)} by batchflux {escape(__version__)}</p>",
            '</div></header>\n<div class="wrap">\n',
            _stats(f),
            _notes(f),
            f'<section class="panel timeline-box"><h2>Timeline</h2>{timeline_svg}</section>\n',
            _failures(f),
            _controls(f),
            '<p id="empty" class="empty" hidden>No job matches.</p>\n',
            '<main id="grid" class="grid"></main>\n',
            '<nav class="pager" id="pager-bottom" aria-label="pages"></nav>\n',
            '<noscript><p class="empty">The job cards need JavaScript.</p></noscript>\n',
            "</div>\n",
            LIGHTBOX,
            f'<script type="application/json" id="jobs-data" data-page-size="{int(page_size)}">',
            embed_json(list(cards)),
            "</script>\n",
            f'<script nonce="{n}">{js}</script>\n</body></html>\n',
        ]
    )


def _stats(f: Figures) -> str:
    tiles: list[tuple[str, str, str, str]] = [("jobs", str(f.total), "", "")]
    for status, count in f.counts:
        tiles.append((status, str(count), f"st-{_slug(status)}", ""))
    for verdict, count in f.reviews:
        note = "of the images: batchflux review" if verdict == "unreviewed" else "in review"
        tiles.append((verdict, str(count), f"rv-{verdict}", note))
    tiles.append(("wall time", format_duration(f.wall_s) if f.wall_s is not None else "—", "", ""))
    peak = str(f.peak_submits_60s)
    if f.rpm:
        peak += f" / {f.rpm:g}"
    rate = f"{f.submit_rate_per_min:.1f} submits/min on average" if f.submit_rate_per_min else ""
    tiles.append(("peak submits per 60 s", peak, "", rate))
    if f.learned_rate:
        tiles.append(
            ("quota learned", f.learned_rate, "", f"from the 429s; --rate {f.learned_rate} starts at it")
        )
    unknown = "not recorded: no summary.json"
    last = "last run, " if f.runs > 1 else ""
    calls_note = last + " · ".join(f"{n:,} {kind}" for kind, n in f.api_calls_by_kind)
    tiles.append(("API calls", _opt(f.api_calls), "", calls_note if f.api_calls is not None else unknown))
    limited_note = unknown if f.rate_limited is None else f"{last}{f.retries or 0:,} calls retried"
    tiles.append(("429 rate limited", _opt(f.rate_limited), "warn" if f.rate_limited else "", limited_note))
    spend_note = "billed requests in the ledger"
    if f.spend_summary_usd is not None and abs(f.spend_summary_usd - f.spend_usd) >= 0.005:
        spend_note += f"; summary.json says ${f.spend_summary_usd:,.2f} for the last run's submits"
    tiles.append(("est. spend", f"${f.spend_usd:,.2f}", "", spend_note))
    if f.actual_spend_requests:
        n = f.actual_spend_requests
        actual_note = (
            f"{n} request{'s' if n != 1 else ''} priced by the request history; "
            "batchflux status --spend asks it about every one"
        )
        tiles.append(("actual spend known", f"${f.actual_spend_usd:,.2f}", "", actual_note))
    tiles.append(
        (
            "possible duplicate charges",
            str(f.possible_duplicates),
            "warn" if f.possible_duplicates else "",
            "submits whose answer never arrived",
        )
    )
    if f.inference_median_s is not None:
        p95 = f"p95 {f.inference_p95_s:.1f} s" if f.inference_p95_s is not None else ""
        tiles.append(("median inference", f"{f.inference_median_s:.1f} s", "", p95))
    if f.turnaround_median_s is not None:
        tiles.append(("median turnaround", f"{f.turnaround_median_s:.1f} s", "", "submit → result"))
    out = ['<section class="stats">']
    for label, value, cls, note in tiles:
        out.append(
            f'<div class="tile {escape(cls, quote=True)}"><div class="v">{escape(value)}</div>'
            f'<div class="l">{escape(label)}</div>'
            + (f'<div class="n">{escape(note)}</div>' if note else "")
            + "</div>"
        )
    out.append("</section>\n")
    return "".join(out)


def _notes(f: Figures) -> str:
    notes = [
        f"the last run stopped early ({reason}); run the same command again to resume" for reason in f.stopped
    ]
    notes += f.notes
    if not notes:
        return ""
    items = "".join(f"<li>{escape(note)}</li>" for note in notes)
    return f'<section class="panel notes"><ul>{items}</ul></section>\n'


def _failures(f: Figures) -> str:
    if not f.failures_by_cause:
        return ""
    items = "".join(
        f'<li><span class="cause">{escape(cause)}</span> <span class="num">{count}</span></li>'
        for cause, count in f.failures_by_cause
    )
    return f'<section class="panel failures"><h2>Failures by cause</h2><ul>{items}</ul></section>\n'


def _controls(f: Figures) -> str:
    present = dict(f.counts)
    chips = [_chip("", f"all ({f.total})", pressed=True)]
    chips += [_chip(status, f"{status} ({present[status]})") for status in STATUS_ORDER if status in present]
    return (
        '<nav class="controls" aria-label="filter">'
        f'<div class="chips" id="chips">{"".join(chips)}</div>'
        '<input id="search" type="search" placeholder="search prompt or job id" autocomplete="off"'
        ' aria-label="search prompt or job id">'
        '<span id="count" class="count" aria-live="polite"></span>'
        '<div class="pager" id="pager-top"></div>'
        "</nav>\n"
    )


def _chip(status: str, label: str, *, pressed: bool = False) -> str:
    cls = f"chip st-{_slug(status)}" if status else "chip"
    return (
        f'<button type="button" class="{escape(cls, quote=True)}" data-status="{escape(status, quote=True)}"'
        f' aria-pressed="{str(pressed).lower()}">{escape(label)}</button>'
    )


def asset(name: str) -> str:
    """One of the report's files (CSS, script), checked to be safe to inline in its element."""
    text = resources.files("batchflux.report").joinpath(name).read_text(encoding="utf-8")
    if "</" in text or "<!--" in text:  # an asset must never be able to end its own element
        raise ValueError(f"{name} contains '</' or '<!--'")
    return text


def _slug(status: str) -> str:
    return status.replace(" ", "-")


def _opt(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)

"""The run as an inline SVG: submissions and completions over time (pure).

Two cumulative step lines — jobs submitted, results received — so the gap between them is the
work in flight and their slopes are the submit rate and the throughput. Failures are ticks on
the time axis, run starts (resumes) dashed verticals. Lines are sampled into at most one point
per pixel column, so 100 000 jobs draw as fast as 100.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from html import escape

from batchflux.report.model import Timeline

WIDTH, HEIGHT = 960, 220
PAD_L, PAD_R, PAD_T, PAD_B = 52, 16, 14, 40

SUBMIT_COLOUR = "#3b6fd8"
COMPLETE_COLOUR = "#1f9d55"
FAIL_COLOUR = "#d64545"


def timeline_svg(tl: Timeline, *, width: int = WIDTH, height: int = HEIGHT) -> str:
    if not (tl.submits or tl.completions or tl.failures):
        return (
            f'<svg class="timeline" viewBox="0 0 {width} 60" role="img" aria-label="timeline">'
            '<text x="12" y="34" class="tl-empty">No submissions recorded yet.</text></svg>'
        )
    span = max(tl.span_s, 1e-3)
    top = max(len(tl.submits), len(tl.completions), 1)
    plot_w, plot_h = width - PAD_L - PAD_R, height - PAD_T - PAD_B

    def x(t: float) -> float:
        return PAD_L + plot_w * min(max(t / span, 0.0), 1.0)

    def y(n: float) -> float:
        return PAD_T + plot_h * (1.0 - n / top)

    parts: list[str] = [
        f'<svg class="timeline" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(_aria(tl), quote=True)}">',
        f"<title>{escape(_aria(tl))}</title>",
    ]
    for n in nice_ticks(top, 4, integer=True):
        parts.append(
            f'<line class="tl-grid" x1="{PAD_L}" x2="{width - PAD_R}" y1="{y(n):.1f}" y2="{y(n):.1f}"/>'
            f'<text class="tl-label" x="{PAD_L - 6}" y="{y(n) + 4:.1f}" text-anchor="end">{n}</text>'
        )
    base = PAD_T + plot_h
    ticks = nice_ticks(span, 6)
    step = ticks[1] if len(ticks) > 1 else 1
    for t in ticks:
        parts.append(
            f'<line class="tl-axis" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{base}" y2="{base + 4}"/>'
            f'<text class="tl-label" x="{x(t):.1f}" y="{base + 16}" text-anchor="middle">'
            f"{escape(tick_label(t, step))}</text>"
        )
    parts.append(f'<line class="tl-axis" x1="{PAD_L}" x2="{width - PAD_R}" y1="{base}" y2="{base}"/>')
    for t in tl.run_starts[1:]:
        parts.append(
            f'<line class="tl-run" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{PAD_T}" y2="{base}">'
            f"<title>run started at +{escape(format_duration(t))}</title></line>"
        )
    for series, colour in ((tl.submits, SUBMIT_COLOUR), (tl.completions, COMPLETE_COLOUR)):
        if series:
            points = step_points(series, span, plot_w)
            path = " ".join(f"{x(t):.1f},{y(n):.1f}" for t, n in points)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
    if tl.failures:
        ticks = sorted({round(x(t), 1) for t in tl.failures})
        d = "".join(f"M{px},{base - 7}v7" for px in ticks)
        parts.append(f'<path stroke="{FAIL_COLOUR}" stroke-width="1.5" d="{d}"/>')
    legend_y = height - 8
    parts.append(
        _legend(PAD_L, legend_y, SUBMIT_COLOUR, f"submitted ({len(tl.submits)})")
        + _legend(PAD_L + 170, legend_y, COMPLETE_COLOUR, f"results received ({len(tl.completions)})")
        + (
            _legend(PAD_L + 370, legend_y, FAIL_COLOUR, f"failed or expired ({len(tl.failures)})")
            if tl.failures
            else ""
        )
    )
    parts.append("</svg>")
    return "".join(parts)


def step_points(times: Sequence[float], span: float, columns: int) -> list[tuple[float, int]]:
    """A cumulative count of sorted ``times`` as step-line vertices, at most ~2 per column."""
    columns = max(1, columns)
    points: list[tuple[float, int]] = [(0.0, 0)]
    count = 0
    for col in range(1, columns + 1):
        t = span * col / columns
        new = bisect.bisect_right(times, t)
        if new != count:
            t_first = times[count]  # the first event in this column: the step rises there
            points.append((t_first, count))
            points.append((t_first, new))
            count = new
    if count < len(times):  # anything after the span (clock skew) lands on the last column
        points.append((span, count))
        count = len(times)
        points.append((span, count))
    points.append((span, count))
    return points


def nice_ticks(top: float, most: int, *, integer: bool = False) -> list[float | int]:
    """Round-numbered ticks from 0 up to ``top``, at most ``most`` + 1 of them; whole numbers
    only when ``integer`` (job counts)."""
    if top <= 0:
        return [0]
    raw = top / max(1, most)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1, math.ceil(step))
    if step >= 1 and float(step).is_integer():
        step = int(step)
    ticks: list[float | int] = []
    n = 0
    while n * step <= top + 1e-9:
        value = n * step
        ticks.append(int(value) if float(value).is_integer() else round(value, 6))
        n += 1
    return ticks


def tick_label(t: float, step: float) -> str:
    """A time-axis label with as many decimals as the tick step needs (0.05 s steps: "0.15 s")."""
    if step >= 1:
        return format_duration(t)
    decimals = next((d for d in range(1, 4) if abs(round(step, d) - step) < 1e-9), 3)
    return f"{t:.{decimals}f} s"


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 or float(seconds).is_integer() else f"{seconds:.1f} s"
    if seconds < 3600:
        m, s = divmod(round(seconds), 60)
        return f"{m} min" if s == 0 else f"{m}:{s:02d}"
    h, rem = divmod(round(seconds), 3600)
    return f"{h} h" if rem == 0 else f"{h}:{rem // 60:02d} h"


def _legend(x: float, y: float, colour: str, label: str) -> str:
    return (
        f'<rect x="{x}" y="{y - 9}" width="14" height="4" fill="{colour}"/>'
        f'<text class="tl-label" x="{x + 20}" y="{y - 4}">{escape(label)}</text>'
    )


def _aria(tl: Timeline) -> str:
    return (
        f"Timeline over {format_duration(tl.span_s)}: {len(tl.submits)} submitted, "
        f"{len(tl.completions)} results received, {len(tl.failures)} failed or expired"
    )

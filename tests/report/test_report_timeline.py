"""The timeline SVG: well-formed, bounded in size, and counting what happened."""

from __future__ import annotations

import itertools
import random
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchflux.report.model import Timeline
from batchflux.report.timeline import format_duration, nice_ticks, step_points, tick_label, timeline_svg

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    # Inline SVG in HTML carries no namespace; add it so the XML parser checks well-formedness.
    return ET.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def polylines(root: ET.Element) -> list[list[tuple[float, float]]]:
    lines = []
    for el in root.iter(f"{SVG}polyline"):
        pts = [tuple(map(float, p.split(","))) for p in el.attrib["points"].split()]
        lines.append(pts)
    return lines


def test_two_cumulative_lines_failures_and_resumes() -> None:
    tl = Timeline(
        origin=1000.0,
        span_s=120.0,
        submits=(0.0, 1.0, 2.0, 61.0),
        completions=(30.0, 31.0, 90.0),
        failures=(32.0,),
        run_starts=(0.0, 60.0),
    )
    root = parse(timeline_svg(tl))
    sub, done = polylines(root)
    # Lower y is higher count: each line ends at its own total, the submit line above the results line.
    assert sub[-1][1] < done[-1][1]
    assert [y for _, y in sub] == sorted((y for _, y in sub), reverse=True), "cumulative: never goes down"
    assert len(root.findall(f".//{SVG}path")) == 1, "failure ticks"
    resume = [el for el in root.iter(f"{SVG}line") if el.get("class") == "tl-run"]
    assert len(resume) == 1, "the second run's start is marked, the first is the origin"
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "submitted (4)" in text
    assert "results received (3)" in text
    assert "failed or expired (1)" in text


def test_an_empty_run_says_so() -> None:
    svg = timeline_svg(Timeline(0.0, 0.0, (), (), (), ()))
    assert "No submissions recorded yet." in parse(svg).findtext(f"{SVG}text", "")


def test_a_hundred_thousand_events_draw_in_a_bounded_number_of_points() -> None:
    rng = random.Random(7)
    times = sorted(rng.uniform(0, 3600) for _ in range(100_000))
    pts = step_points(times, 3600.0, 892)
    assert len(pts) <= 2 * 892 + 4
    assert pts[-1] == (3600.0, 100_000)
    svg = timeline_svg(Timeline(0.0, 3600.0, tuple(times), tuple(times), (), ()))
    assert len(svg) < 60_000


@given(st.lists(st.floats(0, 1000, allow_nan=False), max_size=300), st.integers(1, 400))
def test_step_points_count_every_event_and_never_decrease(times: list[float], columns: int) -> None:
    times.sort()
    span = max(times, default=0.0) or 1.0
    pts = step_points(times, span, columns)
    assert pts[0] == (0.0, 0)
    assert pts[-1][1] == len(times)
    assert all(a[1] <= b[1] and a[0] <= b[0] for a, b in itertools.pairwise(pts))
    column = span / columns
    for t, n in pts:  # a vertex claims no event that happens more than one pixel column later
        assert n <= sum(1 for x in times if x <= t + column + 1e-9)


@pytest.mark.parametrize(
    ("top", "most", "ticks"),
    [(10, 4, [0, 2.5, 5, 7.5, 10]), (12, 4, [0, 5, 10]), (1, 4, [0, 0.25, 0.5, 0.75, 1]), (0, 4, [0]),
     (3600, 6, [0, 1000, 2000, 3000])],
)  # fmt: skip
def test_nice_ticks(top: float, most: int, ticks: list[float]) -> None:
    assert nice_ticks(top, most) == ticks


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (2.5, "2.5 s"), (42, "42 s"), (60, "1 min"), (95, "1:35"), (3600, "1 h"), (5400, "1:30 h")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_job_count_ticks_are_whole_numbers() -> None:
    assert nice_ticks(1, 4, integer=True) == [0, 1]
    assert nice_ticks(3, 4, integer=True) == [0, 1, 2, 3]
    assert nice_ticks(10, 4, integer=True) == [0, 3, 6, 9]


@pytest.mark.parametrize(
    ("t", "step", "text"),
    [(0.15, 0.05, "0.15 s"), (0.5, 0.25, "0.50 s"), (0.2, 0.1, "0.2 s"), (120, 60, "2 min"), (5, 1, "5 s")],
)
def test_tick_labels_show_the_decimals_the_step_needs(t: float, step: float, text: str) -> None:
    assert tick_label(t, step) == text

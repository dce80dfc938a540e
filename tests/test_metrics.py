"""--metrics-file: valid Prometheus text (checked by a strict parser written here), the right gauges,
escaped labels, the last success time carried over failed runs, atomic replacement."""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchflux.run.metrics import (
    RunMetrics,
    previous_last_success,
    render_metrics,
    update_metrics_file,
    write_metrics_file,
)
from batchflux.run.summary import OUTCOMES, RunSummary, parse_iso

# --- a strict parser for the text exposition format 0.0.4 ---------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|inf)|NaN")


class ExpositionError(ValueError):
    pass


@dataclass
class Family:
    name: str
    type: str | None = None
    help: str | None = None
    samples: dict[tuple[tuple[str, str], ...], float] = field(default_factory=dict)


def _unescape(text: str, allowed: dict[str, str], lineno: int) -> str:
    out: list[str] = []
    chars = iter(text)
    for ch in chars:
        if ch != "\\":
            out.append(ch)
            continue
        nxt = next(chars, None)
        if nxt is None or nxt not in allowed:
            raise ExpositionError(f"line {lineno}: invalid escape \\{nxt or ''}")
        out.append(allowed[nxt])
    return "".join(out)


def _parse_labels(text: str, pos: int, lineno: int) -> tuple[dict[str, str], int]:
    """Parse ``{a="x",b="y"}`` starting at ``text[pos] == "{"``; returns labels and the index after ``}``."""
    labels: dict[str, str] = {}
    pos += 1
    while True:
        if pos < len(text) and text[pos] == "}":
            return labels, pos + 1
        match = _LABEL_NAME.match(text, pos)
        if match is None:
            raise ExpositionError(f"line {lineno}: bad label name at column {pos}")
        name = match.group()
        if name.startswith("__"):
            raise ExpositionError(f"line {lineno}: reserved label name {name}")
        if name in labels:
            raise ExpositionError(f"line {lineno}: duplicate label {name}")
        pos = match.end()
        if text[pos : pos + 2] != '="':
            raise ExpositionError(f'line {lineno}: expected =" after {name}')
        pos += 2
        raw: list[str] = []
        while True:
            if pos >= len(text):
                raise ExpositionError(f"line {lineno}: unterminated label value")
            ch = text[pos]
            if ch == "\\":
                raw.append(text[pos : pos + 2])
                pos += 2
                continue
            if ch == '"':
                pos += 1
                break
            if ch == "\n":
                raise ExpositionError(f"line {lineno}: raw line feed in a label value")
            raw.append(ch)
            pos += 1
        labels[name] = _unescape("".join(raw), {"\\": "\\", '"': '"', "n": "\n"}, lineno)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos >= len(text) or text[pos] != "}":
            raise ExpositionError(f"line {lineno}: expected , or }} after label {name}")


def parse_exposition(text: str) -> dict[str, Family]:
    """Families by name. Raises ExpositionError on anything the format does not allow."""
    if text and not text.endswith("\n"):
        raise ExpositionError("the last line must end with a line feed")
    families: dict[str, Family] = {}
    closed: set[str] = set()  # families whose samples are over: they may not reappear
    current: str | None = None
    for lineno, line in enumerate(text.split("\n")[:-1], start=1):
        if not line.strip():
            continue
        if line.startswith("#"):
            match = re.fullmatch(rf"# (HELP|TYPE) ({_NAME})(?: (.*))?", line)
            if match is None:
                continue  # a plain comment
            kind, name, rest = match.group(1), match.group(2), match.group(3) or ""
            if name in closed or (name in families and families[name].samples):
                raise ExpositionError(f"line {lineno}: {kind} for {name} after its samples")
            family = families.setdefault(name, Family(name))
            if kind == "TYPE":
                if family.type is not None:
                    raise ExpositionError(f"line {lineno}: second TYPE for {name}")
                if rest not in _TYPES:
                    raise ExpositionError(f"line {lineno}: unknown type {rest!r}")
                family.type = rest
            else:
                if family.help is not None:
                    raise ExpositionError(f"line {lineno}: second HELP for {name}")
                family.help = _unescape(rest, {"\\": "\\", "n": "\n"}, lineno)
            continue
        match = re.match(_NAME, line)
        if match is None:
            raise ExpositionError(f"line {lineno}: no metric name")
        name, pos = match.group(), match.end()
        labels: dict[str, str] = {}
        if pos < len(line) and line[pos] == "{":
            labels, pos = _parse_labels(line, pos, lineno)
        rest = line[pos:]
        tokens = rest.split()  # tokens are separated by any run of blanks and tabs
        if rest[:1] not in (" ", "\t") or len(tokens) not in (1, 2):
            raise ExpositionError(f"line {lineno}: expected a value [and a timestamp] after the name")
        if not _FLOAT.fullmatch(tokens[0]):
            raise ExpositionError(f"line {lineno}: bad value {tokens[0]!r}")
        if len(tokens) == 2 and not re.fullmatch(r"-?\d+", tokens[1]):
            raise ExpositionError(f"line {lineno}: bad timestamp {tokens[1]!r}")
        if name in closed:
            raise ExpositionError(f"line {lineno}: samples of {name} are not grouped together")
        if current is not None and current != name:
            closed.add(current)
        current = name
        family = families.setdefault(name, Family(name))
        key = tuple(sorted(labels.items()))
        if key in family.samples:
            raise ExpositionError(f"line {lineno}: duplicate series {name}{dict(key)}")
        family.samples[key] = float(tokens[0])
    return families


def sample(families: dict[str, Family], name: str, **labels: str) -> float:
    return families[name].samples[tuple(sorted(labels.items()))]


# --- the parser itself is strict ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("a 1", "line feed"),
        ('a{x="\\q"} 1\n', "invalid escape"),
        ('a{x="1" 1\n', "expected , or }"),
        ('a{__x="1"} 1\n', "reserved"),
        ('a{x="1",x="2"} 1\n', "duplicate label"),
        ("a one\n", "bad value"),
        ("a 1 2.5\n", "bad timestamp"),
        ("a 1\na 2\n", "duplicate series"),
        ('a{x="1"} 1\nb 1\na{x="2"} 1\n', "not grouped"),
        ("a 1\n# TYPE a gauge\n", "after its samples"),
        ("# TYPE a gauge\n# TYPE a gauge\n", "second TYPE"),
        ("# TYPE a meter\n", "unknown type"),
        ("a\n", "expected a value"),
        ("a 1 2 3\n", "expected a value"),
        ('a{x="1"}\n', "expected a value"),
    ],
)
def test_strict_parser_rejects(text: str, error: str) -> None:
    with pytest.raises(ExpositionError, match=re.escape(error)):
        parse_exposition(text)


def test_strict_parser_accepts_the_spec_example() -> None:
    msdos = (
        r'msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""}'
    )
    text = (
        "# HELP http_requests_total The total number of HTTP requests.\n"
        "# TYPE http_requests_total counter\n"
        'http_requests_total{method="post",code="200"} 1027 1395066363000\n'
        'http_requests_total{method="post",code="400"}    3 1395066363000\n'
        "\n"
        "# A normal comment.\n"
        f"{msdos} 1.458255915e9\n"
        "metric_without_timestamp_and_labels 12.47\n"
        'something_weird{problem="division by zero"} +Inf -3982045\n'
    )
    families = parse_exposition(text)
    assert sample(families, "http_requests_total", method="post", code="400") == 3
    assert families["http_requests_total"].type == "counter"
    error = 'Cannot find file:\n"FILE.TXT"'
    assert sample(
        families, "msdos_file_access_time_seconds", path="C:\\DIR\\FILE.TXT", error=error
    ) == pytest.approx(1.458255915e9)
    assert math.isinf(sample(families, "something_weird", problem="division by zero"))


# --- batchflux's metrics --------------------------------------------------------------------------

EXPECTED_FAMILIES = {
    "batchflux_jobs",
    "batchflux_run_duration_seconds",
    "batchflux_rate_limited_total",
    "batchflux_estimated_spend_usd",
    "batchflux_last_run_history_cost_usd",
    "batchflux_possible_duplicate_charges",
    "batchflux_last_success_timestamp_seconds",
    "batchflux_last_run_exit_code",
    "batchflux_last_run_timestamp_seconds",
}


def make_summary(**overrides: object) -> RunSummary:
    values: dict[str, object] = {
        "run_id": "r",
        "manifest": "jobs/catalog.yaml",
        "out_dir": "out/catalog",
        "started_at": "2026-11-25T02:30:00Z",
        "finished_at": "2026-11-25T02:40:00Z",
        "wall_s": 600.1234,
        "exit_code": 0,
        "counts": {"done": 90, "failed": 4, "pending": 6},
        "rate_limited": 7,
        "possible_duplicates": 2,
        "estimated_spend_usd": 0.1 * 3,
        "history_cost_usd": 0.1 * 2,
        "history_cost_requests": 2,
    }
    values.update(overrides)
    return RunSummary(**values)  # type: ignore[arg-type]


def test_gauges_of_a_successful_run() -> None:
    families = parse_exposition(render_metrics(RunMetrics.from_summary(make_summary())))
    assert set(families) == EXPECTED_FAMILIES
    for family in families.values():
        assert family.type == "gauge"
        assert family.help
        for labels in family.samples:
            assert dict(labels)["manifest"] == "catalog"
            assert "shard" not in dict(labels)
    finished = parse_iso("2026-11-25T02:40:00Z")
    assert sample(families, "batchflux_jobs", manifest="catalog", outcome="done") == 90
    assert sample(families, "batchflux_jobs", manifest="catalog", outcome="in_flight") == 0
    assert {dict(k)["outcome"] for k in families["batchflux_jobs"].samples} == set(OUTCOMES)
    assert sample(families, "batchflux_run_duration_seconds", manifest="catalog") == 600.123
    assert sample(families, "batchflux_rate_limited_total", manifest="catalog") == 7
    assert sample(families, "batchflux_estimated_spend_usd", manifest="catalog") == 0.3
    assert sample(families, "batchflux_last_run_history_cost_usd", manifest="catalog") == 0.2
    assert sample(families, "batchflux_possible_duplicate_charges", manifest="catalog") == 2
    assert sample(families, "batchflux_last_success_timestamp_seconds", manifest="catalog") == finished
    assert sample(families, "batchflux_last_run_timestamp_seconds", manifest="catalog") == finished
    assert sample(families, "batchflux_last_run_exit_code", manifest="catalog") == 0


def test_sharded_run_carries_the_shard_label_and_extra_outcomes() -> None:
    summary = make_summary(shard="2/8", counts={"done": 1, "skipped_by_filter": 3})
    families = parse_exposition(render_metrics(RunMetrics.from_summary(summary)))
    assert (
        sample(families, "batchflux_jobs", manifest="catalog", shard="2/8", outcome="skipped_by_filter") == 3
    )
    assert sample(families, "batchflux_last_run_exit_code", manifest="catalog", shard="2/8") == 0


def test_failed_run_without_history_has_no_last_success() -> None:
    families = parse_exposition(render_metrics(RunMetrics.from_summary(make_summary(exit_code=130))))
    assert "batchflux_last_success_timestamp_seconds" not in families
    assert sample(families, "batchflux_last_run_exit_code", manifest="catalog") == 130


def test_last_success_is_carried_over_failed_runs(tmp_path: Path) -> None:
    path = tmp_path / "textfile" / "batchflux_catalog.prom"
    day = 86400.0
    first = update_metrics_file(path, make_summary())
    assert first.last_success_ts == parse_iso("2026-11-25T02:40:00Z")
    for n, code in enumerate((1, 3, 130), start=1):  # three bad nights
        update_metrics_file(path, make_summary(exit_code=code, finished_at=f"2026-11-{25 + n}T02:40:00Z"))
        families = parse_exposition(path.read_text())
        assert sample(families, "batchflux_last_success_timestamp_seconds", manifest="catalog") == (
            first.last_success_ts
        )
        assert sample(families, "batchflux_last_run_exit_code", manifest="catalog") == code
        assert sample(families, "batchflux_last_run_timestamp_seconds", manifest="catalog") == (
            first.last_run_ts + n * day
        )
    update_metrics_file(path, make_summary(finished_at="2026-11-29T02:40:00Z"))
    families = parse_exposition(path.read_text())
    assert sample(families, "batchflux_last_success_timestamp_seconds", manifest="catalog") == (
        first.last_success_ts + 4 * day
    )


def test_last_success_of_another_manifest_or_shard_is_not_taken(tmp_path: Path) -> None:
    previous = render_metrics(RunMetrics.from_summary(make_summary(manifest="other.yaml")))
    assert RunMetrics.from_summary(make_summary(exit_code=1), previous).last_success_ts is None
    previous = render_metrics(RunMetrics.from_summary(make_summary(shard="0/2")))
    assert RunMetrics.from_summary(make_summary(exit_code=1, shard="1/2"), previous).last_success_ts is None
    assert RunMetrics.from_summary(make_summary(exit_code=1, shard="0/2"), previous).last_success_ts == (
        parse_iso("2026-11-25T02:40:00Z")
    )
    assert RunMetrics.from_summary(make_summary(exit_code=1), "garbage\n{{{ 1\n").last_success_ts is None


def test_write_is_atomic_and_readable_by_a_collector(tmp_path: Path) -> None:
    path = tmp_path / "batchflux.prom"
    write_metrics_file(path, RunMetrics.from_summary(make_summary()))
    with path.open() as reader:  # the collector mid-read of the old file
        write_metrics_file(path, RunMetrics.from_summary(make_summary(exit_code=1)))
        old = parse_exposition(reader.read())
    assert sample(old, "batchflux_last_run_exit_code", manifest="catalog") == 0
    assert sample(parse_exposition(path.read_text()), "batchflux_last_run_exit_code", manifest="catalog") == 1
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["batchflux.prom"]


_label_text = st.text(st.characters(codec="utf-8"), max_size=30)


@given(
    manifest=_label_text,
    shard=st.none() | _label_text,
    counts=st.dictionaries(_label_text, st.integers(0, 10**9), max_size=6),
    wall=st.floats(0, 1e9, allow_nan=False),
    spend=st.floats(0, 1e6, allow_nan=False),
)
def test_any_labels_and_values_render_valid_text(
    manifest: str, shard: str | None, counts: dict[str, int], wall: float, spend: float
) -> None:
    metrics = RunMetrics(
        manifest=manifest,
        jobs=counts,
        duration_s=wall,
        rate_limited=1,
        estimated_spend_usd=spend,
        possible_duplicates=0,
        exit_code=0,
        last_run_ts=1.5e9,
        last_success_ts=1.5e9,
        shard=shard,
    )
    families = parse_exposition(render_metrics(metrics))
    base = {"manifest": manifest} if shard is None else {"manifest": manifest, "shard": shard}
    for outcome, count in counts.items():
        assert sample(families, "batchflux_jobs", **base, outcome=outcome) == count
    assert sample(families, "batchflux_run_duration_seconds", **base) == round(wall, 3)
    assert sample(families, "batchflux_estimated_spend_usd", **base) == round(spend, 6)
    # The carry-over reader finds the last success time again through any escaping.
    assert previous_last_success(render_metrics(metrics), manifest=manifest, shard=shard) == 1.5e9

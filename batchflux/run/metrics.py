"""``--metrics-file PATH``: the run's figures as Prometheus text-format gauges (exposition 0.0.4).

Meant for node_exporter's textfile collector (``--collector.textfile.directory``; the file name
must end in ``.prom``). The file is replaced atomically at the end of every run, so the
collector never reads half of one. Every sample carries ``manifest="<stem>"`` and, for a
sharded run, ``shard="K/N"`` — give each shard its own file.

``batchflux_last_success_timestamp_seconds`` moves only when a run exits 0; a failed or
interrupted run copies it from the file it replaces, so an alert on
``time() - batchflux_last_success_timestamp_seconds > 2 * 86400`` fires when nightly runs keep
failing, not merely when the last one did. It is absent until the first success.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from batchflux.files.durable import atomic_write_text
from batchflux.run.summary import OUTCOMES, RunSummary

# name -> help text; the order in which families are written.
_HELP: dict[str, str] = {
    "batchflux_jobs": "Jobs of the manifest by outcome after the last run.",
    "batchflux_run_duration_seconds": "Wall time of the last run.",
    "batchflux_rate_limited_total": "HTTP 429 answers received during the last run.",
    "batchflux_estimated_spend_usd": "Estimated spend of the last run's submissions, in US dollars.",
    "batchflux_last_run_history_cost_usd": (
        "What Segmind's request history said the requests the last run asked it about cost "
        "(recovered submits, expired requests), in US dollars."
    ),
    "batchflux_possible_duplicate_charges": "Resubmits in the last run that may have been paid twice.",
    "batchflux_last_success_timestamp_seconds": "Unix time at which the last run that exited 0 finished.",
    "batchflux_last_run_exit_code": (
        "Exit code of the last run (0 ok, 1 jobs failed, 3 stopped, 4 locked, 75 temporary failure, "
        "130 interrupted)."
    ),
    "batchflux_last_run_timestamp_seconds": "Unix time at which the last run finished.",
}

_LAST_SUCCESS = "batchflux_last_success_timestamp_seconds"
_SAMPLE_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


@dataclass(frozen=True, slots=True)
class RunMetrics:
    """The gauges of one run; build with :meth:`from_summary`."""

    manifest: str  # the manifest's stem, the ``manifest`` label
    jobs: dict[str, int] = field(hash=False)  # by outcome
    duration_s: float
    rate_limited: int
    estimated_spend_usd: float
    possible_duplicates: int
    exit_code: int
    last_run_ts: float
    last_success_ts: float | None = None  # None: never succeeded (as far as this file knows)
    shard: str | None = None
    history_cost_usd: float = 0.0  # summary.json's history_cost_usd

    @classmethod
    def from_summary(cls, summary: RunSummary, previous_text: str | None = None) -> RunMetrics:
        """The gauges for ``summary``; ``previous_text`` is the metrics file being replaced, if any,
        from which the last success time is carried over when this run did not exit 0."""
        manifest = Path(summary.manifest).stem
        finished = summary.finished_ts
        if summary.exit_code == 0:
            last_success: float | None = finished
        elif previous_text is not None:
            last_success = previous_last_success(previous_text, manifest=manifest, shard=summary.shard)
        else:
            last_success = None
        return cls(
            manifest=manifest,
            jobs=dict(summary.counts),  # RunSummary already holds every outcome, zeros included
            duration_s=summary.wall_s,
            rate_limited=summary.rate_limited,
            estimated_spend_usd=summary.estimated_spend_usd,
            possible_duplicates=summary.possible_duplicates,
            exit_code=summary.exit_code,
            last_run_ts=finished,
            last_success_ts=last_success,
            shard=summary.shard,
            history_cost_usd=summary.history_cost_usd,
        )


def escape_label_value(value: str) -> str:
    """Backslash, double quote and line feed escaped, as the exposition format requires."""
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def _unescape_label_value(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def format_value(value: float) -> str:
    """A sample value: integers without a fraction, NaN and infinities spelt as Prometheus does."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in pairs) + "}"


def render_metrics(m: RunMetrics) -> str:
    """The file's text: for each family a HELP and a TYPE line, then its samples; ends in a newline."""
    base = [("manifest", m.manifest)]
    if m.shard is not None:
        base.append(("shard", m.shard))
    outcomes = [*OUTCOMES, *sorted(k for k in m.jobs if k not in OUTCOMES)]
    values: dict[str, list[tuple[list[tuple[str, str]], float]]] = {
        "batchflux_jobs": [([*base, ("outcome", o)], m.jobs.get(o, 0)) for o in outcomes],
        "batchflux_run_duration_seconds": [(base, round(m.duration_s, 3))],
        "batchflux_rate_limited_total": [(base, m.rate_limited)],
        "batchflux_estimated_spend_usd": [(base, round(m.estimated_spend_usd, 6))],
        "batchflux_last_run_history_cost_usd": [(base, round(m.history_cost_usd, 6))],
        "batchflux_possible_duplicate_charges": [(base, m.possible_duplicates)],
        _LAST_SUCCESS: [] if m.last_success_ts is None else [(base, m.last_success_ts)],
        "batchflux_last_run_exit_code": [(base, m.exit_code)],
        "batchflux_last_run_timestamp_seconds": [(base, m.last_run_ts)],
    }
    lines: list[str] = []
    for name, help_text in _HELP.items():
        samples = values[name]
        if not samples:
            continue
        lines.append(f"# HELP {name} {_escape_help(help_text)}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(f"{name}{_labels(labels)} {format_value(value)}" for labels, value in samples)
    return "\n".join(lines) + "\n"


def _parse_labels(text: str) -> dict[str, str] | None:
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        match = _LABEL_RE.match(text, pos)
        if match is None or match.end() == pos:
            return None
        labels[match.group(1)] = _unescape_label_value(match.group(2))
        pos = match.end()
    return labels


def previous_last_success(text: str, *, manifest: str, shard: str | None) -> float | None:
    """The last success time recorded in an earlier metrics file for the same manifest and shard."""
    for line in text.split("\n"):  # only a line feed ends a line; label values may hold other breaks
        match = _SAMPLE_RE.fullmatch(line)
        if match is None or match.group(1) != _LAST_SUCCESS:
            continue
        labels = _parse_labels(match.group(2) or "")
        if labels is None or labels.get("manifest") != manifest or labels.get("shard") != shard:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        if math.isfinite(value):
            return value
    return None


def write_metrics_file(path: Path, m: RunMetrics) -> None:
    """Replace ``path`` atomically (temp file in the same directory, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_metrics(m))


def update_metrics_file(path: Path, summary: RunSummary) -> RunMetrics:
    """What the engine calls at the end of a run: read the file being replaced (for the last
    success time), build the gauges from ``summary`` and write them."""
    try:
        previous: str | None = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        previous = None
    metrics = RunMetrics.from_summary(summary, previous_text=previous)
    write_metrics_file(path, metrics)
    return metrics

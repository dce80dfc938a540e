"""The API key (issue 6): after a run with a failure, 429s on submits and polls, JSON logs at debug
level and a metrics file, the key is nowhere — not in the run directory's files, the metrics
file, nor the CLI's stdout and stderr — and the media host never received it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from runkit import Clis, files_containing, plain_jobs, summary, write_manifest

from batchflux.emulator import Emulator, EmulatorConfig

KEY = "SG_7f3a9c1d5e2b8a46"
SECRETS = (KEY, KEY.removeprefix("SG_"))  # nor its distinctive part alone

_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
_SAMPLE = re.compile(rf"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{{{_LABEL}(?:,{_LABEL})*,?\}})? (\S+)$")


def prometheus_problems(text: str) -> list[str]:
    """Text-format 0.0.4 checks: HELP/TYPE comments, then samples of a typed family with a number."""
    problems, typed = [], set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) != 4 or parts[3] not in ("gauge", "counter", "untyped"):
                problems.append(f"{n}: bad TYPE line {line!r}")
            typed.add(parts[2])
            continue
        m = _SAMPLE.match(line)
        if m is None:
            problems.append(f"{n}: not a sample {line!r}")
            continue
        if m.group(1) not in typed:
            problems.append(f"{n}: {m.group(1)} has no TYPE line before it")
        try:
            float(m.group(3))
        except ValueError:
            problems.append(f"{n}: value {m.group(3)!r} is not a number")
    return problems


async def test_the_key_is_in_no_output_of_a_run_with_failures_and_429s(tmp_path: Path, clis: Clis) -> None:
    jobs = plain_jobs(12)
    jobs[4]["prompt"] = "something nsfw"
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    metrics = tmp_path / "metrics" / "batchflux.prom"
    metrics.parent.mkdir()
    # Six calls a second, polls included: submits and polls both meet 429s.
    config = EmulatorConfig(
        keys=(KEY,), latency_mean=0.05, latency_sd=0.01, rpm=6, window_s=1.0, count_polls=True
    )
    async with Emulator(config) as emu:
        result = await clis.run(
            "run", manifest, "--out", out, "--metrics-file", metrics, "--log-format", "json", "-v",
            emu=emu, key=KEY,
        )  # fmt: skip
        stats = emu.stats()
    assert result.code == 1, result
    assert stats["rate_limited"] > 0  # the run met 429s ...
    assert summary(out)["rate_limited"] > 0
    assert [f["cause"] for f in summary(out)["failed_jobs"]] == ["moderation"]  # ... and a failure
    assert stats["media_with_key"] == 0

    written = ["ledger.jsonl", "batchflux.log", "summary.json", "report.html"]
    assert all((out / name).is_file() for name in written)
    assert metrics.is_file()
    log_lines = (out / "batchflux.log").read_text().splitlines()
    assert log_lines
    assert all(isinstance(json.loads(line), dict) for line in log_lines)  # --log-format json
    assert prometheus_problems(metrics.read_text()) == []
    for secret in SECRETS:
        assert files_containing(out, secret) == []
        assert files_containing(metrics.parent, secret) == []
        assert secret not in result.stdout
        assert secret not in result.stderr

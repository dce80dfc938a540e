"""``batchflux emulate`` and ``python -m batchflux.emulator``: flags, the printed URL, clean stop."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import urllib.request

import pytest

from batchflux.cli import main
from batchflux.emulator import DEFAULT_API_KEY, EmulatorConfig
from batchflux.emulator.options import add_arguments, config_from_args


def parse(*argv: str) -> EmulatorConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def test_every_knob_has_a_flag() -> None:
    cfg = parse(
        "--latency", "1.5,0.2", "--latency-min", "0.1", "--workers", "3", "--rpm", "50", "--window", "6",
        "--count-polls", "--retry-after", "--fault", "500=0.1", "--fault", "drop=0.05",
        "--fault-endpoints", "submit,media", "--moderation-word", "bad", "--moderation-word", "worse",
        "--invalid-params-at", "run", "--retention", "30", "--credits", "5", "--price", "0.2",
        "--key", "SG_1", "--key", "SG_2", "--seed", "9", "--image-size", "128",
        "--host", "127.0.0.1", "--port", "0", "--media-retention", "60", "--history-delay", "2.5",
        "--history-outage", "envelope", "--fault-endpoints", "submit,media", "--submit-hold", "1.5",
        "--media-port", "0", "--result-pending", "404",
    )  # fmt: skip
    assert cfg == EmulatorConfig(
        keys=("SG_1", "SG_2"),
        latency_mean=1.5,
        latency_sd=0.2,
        latency_min=0.1,
        workers=3,
        rpm=50,
        window_s=6.0,
        count_polls=True,
        retry_after=True,
        faults={"500": 0.1, "drop": 0.05},
        fault_endpoints=frozenset({"submit", "media"}),
        submit_hold_s=1.5,
        moderation_words=("bad", "worse"),
        invalid_params_at="run",
        retention_s=30.0,
        media_retention_s=60.0,
        history_delay_s=2.5,
        history_outage="envelope",
        result_pending="404",
        media_port=0,
        credits=5.0,
        price=0.2,
        image_long_side=128,
        seed=9,
    )
    assert parse() == EmulatorConfig()
    assert parse("--latency", "2").latency_sd == EmulatorConfig().latency_sd
    assert parse("--moderation-word", "").moderation_words == ()


@pytest.mark.parametrize(
    "argv",
    [
        ["--fault", "explode=0.1"],
        ["--fault", "500"],
        ["--latency", "fast"],
        ["--fault-endpoints", "submit,nowhere"],
        ["--invalid-params-at", "never"],
        ["--result-pending", "maybe"],
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulate", *argv]) == 2
    assert "error" in capsys.readouterr().err


def test_inconsistent_values_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulate", "--workers", "0"]) == 2
    assert "workers" in capsys.readouterr().err


def test_help_lists_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "emulate" in capsys.readouterr().out
    assert main(["emulate", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--latency", "--rpm", "--fault", "--retention", "--key", "--image-size"):
        assert flag in out


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: dict[str, object] = json.loads(resp.read())
        return body


@pytest.mark.parametrize(
    ("module_argv", "sig"),
    [
        (["-m", "batchflux.emulator"], signal.SIGTERM),
        (["-m", "batchflux", "emulate"], signal.SIGINT),
        (["-m", "batchflux", "emulate"], signal.SIGHUP),  # its terminal closed
    ],
)
async def test_serves_until_signalled(module_argv: list[str], sig: signal.Signals) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *module_argv, "--port", "0", "--rpm", "7",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        while len(lines) < (3 if "batchflux.emulator" in module_argv else 2):
            lines.append((await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode().strip())
        url = lines[-2].removeprefix("export BATCHFLUX_BASE_URL=")
        assert url.startswith("http://127.0.0.1:")
        assert lines[-1] == f"export SEGMIND_API_KEY={DEFAULT_API_KEY}"
        if "batchflux.emulator" in module_argv:
            assert lines[0] == f"BATCHFLUX_EMULATOR_URL={url}"
        stats = await asyncio.to_thread(get_json, f"{url}/_emulator/stats")
        assert stats["submits"] == 0
        proc.send_signal(sig)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
        assert proc.stderr is not None
        assert b"Traceback" not in await proc.stderr.read()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

"""``batchflux demo`` stops on SIGHUP (its terminal closed) as a run does on SIGTERM: it stops
submitting, drains, says so, and exits 130 with no traceback; the ledger is resumable."""

from __future__ import annotations

import signal
from pathlib import Path

from runkit import Clis, count, read_events, wait_until


async def test_demo_stops_cleanly_on_sighup(tmp_path: Path, clis: Clis) -> None:
    out = tmp_path / "demo"
    cli = await clis.start("demo", "--out", out, "--no-progress", "--latency", "3", key=None)
    await wait_until(
        lambda: not cli.running or count(read_events(out), "submitted") >= 1, what="a submit", within=60
    )
    assert cli.running, (await cli.wait()).stderr
    cli.send(signal.SIGHUP)
    stopped = await cli.wait(within=60)
    assert stopped.code == 130, stopped
    assert "Traceback" not in stopped.stderr
    assert any(e["event"] == "run_finished" for e in read_events(out))

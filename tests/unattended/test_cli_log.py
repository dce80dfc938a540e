"""The lines ``batchflux run`` prints itself (what it resumes, the summary, why it stopped) are in
``batchflux.log`` too, so a cron run's log tells the whole story; the console shows each once."""

from __future__ import annotations

from pathlib import Path

from runkit import Clis, plain_jobs, write_manifest

from batchflux.emulator import Emulator, EmulatorConfig


async def test_the_clis_own_lines_are_in_batchflux_log(tmp_path: Path, clis: Clis) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(3))
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(latency_mean=0.05, latency_sd=0.0)) as emu:
        done = await clis.run("run", manifest, "--out", out, "--no-progress", "--no-report", emu=emu)
    assert done.code == 0, done
    log = (out / "batchflux.log").read_text()
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("3/3 done"), done.stderr  # the run's summary, printed by the CLI …
    assert last in log  # … is in the log
    assert done.stderr.count(last) == 1  # and on the console once, not again through the log

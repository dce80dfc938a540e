"""Runs whose directory is a bucket prefix, against moto's S3 server and the emulator, through the
real CLI in a child process: everything lands under the prefix, the readers take the URL, the
lease keeps one runner per prefix, and no credential is written anywhere."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

from runkit import Cli, Clis, count, plain_jobs, wait_until, write_manifest
from s3kit import SECRET, all_objects, images_of, ledger_of

from batchflux.emulator import DEFAULT_API_KEY, Emulator, EmulatorConfig
from batchflux.rundir.objects import open_object_store

FAST = EmulatorConfig(latency_mean=0.05, latency_sd=0.01)


async def test_a_run_into_a_bucket_lands_everything_under_the_prefix(
    tmp_path: Path, clis: Clis, bucket: str
) -> None:
    jobs = plain_jobs(6)
    manifest = write_manifest(tmp_path / "m", jobs)
    url = f"s3://{bucket}/nightly/catalog"
    spool = tmp_path / "spool"
    async with Emulator(FAST) as emu:
        result = await clis.run("run", manifest, "--out", url, "--spool", spool, emu=emu)
        assert result.code == 0, result
        assert url in result.stderr
        objects = all_objects(url)
        assert set(images_of(objects)) == {f"{j['id']}.png" for j in jobs}
        for key in ("summary.json", "results.csv", "results.jsonl", "report.html", "batchflux.log"):
            assert key in objects, sorted(objects)
        events = ledger_of(objects)
        # Compacted at the stop into one segment:
        assert [k for k in objects if k.startswith("ledger/")] == ["ledger/0000000000000000.jsonl"]
        assert count(events, "downloaded") == 6
        assert events[-1]["event"] == "run_finished"
        assert "run.lock" not in objects  # released
        assert emu.stats()["submits"] == 6
        # Images left the spool once they were in the bucket; the ledger stays there.
        assert not list(spool.glob("*.png"))
        assert (spool / "ledger.jsonl").exists()
        assert not (tmp_path / "s3:").exists()
        assert not (Path.cwd() / "s3:").exists()

        # Nothing of the cloud's secret (nor the API key) in any object or message.
        for key, body in objects.items():
            assert SECRET.encode() not in body, key
            assert DEFAULT_API_KEY.encode() not in body, key
        assert SECRET not in result.stderr + result.stdout

        # The plain rerun from the same spool does nothing more.
        again = await clis.run("run", manifest, "--out", url, "--spool", spool, emu=emu)
        assert again.code == 0, again
        assert emu.stats()["submits"] == 6


async def test_status_report_and_export_read_the_url(tmp_path: Path, clis: Clis, bucket: str) -> None:
    jobs = plain_jobs(3)
    manifest = write_manifest(tmp_path / "m", jobs)
    url = f"s3://{bucket}/r"
    async with Emulator(FAST) as emu:
        result = await clis.run(
            "run", manifest, "--out", url, "--spool", tmp_path / "sp", "--no-report", emu=emu
        )
        assert result.code == 0, result
    status = await clis.run("status", url, "--json")
    assert status.code == 0, status
    assert json.loads(status.stdout)["by_state"]["downloaded"] == 3
    assert json.loads(status.stdout)["out_dirs"] == [url]
    text = await clis.run("status", url)
    assert text.stdout.startswith(url), text
    export = await clis.run("export", url, "--manifest", manifest)
    assert export.code == 0, export
    rows = [json.loads(line) for line in export.stdout.splitlines()]
    assert sorted(r["id"] for r in rows) == [j["id"] for j in jobs]
    report = await clis.run("report", url)
    assert report.code == 0, report
    objects = all_objects(url)
    assert b"job0000" in objects["report.html"]
    assert not (tmp_path / "s3:").exists()


def test_a_bucket_url_without_the_extra_names_it(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m", plain_jobs(1))
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def imp(name, *a, **k):\n"
        "    if name.startswith('obstore'): raise ImportError(name)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = imp\n"
        "from batchflux.cli import main\n"
        f"sys.exit(main(['run', {str(manifest)!r}, '--out', 's3://x/y', '--dry-run']))\n"
    )
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "pip install '.[s3]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "s3:").exists()


async def start_slow_holder(clis: Clis, emu: Emulator, manifest: Path, url: str, spool: Path) -> Cli:
    """A run into ``url`` that finishes its first job and then waits a minute for its next slot."""
    cli = await clis.start(
        "run", manifest, "--out", url, "--spool", spool, "--rate", "1/60s", "--no-report", emu=emu
    )
    await wait_until(
        lambda: not cli.running or bool(list(spool.glob("*.png"))) or _shipped_images(url) >= 1,
        what="the first job done",
        within=60,
    )
    assert cli.running, (await cli.wait()).stderr
    return cli


def _shipped_images(url: str) -> int:
    store = open_object_store(url)
    return sum(1 for m in store.list() if m.key.endswith(".png"))


async def test_a_second_runner_is_refused_with_4_and_a_lapsed_lease_is_taken_over(
    tmp_path: Path, clis: Clis, bucket: str
) -> None:
    jobs = plain_jobs(3)
    manifest = write_manifest(tmp_path / "m", jobs)
    url = f"s3://{bucket}/locked"
    async with Emulator(FAST) as emu:
        holder = await start_slow_holder(clis, emu, manifest, url, tmp_path / "spool-a")
        second = await clis.run("run", manifest, "--out", url, "--spool", tmp_path / "spool-b", emu=emu)
        assert second.code == 4, second
        assert f"pid {holder.pid}" in second.stderr
        assert emu.stats()["submits"] == 1

        holder.send(signal.SIGKILL)  # the pod dies: its lease is renewed no more
        assert await holder.proc.wait() == -signal.SIGKILL
        assert "run.lock" in {m.key for m in open_object_store(url).list()}
        shutil.rmtree(tmp_path / "spool-a")
        third = await clis.run(
            "run", manifest, "--out", url, "--spool", tmp_path / "spool-c", "--history-wait", "1", emu=emu
        )
        assert third.code == 0, third
        objects = all_objects(url)
        assert set(images_of(objects)) == {f"{j['id']}.png" for j in jobs}
        assert emu.stats()["submits"] == 3  # the lost pod's second request was adopted, not paid again
        assert "run.lock" not in objects

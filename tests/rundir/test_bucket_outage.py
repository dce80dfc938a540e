"""A bucket that goes away mid-run stops the run like an API outage: exit 75, no job failed, the
spool keeps what was not shipped, and the plain rerun (the bucket back) completes. The outage is
real: the run talks to moto through a TCP relay on 127.0.0.1 that the test closes and reopens."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from runkit import Clis, count, plain_jobs, wait_until, write_manifest
from s3kit import S3Server, all_objects, free_port, images_of, ledger_of

from batchflux.emulator import Emulator, EmulatorConfig

SLOW = EmulatorConfig(latency_mean=1.0, latency_sd=0.1)


class Relay:
    """Forwards 127.0.0.1:port to the S3 server while open; refuses connections while closed."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


@pytest.mark.slow
async def test_the_bucket_going_away_stops_the_run_with_75_and_the_rerun_completes(
    tmp_path: Path, clis: Clis, bucket: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = Relay(int(s3_server.endpoint.rsplit(":", 1)[1]))
    await relay.open()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{relay.port}")
    jobs = plain_jobs(30)
    manifest = write_manifest(tmp_path / "m", jobs)
    url = f"s3://{bucket}/outage"
    spool = tmp_path / "spool"
    try:
        async with Emulator(SLOW) as emu:
            run = await clis.start(
                "run", manifest, "--out", url, "--spool", spool, "--rate", "3/1s", "--outage-after", "3",
                "--no-report", emu=emu,
            )  # fmt: skip
            await wait_until(
                lambda: not run.running or emu.stats()["submits"] >= 6, what="the run under way", within=60
            )
            await relay.close()  # the bucket is gone
            result = await run.wait(within=120)
            assert result.code == 75, result
            assert "unreachable" in result.stderr
            await relay.open()  # back
            rerun = await clis.run("run", manifest, "--out", url, "--spool", spool, emu=emu, within=120)
            assert rerun.code == 0, rerun
            assert emu.stats()["duplicate_submits"] == 0
            assert emu.stats()["submits"] == len(jobs)
        objects = await asyncio.to_thread(all_objects, url)  # the relay serves from this loop
        assert set(images_of(objects)) == {f"{j['id']}.png" for j in jobs}
        events = ledger_of(objects)
        assert count(events, "failed") == 0
        assert sorted(e["job"] for e in events if e["event"] == "downloaded") == [j["id"] for j in jobs]
    finally:
        await relay.close()

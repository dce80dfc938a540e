"""Benchmark: what a downloaded image costs to put on disk, and which way of writing it is cheapest.

Run: ``python tests/bench/bench_outputs.py [--n 300] [--concurrency 8] [--dir DIR]``

Part 1 isolates the file work (bytes already in hand, 64 KiB chunks as aiohttp hands them over) and
compares, per image, wall time and CPU time (process-wide, worker threads included):

- ``spool``      batchflux.files.download: chunks kept in memory up to 1 MiB, then one worker-thread trip that
                 writes, fsyncs, renames and fsyncs the directory (larger files spill as they stream);
- ``aiofiles``   aiofiles: open, one awaited write per chunk, flush, fsync and rename, each a thread trip;
- ``thread/chunk`` plain ``os.write`` in ``asyncio.to_thread`` per chunk, then fsync and rename;
- ``no-fsync``   the spool without the two fsyncs, to show what durability costs;
- ``committer``  what the engine does: the whole image handed to a shared
                 :class:`~batchflux.files.commit.FileCommitter`, which writes the images that arrive
                 together in one worker-thread trip and makes them durable with one ``syncfs``.

Part 2 is end to end: ``download_image`` from a local aiohttp server, per image.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiofiles
import aiofiles.os
import aiohttp
from aiohttp import web

from batchflux.api import ApiClient
from batchflux.files import download as outputs
from batchflux.files.commit import FileCommitter
from batchflux.files.download import download_image
from batchflux.files.durable import fsync_dir

CHUNK = 64 * 1024
SIZES = {"4 KB": 4 * 1024, "100 KB": 100 * 1024, "1 MB": 1024 * 1024}

Writer = Callable[[list[bytes], Path], Awaitable[None]]


def chunks_of(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


async def spool_writer(chunks: list[bytes], dest: Path) -> None:
    spool = outputs._Spool(dest)
    try:
        for chunk in chunks:
            await spool.write(chunk)
        await spool.commit()
    except BaseException:
        spool.discard()
        raise


async def aiofiles_writer(chunks: list[bytes], dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.part")
    async with aiofiles.open(tmp, "wb") as f:
        for chunk in chunks:
            await f.write(chunk)
        await f.flush()
        await asyncio.to_thread(os.fsync, f.fileno())
    await aiofiles.os.replace(tmp, dest)
    await asyncio.to_thread(fsync_dir, dest.parent)


async def thread_per_chunk_writer(chunks: list[bytes], dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.part")
    fd = await asyncio.to_thread(os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in chunks:
            await asyncio.to_thread(os.write, fd, chunk)
        await asyncio.to_thread(os.fsync, fd)
    finally:
        os.close(fd)
    await asyncio.to_thread(os.replace, tmp, dest)
    await asyncio.to_thread(fsync_dir, dest.parent)


async def no_fsync_writer(chunks: list[bytes], dest: Path) -> None:
    def commit() -> None:
        tmp = dest.with_name(f".{dest.name}.part")
        with open(tmp, "wb") as f:
            f.write(b"".join(chunks))
        os.replace(tmp, dest)

    await asyncio.to_thread(commit)


_COMMITTER = FileCommitter()


async def committer_writer(chunks: list[bytes], dest: Path) -> None:
    await _COMMITTER.write(dest, b"".join(chunks))


WRITERS: dict[str, Writer] = {
    "spool": spool_writer,
    "aiofiles": aiofiles_writer,
    "thread/chunk": thread_per_chunk_writer,
    "no-fsync": no_fsync_writer,
    "committer": committer_writer,
}


async def run_writes(
    writer: Writer, data: bytes, n: int, concurrency: int, directory: Path
) -> tuple[float, float]:
    chunks = chunks_of(data)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await writer(chunks, directory / f"{i}.png")

    wall0, cpu0 = time.perf_counter(), time.process_time()
    async with asyncio.TaskGroup() as tg:
        for i in range(n):
            tg.create_task(one(i))
    return (time.perf_counter() - wall0) / n, (time.process_time() - cpu0) / n


def png_like(size: int) -> bytes:
    """Valid head and trailer around random bytes: enough for the downloader's checks."""
    head, tail = b"\x89PNG\r\n\x1a\n", b"\x00\x00\x00\x00IEND\xaeB`\x82"
    return head + os.urandom(size - len(head) - len(tail)) + tail


async def run_downloads(data: bytes, n: int, concurrency: int, directory: Path) -> tuple[float, float]:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=data, content_type="image/png")

    app = web.Application()
    app.router.add_get("/img", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/img"
    expected = hashlib.sha256(data).hexdigest()
    sem = asyncio.Semaphore(concurrency)
    try:
        async with aiohttp.ClientSession() as session:
            # A client whose API is elsewhere: only its media GET is used, against the server above.
            client = ApiClient(session, api_key="SG_0123456789abcdef", base_url="http://127.0.0.1:9")

            async def one(i: int) -> None:
                async with sem:
                    got = await download_image(
                        client.media, url, directory / f"d{i}.png", output_format="png"
                    )
                    assert got.sha256 == expected

            await one(-1)  # warm the connection pool
            wall0, cpu0 = time.perf_counter(), time.process_time()
            async with asyncio.TaskGroup() as tg:
                for i in range(n):
                    tg.create_task(one(i))
            return (time.perf_counter() - wall0) / n, (time.process_time() - cpu0) / n
    finally:
        await runner.cleanup()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300, help="images per measurement")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the median is shown")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        print(f"{directory}: n={args.n}, concurrency={args.concurrency}, median of {args.repeat} runs")
        print("\nfile work only: wall ms / CPU ms per image")
        print(f"{'size':>8} " + " ".join(f"{name:>20}" for name in WRITERS))
        for label, size in SIZES.items():
            data = png_like(size)
            cells = []
            for writer in WRITERS.values():
                runs = [
                    await run_writes(writer, data, args.n, args.concurrency, directory)
                    for _ in range(args.repeat)
                ]
                wall = statistics.median(r[0] for r in runs) * 1000
                cpu = statistics.median(r[1] for r in runs) * 1000
                cells.append(f"{wall:8.3f} / {cpu:7.3f}")
            print(f"{label:>8} " + " ".join(f"{c:>20}" for c in cells))

        print("\nend to end, download_image from a local server (its CPU too): wall ms / CPU ms per image")
        for label, size in SIZES.items():
            data = png_like(size)
            runs = [
                await run_downloads(data, args.n, args.concurrency, directory) for _ in range(args.repeat)
            ]
            wall = statistics.median(r[0] for r in runs) * 1000
            cpu = statistics.median(r[1] for r in runs) * 1000
            print(f"{label:>8} {wall:8.3f} / {cpu:7.3f}")


if __name__ == "__main__":
    asyncio.run(main())

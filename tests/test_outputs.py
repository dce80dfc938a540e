"""The downloader against real local servers: verified, atomic, bounded, and never with the key."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import test_utils, web
from PIL import Image

from batchflux.api import ApiClient, DownloadError
from batchflux.emulator import DEFAULT_API_KEY, Emulator, EmulatorConfig
from batchflux.files.commit import FileCommitter
from batchflux.files.download import (
    SPILL_BYTES,
    Downloaded,
    OpenMedia,
    check_image_bytes,
    download_image,
    file_digest,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def image_bytes(fmt: str, size: tuple[int, int] = (32, 24), *, noise: bool = False) -> bytes:
    if noise:
        img = Image.frombytes("RGB", size, random.Random(1).randbytes(size[0] * size[1] * 3))
    else:
        img = Image.new("RGB", size, (200, 30, 90))
    out = io.BytesIO()
    img.save(out, format="PNG" if fmt == "png" else "JPEG")
    return out.getvalue()


PNG = image_bytes("png")
JPG = image_bytes("jpg")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class Media:
    """A real aiohttp server on 127.0.0.1 serving hand-written routes; records request headers."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        self.app = web.Application()
        self.headers: list[dict[str, str]] = []
        self.release = asyncio.Event()
        for path, handler in routes.items():
            self.app.router.add_get(path, self._recording(handler))
        self.server = test_utils.TestServer(self.app, host="127.0.0.1")

    def _recording(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            self.headers.append(dict(request.headers))
            return await handler(request)

        return wrapped

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def __aenter__(self) -> Media:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await self.server.close()


def body(data: bytes, content_type: str = "image/png") -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=data, content_type=content_type)

    return handler


def chunked(data: bytes) -> Handler:
    """No Content-Length: only the image's own trailer can tell a truncation."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        await resp.prepare(request)
        await resp.write(data)
        await resp.write_eof()
        return resp

    return handler


def media_of(session: aiohttp.ClientSession, *, max_bytes: int = 50 * 2**20) -> OpenMedia:
    """The media GET of a client whose API is elsewhere: these servers are media hosts only."""
    return ApiClient(
        session, api_key="SG_0123456789abcdef", base_url="http://127.0.0.1:9", media_max_bytes=max_bytes
    ).media


def leftovers(directory: Path) -> list[str]:
    return sorted(os.listdir(directory)) if directory.exists() else []


@pytest.mark.parametrize(("fmt", "data"), [("png", PNG), ("jpg", JPG), ("jpeg", JPG)])
async def test_downloads_verifies_and_renames_into_place(
    session: aiohttp.ClientSession, tmp_path: Path, fmt: str, data: bytes
) -> None:
    async with Media({"/x": body(data)}) as media:
        dest = tmp_path / "deep" / "er" / f"out.{fmt}"
        got = await download_image(media_of(session), media.url("/x"), dest, output_format=fmt)
    assert got == Downloaded(path=dest, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    assert dest.read_bytes() == data
    assert leftovers(dest.parent) == [dest.name]  # no temp file left behind
    assert "x-api-key" not in {k.lower() for k in media.headers[0]}


async def test_replaces_an_existing_file_atomically(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    dest = tmp_path / "a.png"
    dest.write_bytes(b"old")
    async with Media({"/x": body(PNG)}) as media:
        await download_image(media_of(session), media.url("/x"), dest, output_format="png")
    assert dest.read_bytes() == PNG


async def test_a_large_image_streams_through_a_temp_file(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    big = image_bytes("png", (800, 600), noise=True)
    assert len(big) > SPILL_BYTES
    async with Media({"/big": body(big), "/big-chunked": chunked(big)}) as media:
        for path in ("/big", "/big-chunked"):
            got = await download_image(
                media_of(session), media.url(path), tmp_path / "big.png", output_format="png"
            )
            assert got.sha256 == hashlib.sha256(big).hexdigest()
            assert file_digest(got.path) == (len(big), got.sha256)
    assert leftovers(tmp_path) == ["big.png"]


@pytest.mark.parametrize("umask", [0o022, 0o027])
async def test_images_get_the_mode_of_any_new_file(
    session: aiohttp.ClientSession, tmp_path: Path, umask: int
) -> None:
    """0666 less the umask, in memory or spilled: not a temp file's private 0600."""
    big = image_bytes("png", (800, 600), noise=True)
    old = os.umask(umask)
    try:
        async with Media({"/small": body(PNG), "/big": body(big)}) as media:
            await download_image(
                media_of(session), media.url("/small"), tmp_path / "small.png", output_format="png"
            )
            await download_image(
                media_of(session), media.url("/big"), tmp_path / "big.png", output_format="png"
            )
            await download_image(
                media_of(session), media.url("/small"), tmp_path / "batched.png", output_format="png",
                committer=FileCommitter(),
            )  # fmt: skip
    finally:
        os.umask(old)
    for name in ("small.png", "big.png", "batched.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


@pytest.mark.parametrize(
    ("handler", "fmt", "retryable", "words"),
    [
        (body(JPG, "image/jpeg"), "png", False, "not a PNG"),
        (body(PNG), "jpg", False, "not a JPG"),
        (body(b"<html>Service Unavailable</html>", "text/html"), "png", True, "not a PNG"),
        (body(b""), "png", True, "empty"),
        (chunked(PNG[: len(PNG) - 5]), "png", True, "truncated"),
        (chunked(JPG[: len(JPG) // 2]), "jpg", True, "truncated"),
    ],
)
async def test_bad_bodies_are_refused_and_leave_nothing(
    session: aiohttp.ClientSession, tmp_path: Path, handler: Handler, fmt: str, retryable: bool, words: str
) -> None:
    dest = tmp_path / f"x.{fmt}"
    async with Media({"/x": handler}) as media:
        with pytest.raises(DownloadError) as caught:
            await download_image(media_of(session), media.url("/x"), dest, output_format=fmt)
    assert caught.value.retryable is retryable
    assert words in str(caught.value)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("status", "retryable"), [(404, True), (403, True), (503, True), (410, False), (400, False)]
)
async def test_http_errors(
    session: aiohttp.ClientSession, tmp_path: Path, status: int, retryable: bool
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, text="no")

    async with Media({"/x": answer}) as media:
        with pytest.raises(DownloadError) as caught:
            await download_image(media_of(session), media.url("/x"), tmp_path / "x.png", output_format="png")
    assert caught.value.retryable is retryable
    assert f"HTTP {status}" in str(caught.value)
    assert leftovers(tmp_path) == []


async def test_the_size_cap_holds_with_and_without_content_length(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    big = image_bytes("png", (800, 600), noise=True)
    async with Media({"/declared": body(big), "/chunked": chunked(big)}) as media:
        for path in ("/declared", "/chunked"):
            with pytest.raises(DownloadError) as caught:
                await download_image(
                    media_of(session, max_bytes=SPILL_BYTES + 1000),
                    media.url(path),
                    tmp_path / "x.png",
                    output_format="png",
                )
            assert not caught.value.retryable
            assert "cap" in str(caught.value)
    assert leftovers(tmp_path) == []


async def test_a_cancelled_download_removes_its_temp_file(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    big = image_bytes("png", (800, 600), noise=True)

    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.content_length = len(big)
        await resp.prepare(request)
        await resp.write(big[: SPILL_BYTES + 4096])  # past the spill point: a temp file exists
        await media.release.wait()
        return resp

    async with Media({"/x": stall}) as media:
        task = asyncio.create_task(
            download_image(media_of(session), media.url("/x"), tmp_path / "x.png", output_format="png")
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        while not any(name.endswith(".part") for name in leftovers(tmp_path)):
            assert loop.time() < deadline, "the temp file never appeared"
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert leftovers(tmp_path) == []


async def test_transport_failures_are_retryable_and_bad_urls_are_not(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with Media({}) as media:
        closed_port_url = media.url("/x")
    with pytest.raises(DownloadError) as refused:
        await download_image(media_of(session), closed_port_url, tmp_path / "x.png", output_format="png")
    assert refused.value.retryable
    with pytest.raises(DownloadError) as bad:
        await download_image(
            media_of(session), "ftp://example.invalid/x.png", tmp_path / "x.png", output_format="png"
        )
    assert not bad.value.retryable
    assert leftovers(tmp_path) == []


async def test_a_local_write_failure_is_not_retryable(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(b"a file where a directory should be")
    async with Media({"/x": body(PNG)}) as media:
        with pytest.raises(DownloadError) as caught:
            await download_image(
                media_of(session), media.url("/x"), tmp_path / "blocker" / "x.png", output_format="png"
            )
    assert not caught.value.retryable
    assert "could not write" in str(caught.value)


async def test_refuses_a_session_that_would_send_the_key(tmp_path: Path) -> None:
    async with aiohttp.ClientSession(headers={"x-api-key": "SG_1"}) as leaky:
        with pytest.raises(ValueError, match="x-api-key"):
            await download_image(
                media_of(leaky), "http://127.0.0.1:9/x.png", tmp_path / "x.png", output_format="png"
            )


async def test_unknown_format_is_a_programming_error(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="webp"):
        await download_image(
            media_of(session), "http://127.0.0.1:9/x", tmp_path / "x.webp", output_format="webp"
        )


async def test_emulator_media_never_sees_the_key(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    async with Emulator(EmulatorConfig(latency_mean=0.02, latency_sd=0.0, image_long_side=64)) as emu:
        client = ApiClient(session, api_key=DEFAULT_API_KEY, base_url=emu.base_url)
        subs = [await client.submit("flux-kontext-max", {"prompt": f"p{i}"}) for i in range(3)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        outputs: list[str] = []
        for sub in subs:
            while (res := await client.result(sub.response_url)).output is None:
                assert loop.time() < deadline
                await asyncio.sleep(0.01)
            outputs.append(res.output)
        got = [
            await download_image(client.media, url, tmp_path / f"{i}.png", output_format="png")
            for i, url in enumerate(outputs)
        ]
        for sub, one in zip(subs, got, strict=True):
            assert one.sha256 == (emu.request_info(sub.request_id) or {})["sha256"]
        stats = emu.stats()
    assert stats["media_calls"] == 3
    assert stats["media_with_key"] == 0


@pytest.mark.parametrize(
    ("head", "tail", "fmt", "ok"),
    [
        (PNG[:16], PNG[-16:], "png", True),
        (JPG[:16], JPG[-16:], "jpg", True),
        (JPG[:16], JPG[-16:] + b"\x00\x00", "jpeg", True),  # padding after EOI
        (PNG[:16], PNG[-20:-4], "png", False),
        (JPG[:16], JPG[-20:-4], "jpg", False),
        (b"GIF89a", b";", "png", False),
        (b"", b"", "png", False),
    ],
)
def test_check_image_bytes(head: bytes, tail: bytes, fmt: str, ok: bool) -> None:
    if ok:
        check_image_bytes(head, tail, fmt)
    else:
        with pytest.raises(DownloadError):
            check_image_bytes(head, tail, fmt)


def test_file_digest(tmp_path: Path) -> None:
    path = tmp_path / "f"
    data = random.Random(2).randbytes(3 * 2**20 + 7)
    path.write_bytes(data)
    assert file_digest(path) == (len(data), hashlib.sha256(data).hexdigest())
    empty = tmp_path / "e"
    empty.write_bytes(b"")
    assert file_digest(empty) == (0, hashlib.sha256(b"").hexdigest())

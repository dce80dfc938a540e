"""Outputs and uploads: real images of the asked ratio and format, derived from the input, reproducible."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from batchflux.emulator import Emulator

Make = Callable[..., Emulator]
FAST = {"latency_mean": 0.02, "latency_sd": 0.0}


def png_bytes(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


async def finished_output(api: Any, **params: Any) -> tuple[str, bytes]:
    """Submit, wait, fetch the result and its media (without a key); return (request_id, bytes)."""
    rid = (await api.submit_ok(**params))["request_id"]
    await api.until_state(rid, "COMPLETED")
    result = await api.request("GET", f"/v2/requests/{rid}")
    media = await api.request("GET", result.body["output"], key=None)
    assert media.status == 200
    return rid, media.raw


@pytest.mark.parametrize(
    ("ratio", "fmt", "size", "pil_format"),
    [
        ("16:9", "png", (256, 144), "PNG"),
        ("9:16", "jpg", (144, 256), "JPEG"),
        ("1:1", "png", (256, 256), "PNG"),
        ("4:3", "jpg", (256, 192), "JPEG"),
        ("21:9", "png", (256, 110), "PNG"),
        ("1:2", "png", (128, 256), "PNG"),
    ],
)
async def test_output_ratio_and_format(
    make_emulator: Make,
    api_for: Callable[[Emulator], Any],
    ratio: str,
    fmt: str,
    size: tuple[int, int],
    pil_format: str,
) -> None:
    async with make_emulator(**FAST) as emu:
        api = api_for(emu)
        rid, data = await finished_output(api, prompt="a lighthouse", aspect_ratio=ratio, output_format=fmt)
        with Image.open(io.BytesIO(data)) as img:
            assert img.format == pil_format
            assert img.size == size
        info = emu.request_info(rid)
        assert info is not None
        assert info["output_url"].endswith(f"/media/{rid}.{fmt}")
        assert info["sha256"] == hashlib.sha256(data).hexdigest()


async def test_media_needs_no_key_and_keyed_fetches_are_counted(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    async with make_emulator(**FAST) as emu:
        api = api_for(emu)
        rid, _ = await finished_output(api, prompt="p")
        keyed = await api.request("GET", f"/media/{rid}.png")  # api sends the key by default
        assert keyed.status == 200
        assert (await api.request("GET", f"/media/{rid}.jpg", key=None)).status == 404  # wrong extension
        assert (await api.request("GET", "/media/nope.png", key=None)).status == 404
        stats = emu.stats()
        assert (stats["media_calls"], stats["media_with_key"]) == (4, 1)


async def test_same_params_and_seed_give_the_same_bytes(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    params = {"prompt": "paint it gold", "aspect_ratio": "3:2", "output_format": "png", "seed": 42}
    digests = []
    for seed in (5, 5, 6):
        async with make_emulator(seed=seed, **FAST) as emu:
            api = api_for(emu)
            _, first = await finished_output(api, **params)
            _, again = await finished_output(api, **params)
            assert first == again
            assert emu.stats()["duplicate_submits"] == 1
            digests.append(hashlib.sha256(first).hexdigest())
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


async def test_upload_then_edit_the_upload(make_emulator: Make, api_for: Callable[[Emulator], Any]) -> None:
    red = png_bytes((300, 200), (255, 0, 0))
    async with make_emulator(**FAST) as emu:
        api = api_for(emu)
        up = await api.request("POST", "/upload-asset", json={"data_urls": [data_url(red)]})
        assert up.status == 200
        assert up.body["urls"] == up.body["file_urls"]
        url = up.body["urls"][0]
        assert url == f"{emu.base_url}/media/uploads/{hashlib.sha256(red).hexdigest()}.png"
        hosted = await api.request("GET", url, key=None)
        assert (hosted.status, hosted.raw, hosted.headers["Content-Type"]) == (200, red, "image/png")
        _, data = await finished_output(api, prompt="x", input_image=url, aspect_ratio="match_input_image")
        with Image.open(io.BytesIO(data)) as img:
            assert img.size == (256, 171)  # the input's 3:2
            pixel = img.convert("RGB").getpixel((img.width - 3, img.height - 3))
        assert isinstance(pixel, tuple)
        assert pixel[0] > 150  # red, under a 30 % tint
        assert pixel[1] < 90
        assert pixel[2] < 90
        assert emu.stats()["upload_calls"] == 1


async def test_inline_and_loopback_inputs_are_read(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    blue, green = png_bytes((100, 400), (0, 0, 255)), png_bytes((100, 400), (0, 255, 0))
    async with make_emulator(**FAST) as host, make_emulator(**FAST) as emu:
        hosted = await api_for(host).request("POST", "/upload-asset", json={"data_urls": [data_url(green)]})
        loopback_url = hosted.body["urls"][0]  # served by another server on 127.0.0.1
        api = api_for(emu)
        for source, channel in ((data_url(blue), 2), (loopback_url, 1)):
            _, data = await finished_output(
                api, prompt="x", input_image=source, aspect_ratio="match_input_image"
            )
            with Image.open(io.BytesIO(data)) as img:
                assert img.size == (64, 256)  # the input's 1:4
                pixel = img.convert("RGB").getpixel((img.width - 3, img.height - 3))
            assert isinstance(pixel, tuple)
            assert pixel[channel] > 150
            assert pixel[0] < 90
        assert host.stats()["media_calls"] == 1  # the emulator fetched the loopback URL once


async def test_unreadable_input_falls_back_to_a_pattern(
    make_emulator: Make, api_for: Callable[[Emulator], Any]
) -> None:
    async with make_emulator(**FAST) as emu:
        api = api_for(emu)
        for source in (
            "https://example.com/cat.png",
            "http://127.0.0.1:9/closed.png",
            data_url(b"not an image"),
        ):
            _, data = await finished_output(api, prompt="x", input_image=source, aspect_ratio="1:1")
            with Image.open(io.BytesIO(data)) as img:
                assert img.size == (256, 256)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"data_urls": []},
        {"data_urls": "data:image/png;base64,AAAA"},
        {"data_urls": ["https://example.com/a.png"]},
        {"data_urls": [7]},
        {"data_urls": ["data:image/png;base64,@@@@"]},
        ["data:image/png;base64,AAAA"],
    ],
)
async def test_bad_uploads_are_400(emulator: Emulator, api_for: Callable[[Emulator], Any], body: Any) -> None:
    reply = await api_for(emulator).request("POST", "/upload-asset", json=body)
    assert reply.status == 400
    assert "error" in reply.body

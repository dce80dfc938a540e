"""The official ``segmind`` SDK (1.3.0), unchanged, against the emulator.

The SDK is blocking httpx, so each call runs in a worker thread while the emulator serves in the
test's event loop.
"""

from __future__ import annotations

import asyncio
import importlib
import io
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image
from segmind import SegmindClient, SegmindError
from segmind.v2 import AsyncJob, InferenceFailed

from batchflux.emulator import DEFAULT_API_KEY, Emulator

Make = Callable[..., Emulator]
FAST = {"latency_mean": 0.05, "latency_sd": 0.0}


@pytest.fixture
def clients() -> Iterator[Callable[..., SegmindClient]]:
    made: list[SegmindClient] = []

    def make(emu: Emulator, api_key: str | None = DEFAULT_API_KEY) -> SegmindClient:
        client = SegmindClient(api_key=api_key, base_url=f"{emu.base_url}/v1", timeout=10.0)
        made.append(client)
        return client

    yield make
    for client in made:
        client._client.close()


def fetch(url: str) -> bytes:
    response = httpx.get(url, timeout=10.0)
    response.raise_for_status()
    return response.content


async def test_run_returns_a_completed_body_with_a_real_image(
    make_emulator: Make, clients: Callable[..., SegmindClient]
) -> None:
    async with make_emulator(**FAST) as emu:
        client = clients(emu)
        body = await asyncio.to_thread(
            client.run,
            "flux-kontext-max",
            prompt="turn the sky purple",
            aspect_ratio="4:3",
            output_format="jpg",
        )
        assert body["status"] == "COMPLETED"
        assert set(body) >= {"status", "output", "metrics", "request_id"}
        data = await asyncio.to_thread(fetch, body["output"])
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            assert img.format == "JPEG"
            assert img.width / img.height == pytest.approx(4 / 3, abs=0.01)
        stats = emu.stats()
        assert stats["submits"] == 1
        assert stats["media_with_key"] == 0  # httpx.get outside the SDK carries no key
        assert stats["result_calls"] == 1
        assert stats["status_calls"] >= 1


async def test_moderation_raises_inference_failed(
    make_emulator: Make, clients: Callable[..., SegmindClient]
) -> None:
    async with make_emulator(**FAST) as emu:
        client = clients(emu)
        with pytest.raises(InferenceFailed) as failed:
            await asyncio.to_thread(client.run, "flux-kontext-max", prompt="something nsfw")
        assert failed.value.detail is not None
        assert failed.value.detail.startswith("content blocked")
        assert failed.value.status_body["status"] == "FAILED"
        assert emu.stats()["jobs_by_state"]["FAILED"] == 1


async def test_unknown_and_expired_requests_are_404(
    make_emulator: Make, clients: Callable[..., SegmindClient], wait_until: Any
) -> None:
    async with make_emulator(retention_s=0.5, **FAST) as emu:
        client = clients(emu)
        ghost = AsyncJob(
            request_id="no-such-request",
            status_url=f"{emu.base_url}/v2/requests/no-such-request/status",
            response_url=f"{emu.base_url}/v2/requests/no-such-request",
            submit_response={},
            _client=client,
        )
        with pytest.raises(SegmindError) as unknown:
            await asyncio.to_thread(ghost.status)
        assert (unknown.value.status, unknown.value.detail) == (404, "Request no-such-request not found")

        job = await asyncio.to_thread(client.submit_async, "flux-kontext-max", prompt="p")
        assert (await asyncio.to_thread(job.status))["request_id"] == job.request_id

        async def expired() -> SegmindError | None:
            try:
                await asyncio.to_thread(job.result)
            except SegmindError as exc:
                return exc
            return None

        error = await wait_until(expired, within=5.0, what="the SDK sees 404 past retention")
        assert error.status == 404
        assert error.detail == f"Request {job.request_id} not found"


async def test_burst_over_quota_is_429(make_emulator: Make, clients: Callable[..., SegmindClient]) -> None:
    async with make_emulator(rpm=2, **FAST) as emu:
        client = clients(emu)
        for _ in range(2):
            await asyncio.to_thread(client.submit_async, "flux-kontext-max", prompt="p")
        with pytest.raises(SegmindError) as limited:
            await asyncio.to_thread(client.submit_async, "flux-kontext-max", prompt="p")
        assert limited.value.status == 429
        assert limited.value.detail == "Rate limit exceeded"
        assert emu.stats()["rate_limited"] == 1


async def test_missing_key_is_401(
    make_emulator: Make, clients: Callable[..., SegmindClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEGMIND_API_KEY", raising=False)  # the SDK falls back to it
    async with make_emulator(**FAST) as emu:
        client = clients(emu, api_key=None)
        with pytest.raises(SegmindError) as denied:
            await asyncio.to_thread(client.run, "flux-kontext-max", prompt="p")
        assert denied.value.status == 401
        assert emu.stats()["unauthorized"] == 1
        assert emu.stats()["submits"] == 0


async def test_sdk_upload_shape(
    make_emulator: Make, clients: Callable[..., SegmindClient], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The SDK's own upload request, aimed at the emulator through its documented storage-host constant."""
    from segmind.files import Files

    image = tmp_path / "in.png"
    Image.new("RGB", (40, 20), (0, 200, 0)).save(image)
    async with make_emulator(**FAST) as emu:
        monkeypatch.setattr(Files, "STORAGE_BASE_URL", emu.base_url)
        client = clients(emu)
        uploaded = await asyncio.to_thread(client.files.upload, image)
        assert uploaded["file_urls"] == uploaded["urls"]
        body = await asyncio.to_thread(
            client.run,
            "flux-kontext-max",
            prompt="p",
            input_image=uploaded["file_urls"][0],
            aspect_ratio="match_input_image",
        )
        with Image.open(io.BytesIO(await asyncio.to_thread(fetch, body["output"]))) as img:
            assert img.size == (256, 128)  # the upload's 2:1
        assert emu.stats()["upload_calls"] == 1


async def test_sdk_reads_the_request_history(
    make_emulator: Make, clients: Callable[..., SegmindClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``generations.history()`` and ``generations.get()``, aimed at the emulator through the SDK's
    module constant, return the emulator's records: the v2 request under the same id, its body as
    sent, its cost and output; a failed one with its error."""
    # ``segmind.generations`` the attribute is a convenience object; the module holds the constant.
    generations = importlib.import_module("segmind.generations")

    async with make_emulator(price=0.1, **FAST) as emu:
        url = f"{emu.base_url}/inference-request/request-history"
        monkeypatch.setattr(generations, "REQUEST_HISTORY_URL", url)
        client = clients(emu)
        body = await asyncio.to_thread(client.run, "flux-kontext-max", prompt="a blue bird", seed=3)
        with pytest.raises(InferenceFailed):
            await asyncio.to_thread(client.run, "flux-kontext-max", prompt="nsfw bird")

        page = await asyncio.to_thread(
            client.generations.history, per_page=10, model_name="kontext", sort_order="desc"
        )
        rows = page["data"]
        assert [r["model_status"] for r in rows] == ["FAILED", "COMPLETED"]
        done = rows[1]
        assert done["request_id"] == body["request_id"]
        assert done["request_body"] == {"prompt": "a blue bird", "seed": 3}
        assert done["generation_url"] == body["output"]
        assert done["credits_deduction"] == pytest.approx(0.1)
        assert rows[0]["error"].startswith("content blocked")

        one = await asyncio.to_thread(client.generations.get, body["request_id"])
        assert one == done
        with pytest.raises(SegmindError) as missing:
            await asyncio.to_thread(client.generations.get, "no-such-request")
        assert missing.value.status == 404
        with pytest.raises(SegmindError) as refused:
            await asyncio.to_thread(client.generations.history, per_page=101)
        assert refused.value.status == 400
        stats = emu.stats()
        assert (stats["history_calls"], stats["history_record_calls"]) == (2, 2)

"""The client against the real emulator: every error kind reached for real, and the key kept home."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import traceback
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from batchflux.api import (
    Ambiguous,
    ApiClient,
    ApiError,
    DownloadError,
    Expired,
    Fatal,
    JobFailed,
    JobStatus,
    OutOfCredits,
    RateLimited,
    Submission,
    Transient,
)
from batchflux.emulator import DEFAULT_API_KEY, Emulator, EmulatorConfig
from batchflux.files.download import download_image, file_digest

MODEL = "flux-kontext-max"
PARAMS: dict[str, Any] = {"prompt": "make the cat wear a hat", "aspect_ratio": "1:1", "output_format": "png"}


def fast(**changes: Any) -> EmulatorConfig:
    """An emulator config with short, steady latencies; ``changes`` override."""
    base: dict[str, Any] = {"latency_mean": 0.05, "latency_sd": 0.0, "latency_min": 0.01}
    base["image_long_side"] = 64
    base.update(changes)
    return EmulatorConfig(**base)


def client_for(session: aiohttp.ClientSession, emu: Emulator, **kw: Any) -> ApiClient:
    kw.setdefault("api_key", DEFAULT_API_KEY)
    return ApiClient(session, base_url=emu.base_url, **kw)


async def until_completed(client: ApiClient, sub: Submission, *, within_s: float = 10.0) -> JobStatus:
    """Poll status until COMPLETED (a FAILED raises JobFailed out of here), with a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        status = await client.status(sub.status_url)
        if status.status == "COMPLETED":
            return status
        assert loop.time() < deadline, f"still {status.status} after {within_s} s"
        await asyncio.sleep(0.01)


SAMPLE = Path(__file__).resolve().parents[2] / "sample_manifests" / "images" / "cat.jpg"


def assert_key_absent(exc: BaseException, key: str) -> None:
    text = "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)
    assert key not in text


async def test_a_job_goes_through_and_its_image_lands_intact(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with Emulator(fast()) as emu:
        client = client_for(session, emu)
        sub = await client.submit(MODEL, PARAMS)
        assert sub.status_url.startswith(emu.base_url)
        assert sub.request_id in sub.status_url
        early = await client.result(sub.response_url)
        assert early.output is None or early.status == "COMPLETED"
        await until_completed(client, sub)
        res = await client.result(sub.response_url)
        assert res.status == "COMPLETED"
        assert res.output is not None
        assert isinstance(res.metrics, dict)
        got = await download_image(client.media, res.output, tmp_path / "out" / "a.png", output_format="png")
        info = emu.request_info(sub.request_id)
        assert info is not None
        assert got.sha256 == info["sha256"]
        assert file_digest(got.path) == (got.size, got.sha256)
        assert got.path.read_bytes().startswith(b"\x89PNG")
        stats = emu.stats()
        assert stats["media_with_key"] == 0
        assert stats["media_calls"] == 1
        assert stats["submits"] == 1
        assert stats["unauthorized"] == 0
        assert client.calls["submit"] == 1
        assert client.calls["media"] == 1
        assert client.calls["result"] == 2
        assert client.calls["status"] >= 1


async def test_upload_then_use_the_url_and_credits(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    data_url = "data:image/jpeg;base64," + base64.b64encode(SAMPLE.read_bytes()).decode()
    async with Emulator(fast(credits=7.5)) as emu:
        client = client_for(session, emu)
        assert client.upload_url == f"{emu.base_url}/upload-asset"
        url = await client.upload(data_url)
        assert url.startswith(emu.base_url)
        assert await client.credits() == pytest.approx(7.5)
        # The hosted upload is public media: fetched without the key, byte-identical.
        got = await download_image(client.media, url, tmp_path / "in.jpg", output_format="jpg")
        assert got.sha256 == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
        sub = await client.submit(MODEL, {**PARAMS, "input_image": url, "output_format": "jpg"})
        await until_completed(client, sub)
        res = await client.result(sub.response_url)
        assert res.output is not None
        assert res.output.endswith(".jpg")
        assert emu.stats()["media_with_key"] == 0
        assert client.calls["upload"] == 1
        assert client.calls["credits"] == 1


async def test_wrong_key_is_fatal_auth_and_never_shown(session: aiohttp.ClientSession) -> None:
    wrong = "SG_0123456789abcdef"
    async with Emulator(fast()) as emu:
        client = client_for(session, emu, api_key=wrong)
        for call in (client.submit(MODEL, PARAMS), client.credits()):
            with pytest.raises(Fatal) as caught:
                await call
            assert caught.value.kind == "auth"
            assert "401" in str(caught.value)
            assert_key_absent(caught.value, wrong)
        assert wrong not in repr(client)
        assert emu.stats()["unauthorized"] == 2


async def test_no_credits_is_out_of_credits(session: aiohttp.ClientSession) -> None:
    async with Emulator(fast(credits=0.0)) as emu:
        client = client_for(session, emu)
        with pytest.raises(OutOfCredits) as caught:
            await client.submit(MODEL, PARAMS)
        assert "406" in str(caught.value)
        assert emu.stats()["submits"] == 0


async def test_bad_parameter_fails_the_job_at_submit(session: aiohttp.ClientSession) -> None:
    async with Emulator(fast()) as emu:
        client = client_for(session, emu)
        with pytest.raises(JobFailed) as caught:
            await client.submit(MODEL, {**PARAMS, "aspect_ratio": "7:3"})
        assert caught.value.http_status == 400
        assert caught.value.cause == "invalid"
        assert "aspect_ratio" in caught.value.error


async def test_invalid_parameter_found_at_run_time_fails_on_status(session: aiohttp.ClientSession) -> None:
    async with Emulator(fast(invalid_params_at="run")) as emu:
        client = client_for(session, emu)
        sub = await client.submit(MODEL, {**PARAMS, "aspect_ratio": "7:3"})
        with pytest.raises(JobFailed) as caught:
            await until_completed(client, sub)
        assert (caught.value.http_status, caught.value.cause) == (422, "invalid")


async def test_moderated_prompt_fails_with_422_on_status_and_result(session: aiohttp.ClientSession) -> None:
    async with Emulator(fast()) as emu:
        client = client_for(session, emu)
        sub = await client.submit(MODEL, {**PARAMS, "prompt": "something nsfw"})
        with pytest.raises(JobFailed) as on_status:
            await until_completed(client, sub)
        with pytest.raises(JobFailed) as on_result:
            await client.result(sub.response_url)
        for caught in (on_status, on_result):
            assert caught.value.http_status == 422
            assert caught.value.cause == "moderation"
            assert "blocked" in caught.value.error


async def test_expired_request_is_expired_on_status_and_result(session: aiohttp.ClientSession) -> None:
    async with Emulator(fast(retention_s=0.3, latency_mean=10.0)) as emu:
        client = client_for(session, emu)
        sub = await client.submit(MODEL, PARAMS)
        assert (await client.status(sub.status_url)).status in ("QUEUED", "PROCESSING")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        with pytest.raises(Expired):  # noqa: PT012 - poll until the record is gone
            while loop.time() < deadline:
                await client.status(sub.status_url)
                await asyncio.sleep(0.01)
        with pytest.raises(Expired):
            await client.result(sub.response_url)


async def test_quota_exceeded_is_rate_limited_with_the_reset_delay(session: aiohttp.ClientSession) -> None:
    async with Emulator(fast(rpm=1, window_s=30.0)) as emu:
        client = client_for(session, emu)
        await client.submit(MODEL, PARAMS)
        with pytest.raises(RateLimited) as caught:
            await client.submit(MODEL, PARAMS)
        delay = caught.value.delay_s
        assert delay is not None
        assert 0.0 < delay <= 30.5
        assert emu.stats()["rate_limited"] == 1
        assert emu.stats()["submits"] == 1


@pytest.mark.parametrize(("kind", "status"), [("500", 500), ("502", 502), ("504", 504)])
async def test_server_errors_on_gets_are_transient(
    session: aiohttp.ClientSession, kind: str, status: int
) -> None:
    async with Emulator(fast(faults={kind: 1.0}, fault_endpoints=frozenset({"status", "result"}))) as emu:
        client = client_for(session, emu)
        sub = await client.submit(MODEL, PARAMS)
        for call in (client.status(sub.status_url), client.result(sub.response_url)):
            with pytest.raises(Transient) as caught:
                await call
            assert caught.value.status == status
            if status != 500:
                assert "HTML" in str(caught.value)  # an nginx page, not JSON


async def test_server_error_on_submit_is_transient_and_creates_nothing(
    session: aiohttp.ClientSession,
) -> None:
    async with Emulator(fast(faults={"502": 1.0}, fault_endpoints=frozenset({"submit"}))) as emu:
        client = client_for(session, emu)
        with pytest.raises(Transient) as caught:
            await client.submit(MODEL, PARAMS)
        assert not isinstance(caught.value, Ambiguous)
        assert caught.value.status == 502
        assert emu.stats()["submits"] == 0


async def test_dropped_submit_is_ambiguous_and_was_in_fact_created(session: aiohttp.ClientSession) -> None:
    async with Emulator(fast(faults={"drop": 1.0}, fault_endpoints=frozenset({"submit"}))) as emu:
        client = client_for(session, emu)
        with pytest.raises(Ambiguous) as caught:
            await client.submit(MODEL, PARAMS)
        assert isinstance(caught.value.__cause__, aiohttp.ClientError)
        assert_key_absent(caught.value, DEFAULT_API_KEY)
        assert emu.stats()["submits"] == 1  # billed: exactly why it is ambiguous


@pytest.mark.parametrize("endpoint", ["status", "upload", "credits"])
async def test_dropped_connection_elsewhere_is_transient(
    session: aiohttp.ClientSession, endpoint: str
) -> None:
    async with Emulator(fast(faults={"drop": 1.0}, fault_endpoints=frozenset({endpoint}))) as emu:
        client = client_for(session, emu)
        emu.reconfigure(faults={})
        sub = await client.submit(MODEL, PARAMS)
        emu.reconfigure(faults={"drop": 1.0})
        calls = {
            "status": lambda: client.status(sub.status_url),
            "upload": lambda: client.upload("data:image/png;base64,iVBORw0KGgo="),
            "credits": client.credits,
        }
        with pytest.raises(Transient) as caught:
            await calls[endpoint]()
        assert caught.value.status is None
        assert not isinstance(caught.value, Ambiguous)


async def test_unknown_model_is_fatal(session: aiohttp.ClientSession) -> None:
    async with Emulator(fast()) as emu:
        client = client_for(session, emu)
        with pytest.raises(Fatal) as caught:
            await client.submit("no such model!", PARAMS)
        assert caught.value.kind == "model"


async def test_truncated_media_is_a_retryable_download_error(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with Emulator(fast(faults={"truncate": 1.0}, fault_endpoints=frozenset({"media"}))) as emu:
        client = client_for(session, emu)
        sub = await client.submit(MODEL, PARAMS)
        await until_completed(client, sub)
        res = await client.result(sub.response_url)
        assert res.output is not None
        dest = tmp_path / "job.png"
        with pytest.raises(DownloadError) as caught:
            await download_image(client.media, res.output, dest, output_format="png")
        assert caught.value.retryable
        assert "truncated" in str(caught.value)
        assert os.listdir(tmp_path) == []  # no image, no temp file
        emu.reconfigure(faults={})
        got = await download_image(client.media, res.output, dest, output_format="png")
        assert got.sha256 == (emu.request_info(sub.request_id) or {})["sha256"]
        assert emu.stats()["media_with_key"] == 0


async def test_connection_refused_on_submit_is_transient(session: aiohttp.ClientSession) -> None:
    async with Emulator(fast()) as emu:
        base = emu.base_url
    client = ApiClient(session, api_key=DEFAULT_API_KEY, base_url=base, timeout_s=5.0)
    with pytest.raises(Transient) as caught:
        await client.submit(MODEL, PARAMS)
    assert not isinstance(caught.value, Ambiguous)
    assert "connect" in str(caught.value)
    assert client.calls["submit"] == 1


async def test_every_error_is_an_api_error_without_the_key(session: aiohttp.ClientSession) -> None:
    faults = {"500": 0.3, "502": 0.3, "drop": 0.4}
    async with Emulator(fast(faults=faults)) as emu:
        client = client_for(session, emu)
        errors: list[ApiError] = []
        for _ in range(30):
            try:
                sub = await client.submit(MODEL, PARAMS)
                await client.status(sub.status_url)
            except ApiError as exc:
                errors.append(exc)
        assert {type(e) for e in errors} >= {Transient, Ambiguous}
        for exc in errors:
            assert_key_absent(exc, DEFAULT_API_KEY)

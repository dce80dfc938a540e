"""Bad requests never hurt the emulator: malformed JSON, wrong types, huge bodies, unknown paths, odd
methods and garbage on the socket each get a clean 4xx, and it keeps serving afterwards."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchflux.emulator import DEFAULT_API_KEY, Emulator

PATHS = [
    "/v2/flux-kontext-max",
    "/v2/some-model",
    "/v2/requests/abc",
    "/v2/requests/abc/status",
    "/v2/requests/",
    "/v2/",
    "/v1/get-user-credits",
    "/upload-asset",
    "/media/abc.png",
    "/media/uploads/zzz.png",
    "/_emulator/requests/abc",
    "/",
    "/v3/flux-kontext-max",
    "/v2/flux-kontext-max/extra",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/v2/%00",
]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
flux_fields = st.fixed_dictionaries(
    {},
    optional={
        "prompt": json_values,
        "input_image": json_values,
        "aspect_ratio": st.sampled_from(["1:1", "16:9", "7:3", ""]) | json_values,
        "output_format": st.sampled_from(["png", "jpg", "gif"]) | json_values,
        "safety_tolerance": st.integers(-3, 9) | json_values,
        "seed": st.integers(-(2**40), 2**40) | json_values,
        "extra": json_values,
    },
)
bodies = (
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | flux_fields.map(lambda v: json.dumps(v).encode())
)


def assert_clean(status: int, content_type: str, body: bytes) -> None:
    assert status < 500, (status, body[:200])
    if status >= 400 and content_type == "application/json" and body:
        assert "error" in json.loads(body)


async def assert_healthy(emu: Emulator, api: Any) -> None:
    assert (await api.submit(prompt="still alive")).status == 200
    assert (await api.request("GET", "/_emulator/stats", key=None)).status == 200


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(METHODS),
    path=st.sampled_from(PATHS),
    body=bodies,
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/json; charset=latin-1", None]
    ),
    key=st.sampled_from([DEFAULT_API_KEY, None, "SG_bad", ""]),
)
async def test_random_requests_get_clean_answers(
    emulator: Emulator,
    api_for: Callable[[Emulator], Any],
    method: str,
    path: str,
    body: bytes,
    content_type: str | None,
    key: str | None,
) -> None:
    api = api_for(emulator)
    headers = {"Content-Type": content_type} if content_type else {}
    reply = await api.request(method, path, key=key, headers=headers, data=body)
    assert_clean(reply.status, reply.headers.get("Content-Type", "").split(";")[0], reply.raw)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{", 400),
        (b"", 400),
        (b"\xff\xfe\x00garbage", 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),
        (b'{"prompt": ' + b"9" * 5000 + b"}", 400),  # beyond int's digit limit
        (b'["prompt", "x"]', 400),
        (b'"just a string"', 400),
        (b"null", 400),
        (b'{"prompt": ["a", "b"]}', 400),
        (b'{"prompt": "x", "seed": 1.5}', 400),
        (b'{"prompt": "x", "safety_tolerance": true}', 400),
        (b'{"prompt": "x", "aspect_ratio": {"w": 1}}', 400),
        (b'{"prompt": "' + b"x" * 100_000 + b'", "bogus": [' + b"1," * 10_000 + b"1]}", 400),
        (b'{"prompt": NaN}', 400),
        (b" " * (31 * 1024 * 1024), 413),
    ],
    ids=lambda v: repr(v)[:30] if isinstance(v, bytes) else str(v),
)
async def test_malformed_submits(
    emulator: Emulator, api_for: Callable[[Emulator], Any], body: bytes, status: int
) -> None:
    api = api_for(emulator)
    data = io.BytesIO(body) if len(body) > 1024 * 1024 else body  # aiohttp warns about big raw bytes
    headers = {"Content-Type": "application/json"}
    reply = await api.request("POST", "/v2/flux-kontext-max", headers=headers, data=data)
    assert reply.status == status
    assert "error" in reply.body
    assert len(reply.raw) < 2000  # errors never echo a huge body back
    await assert_healthy(emulator, api)
    assert emulator.stats()["submits"] == 1


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nowhere", 404),
        ("GET", "/v2/flux-kontext-max", 405),
        ("DELETE", "/v2/requests/abc", 405),
        ("PUT", "/upload-asset", 405),
        ("PROPFIND", "/v1/get-user-credits", 405),
        ("POST", "/v2/requests/abc/status", 405),
        ("GET", "/media/../../etc/passwd", 404),
        ("POST", "/v2/" + "x" * 300, 404),
        ("POST", "/v2/bad%20slug", 404),
    ],
)
async def test_unknown_paths_and_odd_methods(
    emulator: Emulator, api_for: Callable[[Emulator], Any], method: str, path: str, status: int
) -> None:
    api = api_for(emulator)
    reply = await api.request(method, path, json={"prompt": "p"})
    assert reply.status == status
    assert "error" in reply.body
    await assert_healthy(emulator, api)


@pytest.mark.parametrize(
    "raw",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /v2/flux-kontext-max HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /v2/flux-kontext-max HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n",
    ],
    ids=lambda v: repr(v)[:30],
)
async def test_garbage_on_the_socket(
    emulator: Emulator, api_for: Callable[[Emulator], Any], raw: bytes
) -> None:
    port = emulator.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    status_line = answer.split(b"\r\n", 1)[0]
    assert re.fullmatch(rb"HTTP/1\.[01] 4\d\d .*", status_line), answer[:200]
    await assert_healthy(emulator, api_for(emulator))

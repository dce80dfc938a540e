"""Helpers for the emulator's own tests, as fixtures: an HTTP session, a small API driver bound to an
emulator, and a deadline-bounded condition wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from batchflux.emulator import DEFAULT_API_KEY, Emulator


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any  # parsed JSON when the answer was JSON, else the text
    raw: bytes


@dataclass
class Api:
    """Plain HTTP against one emulator, with the default key unless told otherwise."""

    http: aiohttp.ClientSession
    emu: Emulator

    async def request(
        self, method: str, path_or_url: str, *, key: str | None = DEFAULT_API_KEY, **kw: Any
    ) -> Reply:
        url = path_or_url if path_or_url.startswith("http") else self.emu.base_url + path_or_url
        headers = dict(kw.pop("headers", {}))
        if key is not None:
            headers["x-api-key"] = key
        async with self.http.request(method, url, headers=headers, **kw) as resp:
            raw = await resp.read()
            body: Any = raw.decode("utf-8", "replace")
            if resp.content_type == "application/json" and raw:  # HEAD answers carry no body
                body = await resp.json()
            return Reply(resp.status, dict(resp.headers), body, raw)

    async def submit(self, slug: str = "flux-kontext-max", **params: Any) -> Reply:
        return await self.request("POST", f"/v2/{slug}", json=params)

    async def submit_ok(self, **params: Any) -> dict[str, Any]:
        reply = await self.submit(**params)
        assert reply.status == 200, reply.body
        body: dict[str, Any] = reply.body
        return body

    async def state(self, request_id: str) -> str:
        info = self.emu.request_info(request_id)
        assert info is not None
        return str(info["state"])

    async def until_state(self, request_id: str, *states: str, within: float = 10.0) -> str:
        async def probe() -> str | None:
            state = await self.state(request_id)
            return state if state in states else None

        result: str = await wait_for(probe, within=within, what=f"{request_id} in {states}")
        return result


async def wait_for(
    probe: Callable[[], Awaitable[Any]], *, within: float = 10.0, every: float = 0.02, what: str = ""
) -> Any:
    """Call ``probe`` until it returns something other than None/False; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await probe()
        if value is not None and value is not False:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"condition not met within {within} s: {what or probe}")
        await asyncio.sleep(every)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def api_for(http: aiohttp.ClientSession) -> Callable[[Emulator], Api]:
    return lambda emu: Api(http, emu)


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[Any]]:
    return wait_for

"""Helpers for the API-boundary tests: fast emulator configs, a polling helper with a deadline, and a tiny
real server for the answers the emulator never gives (hangs, redirects, malformed bodies, a key echoed)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from batchflux.api import ApiClient, JobStatus, Submission
from batchflux.emulator import DEFAULT_API_KEY, Emulator, EmulatorConfig

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


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class OddServer:
    """A real aiohttp server on 127.0.0.1 with hand-written routes; records every request it sees.

    ``release`` is set on exit, so handlers that hang (``await server.release.wait()``) end cleanly.
    """

    routes: list[tuple[str, str, Handler]]
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    base_url: str = ""
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> OddServer:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.seen.append(Seen(request.method, request.path, dict(request.headers)))
            return await handler(request)

        app = web.Application(middlewares=[record])
        for method, path, handler in self.routes:
            app.router.add_route(method, path, handler)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

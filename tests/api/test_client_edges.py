"""The client against small real servers for what the emulator never does: hang, redirect, point
elsewhere, echo the key back, answer in odd shapes."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from runkit import serve

from batchflux.api import Ambiguous, ApiClient, Fatal, JobFailed, RateLimited, Transient

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
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    async def __aenter__(self) -> OddServer:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.seen.append(Seen(request.method, request.path, dict(request.headers)))
            return await handler(request)

        app = web.Application(middlewares=[record])
        for method, path, handler in self.routes:
            app.router.add_route(method, path, handler)
        self.base_url = await self._stack.enter_async_context(serve(app))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release.set()
        await self._stack.aclose()


KEY = "SG_feedfacecafebeef"
PARAMS = {"prompt": "p"}


def client(session: aiohttp.ClientSession, base_url: str, **kw: Any) -> ApiClient:
    return ApiClient(session, api_key=KEY, base_url=base_url, **kw)


def queued(base: str, request_id: str = "r1") -> dict[str, str]:
    return {
        "request_id": request_id,
        "status": "QUEUED",
        "status_url": f"{base}/v2/requests/{request_id}/status",
        "response_url": f"{base}/v2/requests/{request_id}",
    }


async def test_key_and_json_headers_go_to_the_api_and_the_upload_host_only(
    session: aiohttp.ClientSession,
) -> None:
    async def submit(request: web.Request) -> web.Response:
        body = await request.json()
        assert body == PARAMS
        return web.json_response(queued(api.base_url))

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"status": "PROCESSING"})

    async def upload(request: web.Request) -> web.Response:
        return web.json_response({"file_urls": ["https://files.example/a.png"]})

    async with (
        OddServer([("POST", "/v2/m", submit), ("GET", "/v2/requests/r1/status", status)]) as api,
        OddServer([("POST", "/upload-asset", upload)]) as up,
    ):
        c = client(session, api.base_url + "/v1/", upload_url=f"{up.base_url}/upload-asset")
        sub = await c.submit("m", PARAMS)
        assert (await c.status(sub.status_url)).status == "PROCESSING"
        assert await c.upload("data:image/png;base64,AAAA") == "https://files.example/a.png"
    posted = api.seen[0]
    assert (posted.method, posted.path) == ("POST", "/v2/m")  # an SDK-style "/v1" base is understood
    assert posted.headers["x-api-key"] == KEY
    assert posted.headers["Content-Type"] == "application/json"
    assert api.seen[1].headers["x-api-key"] == KEY
    assert up.seen[0].headers["x-api-key"] == KEY
    assert up.seen[0].headers["Content-Type"] == "application/json"


async def test_default_upload_url_follows_an_overridden_base(session: aiohttp.ClientSession) -> None:
    assert ApiClient(session, api_key=KEY).upload_url == "https://workflows-api.segmind.com/upload-asset"
    assert client(session, "http://127.0.0.1:9").upload_url == "http://127.0.0.1:9/upload-asset"


async def test_a_status_url_on_another_host_is_refused_without_contact(
    session: aiohttp.ClientSession,
) -> None:
    async def anything(request: web.Request) -> web.Response:
        return web.json_response({"status": "COMPLETED"})

    async with (
        OddServer([("GET", "/{tail:.*}", anything)]) as api,
        OddServer([("GET", "/{tail:.*}", anything)]) as other,
    ):
        c = client(session, api.base_url)
        for call in (c.status, c.result):
            with pytest.raises(Fatal) as caught:
                await call(f"{other.base_url}/v2/requests/r1/status")
            assert caught.value.kind == "foreign_host"
            assert "127.0.0.1" in str(caught.value)
        # Same host, other scheme or spelling: still another origin.
        with pytest.raises(Fatal):
            await c.status(api.base_url.replace("127.0.0.1", "localhost") + "/v2/requests/r1/status")
    assert other.seen == []
    assert api.seen == []


async def test_redirects_are_not_followed_and_stop_the_run(session: aiohttp.ClientSession) -> None:
    async with OddServer([("GET", "/{tail:.*}", _never)]) as elsewhere:

        async def moved(request: web.Request) -> web.Response:
            raise web.HTTPPermanentRedirect(f"{elsewhere.base_url}/v2/m?token=secret")

        async with OddServer([("POST", "/v2/m", moved)]) as api:
            with pytest.raises(Fatal) as caught:
                await client(session, api.base_url).submit("m", PARAMS)
    assert caught.value.kind == "redirect"
    assert "127.0.0.1" in str(caught.value)
    assert "token" not in str(caught.value)
    assert elsewhere.seen == []


async def _never(request: web.Request) -> web.Response:
    raise AssertionError("must not be reached")


async def test_a_hanging_submit_is_ambiguous_and_a_hanging_get_transient(
    session: aiohttp.ClientSession,
) -> None:
    arrived = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        arrived.set()
        await api.release.wait()
        return web.json_response({})

    async with OddServer([("POST", "/v2/m", hang), ("GET", "/v2/requests/r1", hang)]) as api:
        c = client(session, api.base_url, timeout_s=0.3)
        with pytest.raises(Ambiguous) as caught:
            await c.submit("m", PARAMS)
        assert arrived.is_set()  # the server had the request: exactly why it is ambiguous
        assert isinstance(caught.value.__cause__, TimeoutError)
        with pytest.raises(Transient) as on_get:
            await c.result(f"{api.base_url}/v2/requests/r1")
        assert not isinstance(on_get.value, Ambiguous)
        assert "timed out" in str(on_get.value)


async def test_unreadable_2xx_is_ambiguous_on_submit_and_transient_on_get(
    session: aiohttp.ClientSession,
) -> None:
    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="<html>welcome</html>", content_type="text/html")

    async with OddServer([("POST", "/v2/m", garbage), ("GET", "/v2/requests/r1/status", garbage)]) as api:
        c = client(session, api.base_url)
        with pytest.raises(Ambiguous):
            await c.submit("m", PARAMS)
        with pytest.raises(Transient):
            await c.status(f"{api.base_url}/v2/requests/r1/status")


async def test_an_oversized_answer_is_not_read_into_memory(session: aiohttp.ClientSession) -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        chunk = b" " * 2**20
        for _ in range(6):  # chunked, no Content-Length: the cap is enforced while reading
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    async with OddServer([("POST", "/v2/m", huge), ("GET", "/v2/requests/r1/status", huge)]) as api:
        c = client(session, api.base_url)
        with pytest.raises(Ambiguous):
            await c.submit("m", PARAMS)
        with pytest.raises(Transient) as caught:
            await c.status(f"{api.base_url}/v2/requests/r1/status")
        assert "larger than" in str(caught.value)


async def test_the_key_echoed_by_the_server_is_redacted(session: aiohttp.ClientSession) -> None:
    async def echo(request: web.Request) -> web.Response:
        key = request.headers["x-api-key"]
        return web.json_response({"error": f"bad value in request with key {key}"}, status=400)

    async def unauthorized(request: web.Request) -> web.Response:
        return web.Response(status=401, text=f"key {request.headers['x-api-key']} is not valid")

    async with OddServer([("POST", "/v2/m", echo), ("GET", "/v1/get-user-credits", unauthorized)]) as api:
        c = client(session, api.base_url)
        with pytest.raises(JobFailed) as failed:
            await c.submit("m", PARAMS)
        with pytest.raises(Fatal) as fatal:
            await c.credits()
    for exc in (failed.value, fatal.value):
        text = "".join(traceback.format_exception(exc)) + repr(exc)
        assert KEY not in text
        assert "[redacted]" in str(exc)
    assert KEY not in failed.value.error


@pytest.mark.parametrize(
    ("headers", "delay"),
    [({"Retry-After": "7"}, 7.0), ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0), ({}, None)],
)
async def test_retry_after_alone_is_honoured(
    session: aiohttp.ClientSession, headers: dict[str, str], delay: float | None
) -> None:
    async def limited(request: web.Request) -> web.Response:
        return web.json_response({"error": "slow down"}, status=429, headers=headers)

    async with OddServer([("GET", "/v1/get-user-credits", limited)]) as api:
        with pytest.raises(RateLimited) as caught:
            await client(session, api.base_url).credits()
    assert caught.value.delay_s == delay


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [(403, {"error": "Model not enabled"}, "forbidden"), (410, {"error": "gone"}, "model")],
)
async def test_fatal_statuses_on_submit(
    session: aiohttp.ClientSession, status: int, body: dict[str, str], kind: str
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response(body, status=status)

    async with OddServer([("POST", "/v2/m", answer)]) as api:
        with pytest.raises(Fatal) as caught:
            await client(session, api.base_url).submit("m", PARAMS)
    assert caught.value.kind == kind


async def test_a_session_with_a_default_key_header_is_refused() -> None:
    async with aiohttp.ClientSession(headers={"X-Api-Key": KEY}) as leaky:
        with pytest.raises(ValueError, match="default x-api-key"):
            ApiClient(leaky, api_key=KEY)


async def test_repr_never_shows_the_key(session: aiohttp.ClientSession) -> None:
    c = client(session, "http://127.0.0.1:9")
    assert KEY not in repr(c)
    assert KEY not in str(c)


async def test_a_submit_stuck_waiting_for_a_pooled_connection_is_transient() -> None:
    arrived = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        arrived.set()
        await api.release.wait()
        return web.json_response({"status": "PROCESSING"})

    async def never(request: web.Request) -> web.Response:
        raise AssertionError("the submit must not have been sent")

    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as one_connection,
        OddServer([("GET", "/v2/requests/r1", hang), ("POST", "/v2/m", never)]) as api,
        asyncio.TaskGroup() as tg,
    ):
        patient = client(one_connection, api.base_url, timeout_s=30.0)
        holder = tg.create_task(patient.result(f"{api.base_url}/v2/requests/r1"))
        await arrived.wait()  # the only connection is now busy
        hurried = client(one_connection, api.base_url, timeout_s=0.4)
        with pytest.raises(Transient) as caught:
            await hurried.submit("m", PARAMS)
        assert not isinstance(caught.value, Ambiguous)  # it never left: safe to retry
        api.release.set()
        assert (await holder).status == "PROCESSING"
    assert [s.method for s in api.seen] == ["GET"]

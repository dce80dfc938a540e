"""The HTTP face of the emulator: routes of segmind-v2.md plus ``/_emulator/*`` introspection.

Each handler follows the same order: authenticate, count, quota, inject a fault, then the real work.
Submit faults of the 5xx kind happen before the job exists (nothing billed); "drop" happens after the
work is done (a dropped submit IS created and billed), which is what makes a submit timeout ambiguous.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web

from batchflux.emulator.core import EmulatorCore, Rejection
from batchflux.emulator.history import HISTORY_PATH
from batchflux.emulator.jobs import PROCESSING, QUEUED
from batchflux.emulator.media import mime_for_ext, parse_data_url
from batchflux.emulator.wire import (
    drop_connection,
    iso_utc,
    json_error,
    json_ok,
    plain_error,
    server_fault,
    truncated,
)

CLIENT_MAX_SIZE = 30 * 1024 * 1024
CORE: web.AppKey[EmulatorCore] = web.AppKey("core", EmulatorCore)
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _core(request: web.Request) -> EmulatorCore:
    return request.app[CORE]


def _base(request: web.Request) -> str:
    """Absolute URLs point at this server as bound, or as addressed when bound to a wildcard."""
    core = _core(request)
    if core.config.host in _WILDCARD_HOSTS:
        return f"{request.scheme}://{request.host}"
    return core.base_url


def _unauthorized(core: EmulatorCore, request: web.Request) -> web.Response | None:
    if core.authorized(request.headers.get("x-api-key")):
        return None
    core.counters.unauthorized += 1
    return json_error(401, "Unauthorized: missing or invalid x-api-key")


def _rate_limited(core: EmulatorCore, key: str, kind: str) -> web.Response | None:
    decision = core.take_quota(key, kind)
    if decision.allowed:
        return None
    headers = {"x-rate-limit-reset-at-utc": iso_utc(core.unix(decision.reset_at))}
    if core.config.retry_after:
        headers["Retry-After"] = str(max(1, math.ceil(decision.reset_at - core.clock())))
    return json_error(429, "Rate limit exceeded", headers)


def _wrong_content_type(request: web.Request) -> web.Response | None:
    if request.content_type == "application/json":
        return None
    return plain_error(406, "Invalid content type")


async def _read_json(request: web.Request) -> tuple[Any, web.Response | None]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return None, json_error(413, f"Request body larger than {CLIENT_MAX_SIZE} bytes")
    try:
        return json.loads(raw), None
    except (ValueError, RecursionError):
        return None, json_error(400, "Malformed JSON body")


Work = Callable[[], Awaitable[web.Response]]


async def _with_faults(
    request: web.Request, endpoint: str, work: Work, *, truncatable: bool = False
) -> web.StreamResponse:
    """Run ``work`` under this request's fault, if one is drawn; every drawn fault is applied.

    5xx replaces the work entirely (nothing happens); "drop" and "truncate" break the response the
    work produced, after its effects (a dropped submit exists and is billed).
    """
    fault = _core(request).roll_fault(endpoint, truncatable=truncatable)
    if fault in ("500", "502", "504"):
        return server_fault(fault)
    response = await work()
    if fault == "drop":
        return drop_connection(request)
    if fault == "truncate" and isinstance(response.body, bytes):
        return await truncated(request, response.body, response.headers[hdrs.CONTENT_TYPE])
    return response


async def submit(request: web.Request) -> web.StreamResponse:
    core = _core(request)
    if (denied := _unauthorized(core, request)) is not None:
        return denied
    key = request.headers["x-api-key"]
    if (denied := _rate_limited(core, key, "submit")) is not None:
        return denied
    if (denied := _wrong_content_type(request)) is not None:
        return denied

    async def work() -> web.Response:
        slug = request.match_info["slug"]
        if not _SLUG.match(slug):
            return json_error(404, f"Model {slug[:64]!r} not found")
        body, bad = await _read_json(request)
        if bad is not None:
            return bad
        outcome = core.submit(key, slug, body)
        if isinstance(outcome, Rejection):
            if outcome.plain:
                return plain_error(outcome.status, outcome.message)
            return json_error(outcome.status, outcome.message)
        if core.config.submit_hold_s > 0:  # created and billed; the answer waits
            await asyncio.sleep(core.config.submit_hold_s)
        base = _base(request)
        status_url = f"{base}/v2/requests/{outcome.request_id}/status"
        return json_ok(
            {
                "request_id": outcome.request_id,
                "status": "QUEUED",
                "poll_url": status_url,
                "status_url": status_url,
                "response_url": f"{base}/v2/requests/{outcome.request_id}",
            }
        )

    return await _with_faults(request, "submit", work)


async def _poll(request: web.Request, endpoint: str) -> web.StreamResponse:
    core = _core(request)
    if (denied := _unauthorized(core, request)) is not None:
        return denied
    key = request.headers["x-api-key"]
    if endpoint == "status":
        core.counters.status_calls += 1
    else:
        core.counters.result_calls += 1
    if core.config.count_polls and (denied := _rate_limited(core, key, "poll")) is not None:
        return denied

    async def work() -> web.Response:
        request_id = request.match_info["request_id"]
        record = core.lookup(key, request_id)
        if record is None:
            return json_error(404, f"Request {request_id[:100]} not found")
        now = core.clock()
        if endpoint == "status":
            record.status_calls += 1
            code, body = record.status_body(now)
        else:
            record.result_calls += 1
            code, body = record.result_body(now, core.output_url(_base(request), record))
            if body["status"] in (QUEUED, PROCESSING) and core.config.result_pending == "404":
                return json_error(404, f"Request {request_id[:100]} not found")
            if "output" in body:
                await core.output_bytes(record)  # render now: the sha256 is known once the URL is out
        return json_ok(body, status=code)

    return await _with_faults(request, endpoint, work)


async def status(request: web.Request) -> web.StreamResponse:
    return await _poll(request, "status")


async def result(request: web.Request) -> web.StreamResponse:
    return await _poll(request, "result")


async def upload(request: web.Request) -> web.StreamResponse:
    core = _core(request)
    if (denied := _unauthorized(core, request)) is not None:
        return denied
    core.counters.upload_calls += 1
    if (denied := _wrong_content_type(request)) is not None:
        return denied

    async def work() -> web.Response:
        body, bad = await _read_json(request)
        if bad is not None:
            return bad
        items = body.get("data_urls") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return json_error(400, 'Body must be {"data_urls": ["data:<mime>;base64,...", ...]}')
        names: list[str] = []
        for i, item in enumerate(items):
            parsed = parse_data_url(item) if isinstance(item, str) else None
            if parsed is None or not parsed.data:
                return json_error(400, f"data_urls[{i}] is not a base64 data URL")
            names.append(core.media.add_upload(parsed))
        urls = [f"{core.media_base(_base(request))}/media/uploads/{name}" for name in names]
        return json_ok({"urls": urls, "file_urls": urls, "message": "Files uploaded successfully"})

    return await _with_faults(request, "upload", work)


async def credits(request: web.Request) -> web.StreamResponse:
    core = _core(request)
    if (denied := _unauthorized(core, request)) is not None:
        return denied
    core.counters.credits_calls += 1

    async def work() -> web.Response:
        return json_ok({"credits": core.credits_left(), "free-credits": 0.0})

    return await _with_faults(request, "credits", work)


def _history_outage(core: EmulatorCore) -> web.Response | None:
    """The configured outage of the request history, if any: the same answer to every call."""
    outage = core.config.history_outage
    if outage is None:
        return None
    if outage == "404":
        return json_error(404, "Not Found")
    if outage in ("500", "502"):
        return server_fault(outage)
    return json_ok({"ok": True, "result": {"count": len(core.jobs), "cursor": None}})


HistoryAnswer = Callable[[EmulatorCore, str], web.Response]


async def _history(request: web.Request, counter: str, answer: HistoryAnswer) -> web.StreamResponse:
    """Both history endpoints: authenticate, count, quota (when polls count), the outage knob and
    the injected faults, then ``answer(core, key)``."""
    core = _core(request)
    if (denied := _unauthorized(core, request)) is not None:
        return denied
    key = request.headers["x-api-key"]
    setattr(core.counters, counter, getattr(core.counters, counter) + 1)
    if core.config.count_polls and (denied := _rate_limited(core, key, "history")) is not None:
        return denied

    async def work() -> web.Response:
        down = _history_outage(core)
        return down if down is not None else answer(core, key)

    return await _with_faults(request, "history", work)


async def history_list(request: web.Request) -> web.StreamResponse:
    def answer(core: EmulatorCore, key: str) -> web.Response:
        page = core.history_page(key, dict(request.query), _base(request))
        return json_error(400, page) if isinstance(page, str) else json_ok(page)

    return await _history(request, "history_calls", answer)


async def history_record(request: web.Request) -> web.StreamResponse:
    def answer(core: EmulatorCore, key: str) -> web.Response:
        request_id = request.match_info["request_id"]
        row = core.history_record(key, request_id, _base(request))
        return json_error(404, f"Request {request_id[:100]} not found") if row is None else json_ok(row)

    return await _history(request, "history_record_calls", answer)


MediaFetch = Callable[[], Awaitable[tuple[bytes, str] | None]]


async def _serve_media(request: web.Request, fetch: MediaFetch) -> web.StreamResponse:
    core = _core(request)
    core.counters.media_calls += 1
    if "x-api-key" in request.headers:
        core.counters.media_with_key += 1

    async def work() -> web.Response:
        found = await fetch()
        if found is None:
            return json_error(404, "File not found")
        data, content_type = found
        return web.Response(body=data, content_type=content_type)

    return await _with_faults(request, "media", work, truncatable=request.method != hdrs.METH_HEAD)


async def media_output(request: web.Request) -> web.StreamResponse:
    core = _core(request)

    async def fetch() -> tuple[bytes, str] | None:
        record = core.completed_output(request.match_info["request_id"], request.match_info["ext"])
        if record is None:
            return None
        return await core.output_bytes(record), mime_for_ext(record.ext)

    return await _serve_media(request, fetch)


async def media_upload(request: web.Request) -> web.StreamResponse:
    core = _core(request)

    async def fetch() -> tuple[bytes, str] | None:
        name = request.match_info["name"]
        data = core.media.upload(name)
        return None if data is None else (data, mime_for_ext(name.rsplit(".", 1)[-1]))

    return await _serve_media(request, fetch)


async def emulator_stats(request: web.Request) -> web.StreamResponse:
    return json_ok(_core(request).stats())


async def emulator_request(request: web.Request) -> web.StreamResponse:
    request_id = request.match_info["request_id"]
    info = _core(request).request_info(request_id)
    if info is None:
        return json_error(404, f"Request {request_id[:100]} not found")
    return json_ok(info)


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own 4xx (unknown path, wrong method, body too large) as ``{"error": ...}``."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {h: v for h, v in exc.headers.items() if h.lower() == "allow"}
        return json_error(exc.status, exc.reason, headers)


def _add_media_routes(app: web.Application) -> None:
    app.router.add_get("/media/uploads/{name}", media_upload)
    app.router.add_get(r"/media/{request_id:[0-9A-Za-z-]+}.{ext:png|jpg}", media_output)


def make_media_app(core: EmulatorCore) -> web.Application:
    """The media host alone (``media_port``): output files and uploads."""
    app = web.Application(middlewares=[errors_as_json])
    app[CORE] = core
    _add_media_routes(app)
    return app


def make_app(core: EmulatorCore) -> web.Application:
    app = web.Application(client_max_size=CLIENT_MAX_SIZE, middlewares=[errors_as_json])
    app[CORE] = core
    app.router.add_post("/v2/{slug}", submit)
    app.router.add_get("/v2/requests/{request_id}/status", status)
    app.router.add_get("/v2/requests/{request_id}", result)
    app.router.add_post("/upload-asset", upload)
    app.router.add_get("/v1/get-user-credits", credits)
    app.router.add_get(HISTORY_PATH, history_list)
    app.router.add_get(HISTORY_PATH + "/{request_id}", history_record)
    _add_media_routes(app)  # also here when the media host has a port of its own: old URLs still work
    app.router.add_get("/_emulator/stats", emulator_stats)
    app.router.add_get("/_emulator/requests/{request_id}", emulator_request)
    return app

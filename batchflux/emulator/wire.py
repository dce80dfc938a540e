"""Response shapes the real API uses, and the two ways a response can break on the wire."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

_HTML_5XX = {
    502: "502 Bad Gateway",
    504: "504 Gateway Time-out",
}


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def plain_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain")


def server_fault(kind: str) -> web.Response:
    """An injected 5xx: JSON for 500, an nginx-style HTML page for 502/504."""
    if kind == "500":
        return json_error(500, "Internal server error")
    status = int(kind)
    title = _HTML_5XX[status]
    html = f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
    return web.Response(status=status, text=html + "</body>\r\n</html>\r\n", content_type="text/html")


def iso_utc(unix: float) -> str:
    """ISO-8601 UTC with milliseconds, never earlier than ``unix`` (a client may wake exactly then)."""
    millis = math.ceil(unix * 1000)
    stamp = datetime.fromtimestamp(millis / 1000, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def drop_connection(request: web.Request) -> web.Response:
    """Send the start of a response's headers, then close the socket: the client sees a disconnect.

    The returned response is never delivered; aiohttp notices the closed transport and moves on.
    """
    transport = request.transport
    if transport is not None and not transport.is_closing():
        transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: applic")
        transport.close()
    return web.Response(status=200)


async def truncated(request: web.Request, body: bytes, content_type: str) -> web.StreamResponse:
    """Promise ``len(body)`` bytes in Content-Length, send half, then close the socket."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    resp.content_length = len(body)
    await resp.prepare(request)
    await resp.write(body[: len(body) // 2])
    transport = request.transport
    if transport is not None:
        transport.close()
    return resp


def json_ok(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)

"""The review server: an aiohttp app on 127.0.0.1, every path behind a random token.

| path                 | what                                                                  |
|----------------------|-----------------------------------------------------------------------|
| ``GET /``            | the page (the ledgers read again first if a run changed them)         |
| ``GET /favicon.svg`` | the tab's icon (a browser asks for one; better ours than a 403)       |
| ``GET /img``         | ``k`` a job's key, ``w`` ``it``/``ot`` thumbnail or ``ih``/``oh`` full |
| ``GET /api/verdicts``| ``since`` the version the page has: 204 if nothing changed, else every |
|                      | verdict and whether a run has changed the ledgers since the page loaded |
| ``POST /api/verdict``| ``{k, rid, verdict, note}``: record it; answers ``{verdict, note}``     |

Safety, in one place:
- bound to 127.0.0.1 only; the token (``secrets.token_urlsafe``) comes as ``?token=`` or the
  ``X-Batchflux-Token`` header, compared in constant time; without it every path answers 403;
- a ``Host`` other than this server's own (DNS rebinding) is refused, and so is a state-changing
  request whose ``Origin`` is not this server's or that is not JSON (no form can post one);
- images are served only as the model names them (a job's input or output, or its thumbnail),
  never a path from the request;
- every answer carries ``no-store``, ``nosniff``, ``no-referrer`` and, for the page, a strict CSP.
  The page holds no API key: the server never reads one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import secrets
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from batchflux.files.durable import WriteFailed
from batchflux.files.layout import THUMB_DIRNAME
from batchflux.report.thumbs import ensure_thumb
from batchflux.review.images import StoredImages
from batchflux.review.page import csp, render_review
from batchflux.review.session import Refused, ReviewSession
from batchflux.rundir.store import StoreUnavailable

log = logging.getLogger("batchflux.review")

TOKEN_HEADER = "X-Batchflux-Token"
SHIP_EVERY_S = 2.0  # how often verdicts reach a bucket run directory while the page is served
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION: web.AppKey[ReviewSession] = web.AppKey("session", ReviewSession)
TOKEN: web.AppKey[str] = web.AppKey("token", str)
PORT: web.AppKey[list[int]] = web.AppKey("port", list)  # [port], known once the site is bound


def make_app(session: ReviewSession, token: str) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=64 * 1024)
    app[SESSION] = session
    app[TOKEN] = token
    app[PORT] = []
    app.router.add_get("/", page)
    app.router.add_get("/img", image)
    app.router.add_get("/favicon.svg", favicon)
    app.router.add_get("/api/verdicts", verdicts)
    app.router.add_post("/api/verdict", give)
    return app


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    given = request.query.get("token") or request.headers.get(TOKEN_HEADER) or ""
    if not secrets.compare_digest(given.encode(), app[TOKEN].encode()):
        return _forbidden("a valid token is needed: use the URL batchflux review printed")
    port = app[PORT][0] if app[PORT] else None
    own = {f"127.0.0.1:{port}", f"localhost:{port}"}
    if port is not None and request.host not in own:
        return _forbidden("this server answers only on 127.0.0.1")
    if request.method not in ("GET", "HEAD"):
        origin = request.headers.get("Origin")
        if origin is not None and origin not in {f"http://{h}" for h in own}:
            return _forbidden("a request from another site")
        if request.content_type != "application/json":
            return _forbidden("verdicts come as JSON")
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = web.Response(status=exc.status, text=exc.text)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _forbidden(why: str) -> web.Response:
    return web.Response(
        status=403,
        text=f"403 forbidden: {why}\n",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


async def in_session(session: ReviewSession, call: Callable[[], T]) -> T:
    """Run ``call`` in a worker thread (it reads files), holding the session's lock."""

    def locked() -> T:
        with session.lock:
            return call()

    return await asyncio.to_thread(locked)


async def page(request: web.Request) -> web.Response:
    session = request.app[SESSION]
    token = request.app[TOKEN]
    nonce = secrets.token_urlsafe(18)

    def render() -> str:
        session.reload_if_changed()
        return render_review(
            title=session.model.title,
            out_dirs=[rd.path for rd in session.model.dirs],
            cards=session.cards(token),
            counts=session.counts(),
            token=token,
            version=session.version,
            nonce=nonce,
        )

    html = await in_session(session, render)
    return web.Response(text=html, content_type="text/html", headers={"Content-Security-Policy": csp(nonce)})


FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<rect width="16" height="16" rx="3" fill="#1d2330"/><path d="M4 8.5l2.5 2.5L12 5" stroke="#1f9d55" '
    'stroke-width="2" fill="none"/></svg>'
)


async def favicon(request: web.Request) -> web.Response:
    return web.Response(text=FAVICON, content_type="image/svg+xml")


async def image(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSION]
    row = session.model.by_key.get(request.query.get("k", ""))  # one read of a reference: no lock
    which = request.query.get("w", "")
    if row is None or which not in ("it", "ih", "ot", "oh"):
        raise web.HTTPNotFound(text="no such image")
    src = row.input_path if which[0] == "i" else row.output_path
    if src is not None and which[0] == "o" and session.images is not None:
        try:
            src = await asyncio.to_thread(session.images.fetch, src)
        except StoreUnavailable as exc:
            raise web.HTTPServiceUnavailable(text=str(exc)) from None
    if src is None or not src.is_file():
        raise web.HTTPNotFound(text="no such image")
    path: Path | None = src
    if which[1] == "t":
        path = await asyncio.to_thread(ensure_thumb, src, row.out_dir / THUMB_DIRNAME)
    if path is None:
        raise web.HTTPNotFound(text="no preview")
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if not kind.startswith("image/"):
        kind = "application/octet-stream"
    return web.FileResponse(path, headers={"Content-Type": kind})


async def verdicts(request: web.Request) -> web.Response:
    session = request.app[SESSION]
    since = request.query.get("since")

    def state() -> dict[str, Any] | None:
        session.refresh_verdicts()
        stale = session.ledgers_changed
        if since == str(session.version) and not stale:
            return None
        return {"version": session.version, "verdicts": session.verdicts(), "stale": stale}

    body = await in_session(session, state)
    return web.Response(status=204) if body is None else web.json_response(body)


async def give(request: web.Request) -> web.Response:
    session = request.app[SESSION]
    try:
        body: Any = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("k"), str):
        raise web.HTTPBadRequest(text="expected {k, rid, verdict, note}")
    try:
        given = await in_session(
            session, lambda: session.give(body["k"], body.get("rid"), body.get("verdict"), body.get("note"))
        )
    except Refused as exc:
        return web.Response(status=exc.status, text=str(exc))
    except WriteFailed as exc:
        log.error("review: %s", exc)
        return web.Response(status=507, text=str(exc))
    return web.json_response({"verdict": given.verdict, "note": given.note, "version": given.version})


async def serve(
    out_dirs: Sequence[Path],
    *,
    port: int = 0,
    ready: Callable[[str], None],
    stop: asyncio.Event,
    token: str | None = None,
    ship: Callable[[], None] | None = None,
    ship_every_s: float = SHIP_EVERY_S,
    images: StoredImages | None = None,
) -> None:
    """Serve until ``stop`` is set; ``ready`` gets the page's URL once the port is bound. ``ship``
    (a bucket's review log merged with the spool's) is called every ``ship_every_s`` and at the
    stop, holding the session's lock so no verdict is appended meanwhile; a failure on the way is
    logged and tried again, the one at the stop is raised. ``images``: the output images a bucket
    holds, fetched into the spool when the page shows them."""
    session = await asyncio.to_thread(ReviewSession, out_dirs, images)
    token = token or secrets.token_urlsafe(24)
    app = make_app(session, token)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        bound = runner.addresses[0][1]
        app[PORT].append(bound)
        ready(f"http://127.0.0.1:{bound}/?token={token}")
        if ship is None:
            await stop.wait()
            return
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ship_every_s)
            if stop.is_set():
                break
            try:
                await in_session(session, ship)
            except StoreUnavailable as exc:
                log.warning("%s (the verdicts are kept here; tried again shortly)", exc)
    finally:
        await runner.cleanup()
    if ship is not None:
        await in_session(session, ship)

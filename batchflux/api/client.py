"""The one place batchflux talks HTTP to Segmind: submit, status, result, upload, credits, media,
and the account's request history.

The client knows no file: :meth:`ApiClient.media` yields an image's bytes, and
:mod:`batchflux.files.download` verifies and writes them.

Every call has a timeout, every answer is read in full (capped) and turned into a value or one
of the typed errors drawn in :mod:`batchflux.api.errors`; aiohttp and asyncio exceptions are
mapped here, once, ``raise X from exc``. The client never retries: what to do next is
:mod:`batchflux.api.policy`'s and the engine's call.

The key. The caller's session carries no default headers (checked); ``x-api-key`` is added per
request and only when the URL's scheme, host and port equal the API base's, the upload URL's or
the request history's: three trusted origins. Status and response URLs come from the server and
are used as given, but one that points anywhere else raises ``Fatal(kind="foreign_host")``
instead of being fetched without the key (it would only 401) or with it (a leak): the run stops
and says which host.
Redirects are never followed on API calls, because aiohttp would carry the header along.
Server-supplied text in error messages is scrubbed of the key.

Submits are not idempotent. A submit failure is ``Transient`` only when the request cannot have
been accepted (the connection was never made, or the server answered 5xx); anything that may
have reached the server without a usable answer is ``Ambiguous``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from yarl import URL

from batchflux.api.errors import Ambiguous, ApiError, Fatal, HistoryUnavailable, JobFailed, Transient
from batchflux.api.history import HistoryPage, HistoryQuery, HistoryRow, page_from, record_from
from batchflux.api.media import MediaGet
from batchflux.api.replies import (
    JobResult,
    JobStatus,
    Reply,
    Submission,
    accepted,
    credits_from,
    failure_for,
    job_result_from,
    job_status_from,
    redact,
    submission_from,
    uploaded_url,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL: Final = "https://api.segmind.com"
DEFAULT_UPLOAD_URL: Final = "https://workflows-api.segmind.com/upload-asset"
DEFAULT_HISTORY_URL: Final = "https://api.spotprod.segmind.com/inference-request/request-history"
HISTORY_PATH: Final = "inference-request/request-history"
MAX_REPLY_BYTES: Final = 4 * 2**20  # API answers are a few hundred bytes; anything this big is not one
_KEY_HEADER: Final = "x-api-key"
_JSON_HEADERS: Final = {"Content-Type": "application/json", "Accept": "application/json"}


Origin = tuple[str, str, int]


def origin_of(url: URL) -> Origin | None:
    """(scheme, host, port) with the scheme's default port filled in; None for a URL without one."""
    if not url.is_absolute() or url.host is None or url.port is None:
        return None
    return (url.scheme.lower(), url.host.lower().rstrip("."), url.port)


class ApiClient:
    """Segmind's async v2 API over one caller-owned ``aiohttp.ClientSession``.

    ``calls`` counts every attempt per kind (submit, status, result, upload, credits, media,
    history, history_record), failures included.

    Endpoints: ``upload_url`` and ``history_url`` default to Segmind's hosts when ``base_url`` is
    Segmind's, and to ``{base}/upload-asset`` and ``{base}/inference-request/request-history``
    when only ``base_url`` is changed, so one emulator serves everything.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        upload_url: str | None = None,
        history_url: str | None = None,
        timeout_s: float = 30.0,
        media_max_bytes: int = 50 * 2**20,
        media_concurrency: int = 16,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if _KEY_HEADER in session.headers:
            raise ValueError(
                "the session must not carry a default x-api-key header (it would leak to media hosts)"
            )
        if not api_key:
            raise ValueError("an API key is required")
        self._session = session
        self._key = api_key
        self._scrubbing = _Scrubbing(api_key)
        self._base = _api_base(base_url)
        if upload_url is None:
            upload_url = (
                DEFAULT_UPLOAD_URL if self._base == URL(DEFAULT_BASE_URL) else f"{self._base}/upload-asset"
            )
        self._upload = URL(upload_url)
        default_base = self._base == URL(DEFAULT_BASE_URL)
        if history_url is None:
            history_url = DEFAULT_HISTORY_URL if default_base else f"{self._base}/{HISTORY_PATH}"
        self._history = URL(history_url.strip().rstrip("/"))
        origins = [origin_of(self._base), origin_of(self._upload), origin_of(self._history)]
        if None in origins:
            raise ValueError("base_url, upload_url and history_url must be absolute http(s) URLs")
        base_origin = origins[0]
        assert base_origin is not None
        self._base_origin: Origin = base_origin
        self._trusted: frozenset[Origin] = frozenset(o for o in origins if o is not None)
        # ``connect`` covers waiting for a pooled connection and opening one; it expires first, as a
        # ConnectionTimeoutError, so a submit that never left is told apart from one that did.
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=timeout_s / 2)
        self._media_max_bytes = media_max_bytes
        self._wall_clock = wall_clock
        self.calls: Counter[str] = Counter()
        self._media_slots = asyncio.Semaphore(media_concurrency)  # media GETs under way

    @property
    def base_url(self) -> str:
        return str(self._base)

    @property
    def upload_url(self) -> str:
        return str(self._upload)

    @property
    def history_url(self) -> str:
        return str(self._history)

    def __repr__(self) -> str:  # never the key
        return (
            f"ApiClient(base_url={str(self._base)!r}, upload_url={str(self._upload)!r}, "
            f"history_url={str(self._history)!r})"
        )

    # -- the calls -------------------------------------------------------------------------------

    async def submit(self, model: str, params: Mapping[str, Any]) -> Submission:
        """POST ``{base}/v2/{model}`` with ``params`` flat in a JSON object."""
        with self._scrubbing:
            url = self._base.joinpath("v2", *model.strip("/").split("/"))
            reply = await self._call("submit", "POST", url, _encode(params))
            return submission_from(reply, self._base)

    async def status(self, status_url: str) -> JobStatus:
        """GET the status URL the submit returned."""
        with self._scrubbing:
            reply = await self._call("status", "GET", self._api_url(status_url, "status"))
            return job_status_from(reply)

    async def result(self, response_url: str) -> JobResult:
        """GET the response URL the submit returned."""
        with self._scrubbing:
            reply = await self._call("result", "GET", self._api_url(response_url, "result"))
            return job_result_from(reply)

    async def upload(self, data_url: str) -> str:
        """Upload one ``data:`` URI to Segmind storage; returns the hosted file's URL."""
        with self._scrubbing:
            reply = await self._call("upload", "POST", self._upload, _encode({"data_urls": [data_url]}))
            return uploaded_url(reply)

    async def credits(self) -> float:
        """The account's credits (paid plus free)."""
        with self._scrubbing:
            reply = await self._call("credits", "GET", self._base.joinpath("v1", "get-user-credits"))
            return credits_from(reply)

    async def history(self, query: HistoryQuery) -> HistoryPage:
        """One page of the account's request history (:mod:`batchflux.api.history`)."""
        with self._scrubbing:
            reply = await self._call("history", "GET", self._history.with_query(query.params()))
            return page_from(reply.json(), query)

    async def history_record(self, request_id: str) -> HistoryRow | None:
        """One of the account's requests, of any age; ``None`` when the history has no such record
        (a 404) — or when ``request_id`` could not name one."""
        if request_id in ("", ".", ".."):
            return None
        url = self._history.joinpath(quote(request_id, safe=""), encoded=True)
        with self._scrubbing:
            try:
                reply = await self._call("history_record", "GET", url)
            except HistoryUnavailable as exc:
                if exc.status == 404:
                    return None
                raise
            return record_from(reply.json())

    def submission_for(self, request_id: str) -> Submission:
        """The status and response URLs of a request whose submit answer was never heard (a request
        found in the history): the v2 API's own, under the API base."""
        request = self._base.joinpath("v2", "requests", quote(request_id, safe=""), encoded=True)
        return Submission(
            request_id=request_id, status_url=str(request / "status"), response_url=str(request)
        )

    def media(self, url: str, *, timeout_s: float = 120.0) -> MediaGet:
        """GET a result's media (the ``output`` URL) from the public media host, never with the key:
        ``async with client.media(url) as body: async for chunk in body.chunks(): ...``. At most
        ``media_concurrency`` are under way at once. Counted as ``media``; see :mod:`batchflux.api.media`."""
        self.calls["media"] += 1
        return MediaGet(
            self._session, url, slots=self._media_slots, max_bytes=self._media_max_bytes, timeout_s=timeout_s
        )

    # -- plumbing --------------------------------------------------------------------------------

    def _api_url(self, raw: str, op: str) -> URL:
        try:
            url = URL(raw)
        except (TypeError, ValueError) as exc:
            raise Fatal(f"{op}: unusable URL from the API: {raw!r}", kind="config", op=op) from exc
        if origin_of(url) != self._base_origin:
            host = url.host or raw
            raise Fatal(
                f"{op}: the API pointed at another host ({url.scheme}://{host}); "
                f"not sending the API key there. Is --base-url right?",
                kind="foreign_host",
                op=op,
            )
        return url

    async def _call(self, op: str, method: str, url: URL, payload: bytes | None = None) -> Reply:
        """One HTTP exchange, read in full. Transport failures are mapped here; statuses by the caller."""
        self.calls[op] += 1
        headers = dict(_JSON_HEADERS) if payload is not None else {"Accept": "application/json"}
        if origin_of(url) in self._trusted:
            headers[_KEY_HEADER] = self._key
        try:
            async with self._session.request(
                method, url, data=payload, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as resp:
                body = await _read_capped(resp, MAX_REPLY_BYTES)
                reply = Reply(
                    op=op,
                    status=resp.status,
                    body=body,
                    reset_at=resp.headers.get("x-rate-limit-reset-at-utc"),
                    retry_after=resp.headers.get("Retry-After"),
                    location=resp.headers.get("Location"),
                    now_unix=self._wall_clock(),
                )
        except _TooLarge as exc:
            raise self._transport_error(op, f"answer larger than {MAX_REPLY_BYTES} bytes") from exc
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            raise Transient(f"{op}: could not connect: {exc}", op=op) from exc
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
            raise Fatal(f"{op}: invalid URL {url.host or ''}{url.path}", kind="config", op=op) from exc
        except TimeoutError as exc:
            raise self._transport_error(op, "timed out") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self._transport_error(op, f"connection failed: {type(exc).__name__}: {exc}") from exc
        log.debug("%s %s %s -> %d", op, method, url.path, reply.status)
        if not accepted(reply):
            raise failure_for(reply)
        return reply

    @staticmethod
    def _transport_error(op: str, what: str) -> ApiError:
        """A failure after the request may have left: ambiguous for a submit, transient otherwise."""
        if op == "submit":
            return Ambiguous(f"submit: {what}; the request may have been accepted", op=op)
        return Transient(f"{op}: {what}", op=op)


class _Scrubbing:
    """``with`` block: whatever ApiError leaves it, its message holds no trace of the key.
    A class rather than a generator-based context manager: it wraps every call."""

    __slots__ = ("_key",)

    def __init__(self, key: str) -> None:
        self._key = key

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, ApiError):
            _scrub(exc, self._key)


class _TooLarge(Exception):
    pass


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    if resp.content_length is not None:
        if resp.content_length > cap:
            raise _TooLarge
        return await resp.read()
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_any():
        total += len(chunk)
        if total > cap:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _scrub(exc: ApiError, key: str) -> None:
    exc.message = redact(exc.message, key)
    exc.args = tuple(redact(a, key) if isinstance(a, str) else a for a in exc.args)
    if isinstance(exc, JobFailed):
        exc.error = redact(exc.error, key)


def _api_base(base_url: str) -> URL:
    """The API root, without a trailing slash or an SDK-style ``/v1``/``/v2`` suffix."""
    text = base_url.strip().rstrip("/")
    for suffix in ("/v1", "/v2"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    return URL(text)


_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _encode(params: Mapping[str, Any]) -> bytes:
    return _ENCODER.encode(dict(params)).encode()

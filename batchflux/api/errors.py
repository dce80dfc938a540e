"""The typed errors of the API boundary: everything that can go wrong talking to Segmind.

The client (:mod:`batchflux.api.client`) and the downloader (:mod:`batchflux.files.download`) map every
HTTP status and every aiohttp/asyncio exception to exactly one of these, once, with
``raise X from exc``; nothing above them sees an aiohttp type. What each means for the engine::

    ApiError                     base; str()/repr() never contain the API key
    ├── RateLimited              429 on any call: pause every caller ``delay_s`` (None: back off)
    ├── Transient                retry with backoff, bounded: 5xx (HTML bodies too), transport
    │                            error or timeout on a GET/upload, malformed 2xx body on a GET;
    │                            on submit only when the server cannot have accepted the request
    │                            (connect failed/refused/timed out, or a 5xx answer)
    ├── Ambiguous                submit only: sent (or maybe sent) and no usable answer: timeout
    │                            after sending, connection dropped, unreadable 2xx; may be billed
    ├── JobFailed                the job is over: 400/413/422 at submit, a FAILED body (HTTP 422)
    │                            on status/result; ``cause`` moderation | invalid | server
    ├── Expired                  404 on status/result: the request's record is gone (1 h)
    ├── Fatal                    stop the run; ``kind``: auth (401), forbidden (403), model (404 on
    │                            submit, 410), content_type (406), foreign_host (a status/result
    │                            URL off the API's host), redirect (3xx from the API), not_found
    │                            (404 on upload/credits), config (unusable URL)
    ├── OutOfCredits             406 insufficient credits: stop submitting, drain what is in flight
    ├── HistoryUnavailable       the request history cannot answer usefully: a 4xx other than
    │                            401/403/429 (404 included: no such record, or no such endpoint),
    │                            a 3xx, an answer of an unknown shape; fall back to what is done
    │                            without it. (5xx and transport errors there are Transient; 401
    │                            and 403 Fatal, as everywhere.)
    └── DownloadError            media download failed; ``retryable`` (truncated, 5xx, timeout…)
                                 or not (over the size cap, not the image format asked for)

Messages carry the call kind, HTTP status and the server's error text (redacted of the key by
the client), never headers.
"""

from __future__ import annotations


class ApiError(Exception):
    """Base of every batchflux API error. ``op`` is the call kind (submit, status, result, …)."""

    def __init__(self, message: str = "", *, op: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.op = op

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class RateLimited(ApiError):
    """HTTP 429. ``delay_s``: seconds until the quota resets, from ``x-rate-limit-reset-at-utc``
    or ``Retry-After``; ``None`` when neither header was there or readable."""

    def __init__(self, message: str = "rate limited", *, delay_s: float | None = None, op: str = "") -> None:
        super().__init__(message, op=op)
        self.delay_s = delay_s


class Transient(ApiError):
    """Safe to retry with backoff. ``status`` is the HTTP status, ``None`` for transport errors."""

    def __init__(self, message: str = "transient error", *, status: int | None = None, op: str = "") -> None:
        super().__init__(message, op=op)
        self.status = status


class Ambiguous(ApiError):
    """A submit that was (or may have been) received, with no usable answer. It may have been
    billed; resubmitting may pay twice. Only ever raised by ``submit``."""

    def __init__(self, message: str = "submit outcome unknown", *, op: str = "submit") -> None:
        super().__init__(message, op=op)


class JobFailed(ApiError):
    """The job failed for good. ``error`` is the server's reason, ``http_status`` the HTTP status
    it came with, ``cause`` one of ``"moderation"``, ``"invalid"``, ``"server"``."""

    def __init__(
        self, error: str, *, http_status: int | None = None, cause: str = "server", op: str = ""
    ) -> None:
        status_part = f"HTTP {http_status}, " if http_status is not None else ""
        super().__init__(f"job failed ({status_part}{cause}): {error}", op=op)
        self.error = error
        self.http_status = http_status
        self.cause = cause


class Expired(ApiError):
    """HTTP 404 on status/result: the request's record has expired (or never existed)."""


class Fatal(ApiError):
    """Stop the run: nothing more will work until the user fixes something. ``kind`` says what."""

    def __init__(self, message: str, *, kind: str, op: str = "") -> None:
        super().__init__(message, op=op)
        self.kind = kind


class OutOfCredits(ApiError):
    """HTTP 406 insufficient credits: submit nothing more, finish what is in flight."""


class HistoryUnavailable(ApiError):
    """The request history gave no usable answer. ``status`` is the HTTP status, ``None`` when
    the answer came but could not be read."""

    def __init__(self, message: str, *, status: int | None = None, op: str = "history") -> None:
        super().__init__(message, op=op)
        self.status = status


class DownloadError(ApiError):
    """A media download failed. ``retryable``: the same URL may well work next time. ``status``:
    the media host's HTTP status when it answered with one other than 200."""

    def __init__(
        self, message: str, *, retryable: bool, op: str = "media", status: int | None = None
    ) -> None:
        super().__init__(message, op=op)
        self.retryable = retryable
        self.status = status

"""What an API answer means: pure functions from a read HTTP reply to a value or a typed error.

The client does the I/O and hands over a :class:`Reply`; everything here is synchronous and
tested with tables. Rules, after segmind-v2.md:

- On status/result a body whose ``status`` is COMPLETED or FAILED is authoritative whatever the
  HTTP code (FAILED comes as 422).
- 429 → RateLimited (delay from ``x-rate-limit-reset-at-utc``, else ``Retry-After``).
- 401/403 → Fatal auth/forbidden; 404 → Fatal model on submit, Expired on status/result;
  406 → OutOfCredits, or Fatal content_type when the text says so; 410 → Fatal model.
- 5xx (and 408, 425) → Transient. Other 4xx: JobFailed on submit/upload (the request itself is
  wrong), Transient on GETs (bounded by the retry budget). 3xx → Fatal redirect.
- A 2xx that cannot be read: Transient on GETs and uploads, Ambiguous on submit (it was accepted).
- The request history (``history``, ``history_record``): 429, 401, 403, 5xx/408/425 as above; any
  other answer that is not a 2xx is HistoryUnavailable (404 included), so its callers fall back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from yarl import URL

from batchflux.api.errors import (
    Ambiguous,
    ApiError,
    Expired,
    Fatal,
    HistoryUnavailable,
    JobFailed,
    OutOfCredits,
    RateLimited,
    Transient,
)
from batchflux.api.policy import classify_failure_text, parse_reset_header, parse_retry_after

NON_TERMINAL: Final = frozenset({"QUEUED", "PROCESSING"})
# Spellings other queue APIs use; unknown states count as PROCESSING (polled again, never lost).
_STATE_ALIASES: Final = {
    "IN_QUEUE": "QUEUED",
    "PENDING": "QUEUED",
    "STARTING": "QUEUED",
    "IN_PROGRESS": "PROCESSING",
    "RUNNING": "PROCESSING",
    "SUCCEEDED": "COMPLETED",
    "SUCCESS": "COMPLETED",
    "ERROR": "FAILED",
    "CANCELLED": "FAILED",
    "CANCELED": "FAILED",
}
_MAX_TEXT = 300  # characters of a server's error text kept in a message
HISTORY_OPS: Final = frozenset({"history", "history_record"})


@dataclass(frozen=True, slots=True)
class Submission:
    """An accepted submit: the request's id and the absolute URLs to poll and fetch it."""

    request_id: str
    status_url: str
    response_url: str


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A status answer: ``status`` is QUEUED, PROCESSING or COMPLETED (FAILED raises JobFailed)."""

    status: str
    body: dict[str, Any] = field(hash=False)


@dataclass(frozen=True, slots=True)
class JobResult:
    """A result answer: COMPLETED with ``output`` (the media URL), or a non-terminal status and no
    output when fetched too early. ``metrics`` is the server's (``inference_time`` …)."""

    status: str
    output: str | None
    metrics: dict[str, Any] = field(hash=False)
    body: dict[str, Any] = field(hash=False)


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer, read in full, with the few headers that matter."""

    op: str
    status: int
    body: bytes
    reset_at: str | None = None
    retry_after: str | None = None
    location: str | None = None
    now_unix: float = 0.0

    def json(self) -> Any:
        """The decoded JSON body, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None

    def error_text(self) -> str:
        """The server's reason: a JSON ``error``/``message``/``detail``, else the text itself."""
        data = self.json()
        if isinstance(data, dict):
            for key in ("error", "message", "detail"):
                value = data.get(key)
                if isinstance(value, str) and value:
                    return _shorten(value)
                if value:
                    return _shorten(json.dumps(value))
        text = self.body.decode("utf-8", "replace").strip()
        if text.startswith("<"):
            return "(HTML body)"
        return _shorten(" ".join(text.split())) or "(empty body)"


def redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` replaced."""
    return text.replace(secret, "[redacted]") if secret and secret in text else text


def accepted(reply: Reply) -> bool:
    """2xx, or a status/result answer whose body says COMPLETED, whatever the HTTP code."""
    if 200 <= reply.status < 300:
        return True
    return reply.op in ("status", "result") and _terminal_state(reply) == "COMPLETED"


def failure_for(reply: Reply) -> ApiError:
    """The error for a reply that is not :func:`accepted`."""
    op, status = reply.op, reply.status
    if op in ("status", "result") and _terminal_state(reply) == "FAILED":
        data = reply.json()
        assert isinstance(data, dict)
        return _job_failed(data, status, op)
    text = reply.error_text()
    where = f"{op}: HTTP {status}"
    if status == 429:
        return RateLimited(f"{where} rate limited", delay_s=_rate_limit_delay(reply), op=op)
    if status == 401:
        return Fatal(f"{where}: the API key was rejected ({text})", kind="auth", op=op)
    if status == 403:
        return Fatal(f"{where}: not allowed for this account ({text})", kind="forbidden", op=op)
    if op in HISTORY_OPS and not (status >= 500 or status in (408, 425)):
        return HistoryUnavailable(f"{where}: {text}", status=status, op=op)
    if status == 404:
        if op == "submit":
            return Fatal(f"{where}: unknown model ({text})", kind="model", op=op)
        if op in ("status", "result"):
            return Expired(f"{where}: request not found or expired ({text})", op=op)
        return Fatal(f"{where}: endpoint not found ({text})", kind="not_found", op=op)
    if status == 406:
        if "content" in text.lower() and "type" in text.lower():
            return Fatal(f"{where}: {text}", kind="content_type", op=op)
        return OutOfCredits(f"{where}: out of credits ({text})", op=op)
    if status == 410:
        return Fatal(f"{where}: model retired ({text})", kind="model", op=op)
    if status >= 500 or status in (408, 425):
        return Transient(f"{where}: {text}", status=status, op=op)
    if 300 <= status < 400:
        target = URL(reply.location) if reply.location else None
        to = f" to {target.scheme}://{target.host}{target.path}" if target is not None and target.host else ""
        return Fatal(f"{where}: the API redirected{to}; is --base-url right?", kind="redirect", op=op)
    if 400 <= status < 500 and op in ("submit", "upload"):
        cause = classify_failure_text(text)
        return JobFailed(text, http_status=status, cause="invalid" if cause == "server" else cause, op=op)
    return Transient(f"{where}: {text}", status=status, op=op)


def submission_from(reply: Reply, base: URL) -> Submission:
    """An accepted submit. URLs missing from the answer are derived from the request id."""
    data = reply.json()
    if not isinstance(data, dict):
        raise Ambiguous("submit: 2xx answer that is not a JSON object; the request may have been accepted")
    if _state(data) == "FAILED":
        raise _job_failed(data, reply.status, "submit")
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise Ambiguous("submit: 2xx answer without a request_id; the request may have been accepted")
    status_url = _text(data.get("status_url")) or _text(data.get("poll_url"))
    response_url = _text(data.get("response_url"))
    if status_url is None or response_url is None:
        request = base.joinpath("v2", "requests", request_id)
        status_url = status_url or str(request / "status")
        response_url = response_url or str(request)
    return Submission(request_id=request_id, status_url=status_url, response_url=response_url)


def job_status_from(reply: Reply) -> JobStatus:
    data = reply.json()
    state = _state(data) if isinstance(data, dict) else None
    if not isinstance(data, dict) or state is None:
        raise Transient("status: 2xx answer without a status", status=reply.status, op="status")
    if state == "FAILED":
        raise _job_failed(data, reply.status, "status")
    return JobStatus(status=state, body=data)


def job_result_from(reply: Reply) -> JobResult:
    data = reply.json()
    if not isinstance(data, dict):
        raise Transient("result: 2xx answer that is not a JSON object", status=reply.status, op="result")
    output = _output_url(data.get("output"))
    state = _state(data) or ("COMPLETED" if output else None)
    if state is None:
        raise Transient("result: 2xx answer without a status", status=reply.status, op="result")
    if state == "FAILED":
        raise _job_failed(data, reply.status, "result")
    metrics = data.get("metrics")
    metrics = metrics if isinstance(metrics, dict) else {}
    if state == "COMPLETED":
        if output is None:
            raise Transient("result: COMPLETED without an output URL", status=reply.status, op="result")
        return JobResult(status=state, output=output, metrics=metrics, body=data)
    return JobResult(status=state, output=None, metrics=metrics, body=data)


def uploaded_url(reply: Reply) -> str:
    data = reply.json()
    if isinstance(data, dict):
        for key in ("urls", "file_urls"):
            urls = data.get(key)
            if isinstance(urls, list) and urls and isinstance(urls[0], str) and urls[0]:
                return urls[0]
    raise Transient("upload: 2xx answer without urls/file_urls", status=reply.status, op="upload")


def credits_from(reply: Reply) -> float:
    data = reply.json()
    if isinstance(data, dict) and "credits" in data:
        try:
            return float(data["credits"]) + float(data.get("free-credits") or 0.0)
        except (TypeError, ValueError):
            pass
    raise Transient("credits: 2xx answer without a number of credits", status=reply.status, op="credits")


def _terminal_state(reply: Reply) -> str | None:
    """COMPLETED or FAILED when the body says exactly that (no aliases: an error body's
    ``"status": "error"`` is not a job state)."""
    data = reply.json()
    raw = data.get("status") if isinstance(data, dict) else None
    state = raw.strip().upper() if isinstance(raw, str) else None
    return state if state in ("COMPLETED", "FAILED") else None


def _state(data: dict[str, Any]) -> str | None:
    raw = data.get("status")
    if not isinstance(raw, str) or not raw.strip():
        return None
    state = raw.strip().upper()
    state = _STATE_ALIASES.get(state, state)
    if state in NON_TERMINAL or state in ("COMPLETED", "FAILED"):
        return state
    return "PROCESSING"


def _job_failed(data: dict[str, Any], http_status: int, op: str) -> JobFailed:
    error = data.get("error")
    text = (
        _shorten(error if isinstance(error, str) else json.dumps(error))
        if error
        else "FAILED without a reason"
    )
    return JobFailed(text, http_status=http_status, cause=classify_failure_text(text), op=op)


def _rate_limit_delay(reply: Reply) -> float | None:
    if reply.reset_at is not None:
        delay = parse_reset_header(reply.reset_at, reply.now_unix)
        if delay is not None:
            return delay
    if reply.retry_after is not None:
        return parse_retry_after(reply.retry_after, reply.now_unix)
    return None


def _output_url(value: Any) -> str | None:
    if isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, str) and value else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"

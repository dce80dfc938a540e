"""The status/body → value-or-error table, pure (no server): every row of segmind-v2.md's error table."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from batchflux.api import (
    Ambiguous,
    ApiError,
    Expired,
    Fatal,
    JobFailed,
    OutOfCredits,
    RateLimited,
    Transient,
)
from batchflux.api.replies import (
    Reply,
    accepted,
    credits_from,
    failure_for,
    job_result_from,
    job_status_from,
    redact,
    submission_from,
    uploaded_url,
)

BASE = URL("https://api.example")
NOW = 1_740_830_400.0  # 2025-03-01T12:00:00Z


def reply(op: str, status: int, body: Any = None, **headers: Any) -> Reply:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
    return Reply(op=op, status=status, body=raw, now_unix=NOW, **headers)


def outcome(r: Reply) -> Any:
    """What the client would return or raise for this reply."""
    if not accepted(r):
        return failure_for(r)
    parse = {
        "submit": lambda: submission_from(r, BASE),
        "status": lambda: job_status_from(r),
        "result": lambda: job_result_from(r),
        "upload": lambda: uploaded_url(r),
        "credits": lambda: credits_from(r),
    }[r.op]
    try:
        return parse()
    except ApiError as exc:
        return exc


HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


@pytest.mark.parametrize(
    ("op", "status", "body", "expected", "attr"),
    [
        ("submit", 400, {"error": "Invalid parameters: aspect_ratio"}, JobFailed, ("cause", "invalid")),
        ("submit", 400, {"error": "prompt blocked by moderation"}, JobFailed, ("cause", "moderation")),
        ("submit", 413, {"error": "Request body too large"}, JobFailed, ("http_status", 413)),
        ("submit", 422, {"error": "oops"}, JobFailed, ("cause", "invalid")),
        ("upload", 400, {"error": "data_urls[0] is not a base64 data URL"}, JobFailed, ("cause", "invalid")),
        ("submit", 401, {"error": "Unauthorized"}, Fatal, ("kind", "auth")),
        ("status", 401, {"error": "Unauthorized"}, Fatal, ("kind", "auth")),
        ("submit", 403, {"error": "no access"}, Fatal, ("kind", "forbidden")),
        ("submit", 404, {"error": "Model not found"}, Fatal, ("kind", "model")),
        ("status", 404, {"error": "Request x not found"}, Expired, None),
        ("result", 404, {"error": "Request x not found"}, Expired, None),
        ("credits", 404, b"Not Found", Fatal, ("kind", "not_found")),
        ("submit", 406, b"Insufficient credits", OutOfCredits, None),
        ("submit", 406, b"", OutOfCredits, None),
        ("submit", 406, b"Invalid content type", Fatal, ("kind", "content_type")),
        ("submit", 410, {"error": "retired"}, Fatal, ("kind", "model")),
        ("submit", 429, {"error": "Rate limit exceeded"}, RateLimited, ("delay_s", None)),
        ("status", 429, {"error": "Rate limit exceeded"}, RateLimited, ("delay_s", None)),
        ("submit", 500, {"error": "Internal"}, Transient, ("status", 500)),
        ("submit", 502, HTML, Transient, ("status", 502)),
        ("status", 502, HTML, Transient, ("status", 502)),
        ("result", 504, HTML, Transient, ("status", 504)),
        ("status", 408, b"", Transient, ("status", 408)),
        ("status", 400, b"", Transient, ("status", 400)),  # a GET that 400s: retried, bounded
        ("status", 301, b"", Fatal, ("kind", "redirect")),
        ("submit", 308, b"", Fatal, ("kind", "redirect")),
        # FAILED is authoritative whatever the code; COMPLETED too.
        (
            "status",
            422,
            {"status": "FAILED", "error": "NSFW content detected"},
            JobFailed,
            ("cause", "moderation"),
        ),
        ("result", 422, {"status": "FAILED", "error": "worker crashed"}, JobFailed, ("cause", "server")),
        (
            "status",
            200,
            {"status": "FAILED", "error": "invalid input image"},
            JobFailed,
            ("cause", "invalid"),
        ),
        ("status", 500, {"status": "FAILED"}, JobFailed, ("error", "FAILED without a reason")),
        (
            "status",
            500,
            {"status": "error", "message": "boom"},
            Transient,
            ("status", 500),
        ),  # not a job state
        # 2xx that cannot be read.
        ("submit", 200, HTML, Ambiguous, None),
        ("submit", 200, {"status": "QUEUED"}, Ambiguous, None),
        ("status", 200, HTML, Transient, None),
        ("status", 200, {"request_id": "x"}, Transient, None),
        ("result", 200, [1, 2], Transient, None),
        ("result", 200, {"status": "COMPLETED"}, Transient, None),
        ("upload", 200, {"message": "ok"}, Transient, None),
        ("credits", 200, {"credits": "lots"}, Transient, None),
    ],
)
def test_error_table(
    op: str, status: int, body: Any, expected: type[ApiError], attr: tuple[str, Any] | None
) -> None:
    got = outcome(reply(op, status, body))
    assert type(got) is expected, got
    assert got.op == op
    if attr is not None:
        assert getattr(got, attr[0]) == attr[1]


def test_html_bodies_are_summarised_not_quoted() -> None:
    got = outcome(reply("status", 502, HTML))
    assert "(HTML body)" in str(got)
    assert "nginx" not in str(got)


def test_long_error_text_is_shortened() -> None:
    got = outcome(reply("submit", 400, {"error": "x" * 5000}))
    assert isinstance(got, JobFailed)
    assert len(got.error) <= 300


@pytest.mark.parametrize(
    ("headers", "delay"),
    [
        ({"reset_at": "2025-03-01T12:00:42.000Z"}, 42.0),
        ({"reset_at": "2025-03-01T11:00:00Z"}, 0.0),
        ({"retry_after": "17"}, 17.0),
        ({"retry_after": "Sat, 01 Mar 2025 12:00:05 GMT"}, 5.0),
        ({"reset_at": "2025-03-01T12:00:09Z", "retry_after": "99"}, 9.0),  # the documented header wins
        ({"reset_at": "garbage", "retry_after": "3"}, 3.0),  # ... unless it is unreadable
        ({"reset_at": "garbage"}, None),
        ({}, None),
    ],
)
def test_rate_limit_delay_from_headers(headers: dict[str, str], delay: float | None) -> None:
    got = outcome(reply("submit", 429, {"error": "Rate limit exceeded"}, **headers))
    assert isinstance(got, RateLimited)
    assert got.delay_s == (pytest.approx(delay) if delay is not None else None)


def test_submission_urls_are_taken_as_given_or_derived() -> None:
    given_urls = {
        "request_id": "r1",
        "status": "QUEUED",
        "status_url": "https://api.example/v2/requests/r1/status",
        "response_url": "https://api.example/v2/requests/r1",
    }
    sub = outcome(reply("submit", 200, given_urls))
    assert (sub.request_id, sub.status_url, sub.response_url) == (
        "r1",
        given_urls["status_url"],
        given_urls["response_url"],
    )
    only_poll = outcome(reply("submit", 200, {"request_id": "r2", "poll_url": "https://api.example/p/r2"}))
    assert only_poll.status_url == "https://api.example/p/r2"
    assert only_poll.response_url == "https://api.example/v2/requests/r2"
    bare = outcome(reply("submit", 200, {"request_id": "r3"}))
    assert bare.status_url == "https://api.example/v2/requests/r3/status"


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("QUEUED", "QUEUED"),
        ("processing", "PROCESSING"),
        ("IN_PROGRESS", "PROCESSING"),
        ("IN_QUEUE", "QUEUED"),
        ("SOMETHING_NEW", "PROCESSING"),  # unknown: keep polling, never lose the job
        ("COMPLETED", "COMPLETED"),
    ],
)
def test_status_states_are_normalised(raw: str, state: str) -> None:
    got = outcome(reply("status", 200, {"status": raw, "request_id": "r"}))
    assert got.status == state
    assert got.body["status"] == raw


def test_result_values() -> None:
    done = outcome(
        reply(
            "result",
            200,
            {"status": "COMPLETED", "output": "https://img/x.png", "metrics": {"inference_time": 2}},
        )
    )
    assert (done.status, done.output, done.metrics) == (
        "COMPLETED",
        "https://img/x.png",
        {"inference_time": 2},
    )
    early = outcome(reply("result", 200, {"status": "PROCESSING"}))
    assert (early.status, early.output, early.metrics) == ("PROCESSING", None, {})
    listed = outcome(reply("result", 200, {"status": "COMPLETED", "output": ["https://img/a.png", "b"]}))
    assert listed.output == "https://img/a.png"
    no_status = outcome(reply("result", 200, {"output": "https://img/y.png"}))
    assert no_status.status == "COMPLETED"
    completed_under_500 = outcome(
        reply("result", 500, {"status": "COMPLETED", "output": "https://img/z.png"})
    )
    assert completed_under_500.output == "https://img/z.png"


def test_upload_accepts_both_documented_shapes() -> None:
    assert outcome(reply("upload", 200, {"urls": ["https://s/a.png"]})) == "https://s/a.png"
    assert outcome(reply("upload", 200, {"file_urls": ["https://s/b.png"]})) == "https://s/b.png"


def test_credits_adds_free_credits() -> None:
    assert outcome(reply("credits", 200, {"credits": 12.5, "free-credits": 0.5})) == 13.0
    assert outcome(reply("credits", 200, {"credits": "3"})) == 3.0


def test_redact() -> None:
    assert redact("bad key SG_abc in header", "SG_abc") == "bad key [redacted] in header"
    assert redact("nothing here", "SG_abc") == "nothing here"
    assert redact("empty secret", "") == "empty secret"


@given(
    op=st.sampled_from(["submit", "status", "result", "upload", "credits"]),
    status=st.integers(min_value=100, max_value=599),
    body=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(["status", "error", "output", "request_id", "urls", "credits"]), st.text()
        ),
    ),
)
def test_every_reply_maps_to_a_value_or_an_api_error(op: str, status: int, body: Any) -> None:
    got = outcome(reply(op, status, body))
    assert got is not None
    if isinstance(got, ApiError):
        assert str(got)
        if isinstance(got, Ambiguous):
            assert op == "submit"
        if isinstance(got, Expired):
            assert op in ("status", "result")

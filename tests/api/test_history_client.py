"""``ApiClient.history`` and ``history_record`` against the emulator and small odd servers: the
values, the error mapping, the endpoint defaults and the key rules."""

from __future__ import annotations

import asyncio
import time
import traceback
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from test_client_edges import KEY, OddServer, client
from test_client_emulator import MODEL, PARAMS, client_for, fast

from batchflux.api import (
    DEFAULT_HISTORY_URL,
    ApiClient,
    Expired,
    Fatal,
    HistoryQuery,
    HistoryUnavailable,
    RateLimited,
    Transient,
)
from batchflux.emulator import Emulator


async def until_completed(emu: Emulator, request_id: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    while (info := emu.request_info(request_id)) is None or info["state"] != "COMPLETED":
        assert loop.time() < deadline
        await asyncio.sleep(0.01)


async def until_expired(c: ApiClient, response_url: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    while True:
        try:
            await c.result(response_url)
        except Expired:
            return
        assert loop.time() < deadline
        await asyncio.sleep(0.02)


async def test_rows_and_records_from_the_emulator(session: aiohttp.ClientSession) -> None:
    async with Emulator(fast(price=0.1, retention_s=0.3)) as emu:
        c = client_for(session, emu)
        before = time.time()
        subs = [await c.submit(MODEL, {**PARAMS, "seed": n}) for n in range(3)]
        for sub in subs:
            await until_completed(emu, sub.request_id)
        first = await c.history(HistoryQuery(per_page=2, model_name=MODEL))
        second = await c.history(HistoryQuery(page=2, per_page=2, model_name=MODEL))
        assert [r.request_id for r in first.rows + second.rows] == [s.request_id for s in reversed(subs)]
        assert (first.more, second.more) == (True, False)
        row = second.rows[0]
        assert row.model_status == "COMPLETED"
        assert row.request_body == {**PARAMS, "seed": 0}
        assert row.credits_deduction == pytest.approx(0.1)
        assert row.created_at is not None
        assert before - 1 <= row.created_at <= time.time() + 1
        assert row.generation_url is not None
        assert row.generation_url.startswith(emu.base_url + "/media/")

        await until_expired(c, subs[0].response_url)
        record = await c.history_record(subs[0].request_id)
        assert record == row  # the record outlives the hour
        assert await c.history_record("no-such-request") is None
        assert c.calls["history"] == 2
        assert c.calls["history_record"] == 2


async def test_endpoint_defaults(session: aiohttp.ClientSession) -> None:
    assert ApiClient(session, api_key=KEY).history_url == DEFAULT_HISTORY_URL
    assert client(session, "http://127.0.0.1:9/v1").history_url == (
        "http://127.0.0.1:9/inference-request/request-history"
    )
    explicit = client(session, "http://127.0.0.1:9", history_url="http://127.0.0.1:8/h/")
    assert explicit.history_url == "http://127.0.0.1:8/h"
    assert "http://127.0.0.1:8/h" in repr(explicit)
    with pytest.raises(ValueError, match="history_url"):
        client(session, "http://127.0.0.1:9", history_url="/relative")


@pytest.mark.parametrize(
    ("outage", "list_error", "record"),
    [("404", HistoryUnavailable, None), ("500", Transient, Transient), ("502", Transient, Transient),
     ("envelope", HistoryUnavailable, HistoryUnavailable)],
)  # fmt: skip
async def test_outages_map_to_typed_errors(
    session: aiohttp.ClientSession, outage: str, list_error: type[Exception], record: type[Exception] | None
) -> None:
    async with Emulator(fast(history_outage=outage)) as emu:
        c = client_for(session, emu)
        sub = await c.submit(MODEL, PARAMS)
        with pytest.raises(list_error):
            await c.history(HistoryQuery())
        if record is None:
            assert await c.history_record(sub.request_id) is None  # a 404: no such record
        else:
            with pytest.raises(record):
                await c.history_record(sub.request_id)


async def test_auth_and_rate_limits_are_what_they_are_everywhere(session: aiohttp.ClientSession) -> None:
    async with Emulator(fast(rpm=1, count_polls=True)) as emu:
        wrong = client_for(session, emu, api_key="SG_0000000000000000")
        with pytest.raises(Fatal) as denied:
            await wrong.history(HistoryQuery())
        assert denied.value.kind == "auth"
        with pytest.raises(Fatal):
            await wrong.history_record("r1")
        c = client_for(session, emu)
        await c.history(HistoryQuery())
        with pytest.raises(RateLimited) as limited:
            await c.history_record("r1")
        assert limited.value.delay_s is not None


async def test_the_key_goes_to_the_history_host_only_and_never_into_messages(
    session: aiohttp.ClientSession,
) -> None:
    async def listing(request: web.Request) -> web.Response:
        return web.json_response(
            {"items": [{"request_id": "r1", "model_status": "FAILED"}], "has_more": False}
        )

    raw_paths: list[str] = []

    async def record(request: web.Request) -> web.Response:
        raw_paths.append(request.raw_path)
        key = request.headers["x-api-key"]
        return web.json_response({"error": f"nothing for key {key}"}, status=400)

    async with (
        OddServer([]) as api,
        OddServer([("GET", "/h", listing), ("GET", "/h/{rid:.*}", record)]) as hist,
    ):
        c = client(session, api.base_url, history_url=f"{hist.base_url}/h")
        page = await c.history(HistoryQuery(from_date=datetime.now(UTC).date()))
        assert [r.model_status for r in page.rows] == ["FAILED"]
        assert not page.more
        with pytest.raises(HistoryUnavailable) as refused:
            await c.history_record("a/../../v2/x")
    text = "".join(traceback.format_exception(refused.value)) + repr(refused.value)
    assert KEY not in text
    assert "[redacted]" in str(refused.value)
    assert [s.headers["x-api-key"] for s in hist.seen] == [KEY, KEY]
    assert hist.seen[0].path == "/h"
    assert raw_paths == ["/h/a%2F..%2F..%2Fv2%2Fx"]  # one segment, encoded: it stays under /h
    assert api.seen == []


async def test_ids_that_name_no_record_are_not_asked_for(session: aiohttp.ClientSession) -> None:
    async def anything(request: web.Request) -> web.Response:
        raise AssertionError("no call expected")

    async with OddServer([("GET", "/{tail:.*}", anything)]) as api:
        c = client(session, api.base_url)
        for rid in ("", ".", ".."):
            assert await c.history_record(rid) is None
    assert api.seen == []


async def test_answers_of_odd_shapes(session: aiohttp.ClientSession) -> None:
    replies: dict[str, Any] = {
        "/html": web.Response(text="<html>maintenance</html>", content_type="text/html"),
        "/moved": web.Response(status=302, headers={"Location": "https://elsewhere.example/"}),
        "/gone": web.json_response({"error": "gone"}, status=410),
    }

    async def answer(request: web.Request) -> web.StreamResponse:
        reply: web.StreamResponse = replies[request.path]
        return reply

    async with OddServer([("GET", path, answer) for path in replies]) as api:
        for path in replies:
            c = client(session, api.base_url, history_url=api.base_url + path)
            with pytest.raises(HistoryUnavailable):
                await c.history(HistoryQuery())

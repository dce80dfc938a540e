"""Two knobs for what Segmind leaves undocumented: the media host apart from the API (each can go
down alone), and what the result URL answers for a request not finished yet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from batchflux.emulator import Emulator, EmulatorConfig


async def test_media_on_its_own_port_outlives_the_apis_outage_and_goes_down_alone(
    api_for: Callable[[Emulator], Any],
) -> None:
    async with Emulator(EmulatorConfig(latency_mean=0.05, latency_sd=0.0, media_port=0)) as emu:
        api = api_for(emu)
        assert emu.media_port
        assert emu.media_port != emu.port
        sub = await api.submit_ok(prompt="a cat", seed=1)
        await api.until_state(sub["request_id"], "COMPLETED")
        result = await api.request("GET", sub["response_url"])
        output = result.body["output"]
        assert output.startswith(emu.media_base_url + "/media/")

        await emu.go_down()  # the API is gone, the media host serves on
        assert (await api.request("GET", output, key=None)).status == 200
        with pytest.raises(aiohttp.ClientConnectionError):
            await api.request("GET", sub["status_url"])
        await emu.come_back()

        await emu.media_go_down()  # and the other way round
        with pytest.raises(aiohttp.ClientConnectionError):
            await api.request("GET", output, key=None)
        assert (await api.request("GET", sub["status_url"])).status == 200
        await emu.media_come_back()
        assert (await api.request("GET", output, key=None)).status == 200


@pytest.mark.parametrize(("pending", "code"), [("answers", 200), ("404", 404)])
async def test_the_result_url_answers_a_pending_request_or_not(
    api_for: Callable[[Emulator], Any], pending: str, code: int
) -> None:
    config = EmulatorConfig(latency_mean=0.3, latency_sd=0.0, result_pending=pending)
    async with Emulator(config) as emu:
        api = api_for(emu)
        sub = await api.submit_ok(prompt="a cat", seed=1)
        early = await api.request("GET", sub["response_url"])
        assert early.status == code, early.body
        if code == 200:
            assert early.body["status"] in ("QUEUED", "PROCESSING")
            assert "output" not in early.body
        await api.until_state(sub["request_id"], "COMPLETED")
        done = await api.request("GET", sub["response_url"])
        assert done.status == 200
        assert done.body["output"]

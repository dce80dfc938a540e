"""A job that keeps failing while its host answers every other call has an accident of its own: it
spends its tries and fails, the run goes on and ends (exit 1), and no outage is declared. A stand-in
server in front of the emulator answers 500 to one job's submits and passes the rest through."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web
from runkit import plain_jobs, serve, summary, write_manifest

from batchflux.emulator import DEFAULT_API_KEY, Emulator, EmulatorConfig
from batchflux.engine.config import EngineConfig
from batchflux.run.exitcodes import ExitCode
from batchflux.run.runner import Run, RunOptions


async def test_one_jobs_own_failures_spend_its_tries_while_the_others_finish(tmp_path: Path) -> None:
    jobs = plain_jobs(40)
    jobs[5]["prompt"] = "cursed edit"
    manifest = write_manifest(tmp_path / "m", jobs)
    out = tmp_path / "out"
    cursed: list[int] = []
    # Long enough that the others are still being polled while the one job spends its tries: with
    # nothing else under way, its failures could not be told from an outage.
    config = EmulatorConfig(latency_mean=1.5, latency_sd=0.1, media_port=0)  # media: not proxied
    async with Emulator(config) as emu, aiohttp.ClientSession() as http:
        here: list[str] = []

        async def proxy(request: web.Request) -> web.Response:
            body = await request.read()
            if b"cursed" in body:
                cursed.append(1)
                return web.json_response({"error": "internal error"}, status=500)
            headers = {k: v for k, v in request.headers.items() if k.lower() in ("x-api-key", "content-type")}
            url = f"{emu.base_url}{request.path_qs}"
            async with http.request(request.method, url, data=body or None, headers=headers) as r:
                answer = (await r.read()).replace(emu.base_url.encode(), here[0].encode())
                return web.Response(body=answer, status=r.status, content_type=r.content_type)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", proxy)
        async with serve(app) as proxy_url:
            here.append(proxy_url)
            options = RunOptions(
                manifest=manifest, api_key=DEFAULT_API_KEY, out_dir=out, base_url=proxy_url,
                engine=EngineConfig(backoff_base_s=0.01, backoff_cap_s=0.05), report=False,
            )  # fmt: skip
            result = await Run(options).execute()
    assert result.exit_code == ExitCode.JOBS_FAILED, result.message
    s = summary(out)
    assert s["counts"]["failed"] == 1
    assert s["counts"]["done"] == len(jobs) - 1
    assert s["stop_reason"] is None
    assert len(cursed) >= EngineConfig().submit_attempts  # its tries, all spent

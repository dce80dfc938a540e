"""Running the emulator: an async context manager on a (random) port, and a serve-until-signalled loop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from batchflux.emulator.app import make_app, make_media_app
from batchflux.emulator.config import EmulatorConfig
from batchflux.emulator.core import EmulatorCore

SHUTDOWN_TIMEOUT_S = 2.0


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class Emulator:
    """A Segmind v2 emulator serving in the running loop.

    ``async with Emulator(EmulatorConfig(rpm=5)) as emu:`` then point a client at ``emu.base_url``
    with the key ``DEFAULT_API_KEY``. ``stats()``, ``request_info()`` and ``reconfigure()`` act on the
    live server.
    """

    def __init__(self, config: EmulatorConfig | None = None, *, access_log: bool = False) -> None:
        self._config = config if config is not None else EmulatorConfig()
        self._access_log = access_log
        self._core: EmulatorCore | None = None
        self._runner: web.AppRunner | None = None
        self._media_runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.base_url = ""
        self.port = 0
        self.media_base_url = ""  # the media host's, when it has a port of its own (``media_port``)
        self.media_port = 0

    @property
    def config(self) -> EmulatorConfig:
        return self._core.config if self._core else self._config

    @property
    def core(self) -> EmulatorCore:
        if self._core is None:
            raise RuntimeError("the emulator is not running")
        return self._core

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        loop = asyncio.get_running_loop()
        core = EmulatorCore(self._config, clock=loop.time)
        self._runner, self.port = await self._listen(make_app(core), self._config.port)
        self.base_url = f"http://{_url_host(self._config.host)}:{self.port}"
        core.base_url = self.base_url
        if self._config.media_port is not None:
            try:
                self._media_runner, self.media_port = await self._listen(
                    make_media_app(core), self._config.media_port
                )
            except BaseException:
                await self.stop()
                raise
            self.media_base_url = core.media_base_url = (
                f"http://{_url_host(self._config.host)}:{self.media_port}"
            )
        core.session = self._session = aiohttp.ClientSession()
        self._core = core

    async def go_down(self) -> None:
        """An outage of the API: stop listening, so every connection is refused. The requests
        already made live on (their work, their clocks, the stats) until :meth:`come_back`. A
        media host of its own (``media_port``) stays up."""
        runner, self._runner = self._runner, None
        if runner is None:
            raise RuntimeError("the emulator is not running")
        await runner.cleanup()

    async def come_back(self) -> None:
        """The end of an outage: listen again on the same port, with the same state."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        self._runner, _ = await self._listen(make_app(self.core), self.port)

    async def media_go_down(self) -> None:
        """An outage of the media host alone (it needs ``media_port``); the API stays up."""
        runner, self._media_runner = self._media_runner, None
        if runner is None:
            raise RuntimeError("the media host is not running on a port of its own")
        await runner.cleanup()

    async def media_come_back(self) -> None:
        if self._media_runner is not None or not self.media_port:
            raise RuntimeError("the media host is running, or has no port of its own")
        self._media_runner, _ = await self._listen(make_media_app(self.core), self.media_port)

    async def _listen(self, app: web.Application, port: int) -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(
            app,
            access_log=logging.getLogger("aiohttp.access") if self._access_log else None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._config.host, port, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        return runner, int(runner.addresses[0][1])

    async def stop(self) -> None:
        runners, session = (self._runner, self._media_runner), self._session
        self._runner = self._media_runner = None
        self._session = None
        try:
            for runner in runners:
                if runner is not None:
                    await runner.cleanup()
        finally:
            if session is not None:
                await session.close()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def stats(self) -> dict[str, Any]:
        """The same JSON as ``GET /_emulator/stats``."""
        return self.core.stats()

    def request_info(self, request_id: str) -> dict[str, Any] | None:
        """The same JSON as ``GET /_emulator/requests/{id}``; None for an id never issued."""
        return self.core.request_info(request_id)

    def reconfigure(self, **changes: Any) -> None:
        """Replace knobs at runtime, e.g. ``reconfigure(faults={}, rpm=None)``."""
        self.core.reconfigure(**changes)


async def serve(
    config: EmulatorConfig,
    on_ready: Callable[[Emulator], None],
    *,
    access_log: bool = False,
) -> None:
    """Serve until SIGINT, SIGTERM or SIGHUP (its terminal closed; not under ``nohup``, which
    ignores it), calling ``on_ready`` once the port is bound."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    hangup = () if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN else (signal.SIGHUP,)
    signals = (signal.SIGINT, signal.SIGTERM, *hangup)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Emulator(config, access_log=access_log) as emulator:
            on_ready(emulator)
            await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)

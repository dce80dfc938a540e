"""Reading a job's ``input_image``: the emulator's own uploads and outputs, data URIs, loopback URLs.

Nothing beyond 127.0.0.1 is ever fetched: any other URL counts as unreadable, and the output is then
a generated pattern instead of an edit of the input. Decoded inputs are cached, since a batch often
edits one picture many times.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from batchflux.emulator.images import InputImage, load_input
from batchflux.emulator.media import MediaStore, parse_data_url

MAX_INPUT_BYTES = 30 * 1024 * 1024
FETCH_TIMEOUT_S = 10.0
_UPLOAD_PATH = re.compile(r"^/media/uploads/([0-9a-f]{64}\.[a-z]+)$")
_OUTPUT_PATH = re.compile(r"^/media/([0-9A-Za-z-]+)\.(png|jpg)$")

# Own output bytes by request id (None when there is no such completed output).
OwnOutput = Callable[[str], Awaitable[bytes | None]]


@dataclass(frozen=True, slots=True)
class ResolvedInput:
    image: InputImage | None
    digest: str  # sha256 of the input bytes, "" when there were none


NO_INPUT = ResolvedInput(None, "")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class InputResolver:
    def __init__(
        self,
        media: MediaStore,
        own_output: OwnOutput,
        own_origin: Callable[[], str],
        session: Callable[[], aiohttp.ClientSession | None],
        cache_size: int = 128,
    ) -> None:
        self._media = media
        self._own_output = own_output
        self._own_origin = own_origin
        self._session = session
        self._cache: OrderedDict[str, ResolvedInput] = OrderedDict()
        self._cache_size = cache_size

    async def resolve(self, value: Any) -> ResolvedInput:
        if not isinstance(value, str) or not value:
            return NO_INPUT
        data = await self._bytes_for(value)
        if data is None:
            return NO_INPUT
        digest = hashlib.sha256(data).hexdigest()
        cached = self._cache.get(digest)
        if cached is not None:
            self._cache.move_to_end(digest)
            return cached
        resolved = ResolvedInput(await asyncio.to_thread(load_input, data), digest)
        self._cache[digest] = resolved
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return resolved

    async def _bytes_for(self, value: str) -> bytes | None:
        if value.startswith("data:"):
            parsed = parse_data_url(value)
            return parsed.data if parsed else None
        try:
            url = URL(value)
        except (ValueError, TypeError):
            return None
        upload = _UPLOAD_PATH.match(url.path)
        if upload and (data := self._media.upload(upload.group(1))) is not None:
            return data
        if url.scheme not in ("http", "https"):
            return None
        own = _OUTPUT_PATH.match(url.path)
        if own and str(url.origin()) == self._own_origin():
            return await self._own_output(own.group(1))
        if not is_loopback(url.host):
            return None
        return await self._fetch(url)

    async def _fetch(self, url: URL) -> bytes | None:
        session = self._session()
        if session is None:
            return None
        try:
            timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
            async with session.get(url, timeout=timeout, allow_redirects=False) as resp:
                if resp.status != 200:
                    return None
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > MAX_INPUT_BYTES:
                        return None
                    chunks.append(chunk)
                return b"".join(chunks)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

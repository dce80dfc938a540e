"""Local input images: each file uploaded once per run (or inlined as a data URI), then reused."""

from __future__ import annotations

import asyncio
import base64
import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path


def data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


class InputResolver:
    """Maps a local path to the URL (or data URI) that goes into ``input_image``.

    Concurrent requests for the same file share one upload; a failed upload is forgotten so a
    later job can try again.
    """

    def __init__(self, upload: Callable[[str], Awaitable[str]], *, inline: bool) -> None:
        self._upload = upload
        self._inline = inline
        self._done: dict[Path, asyncio.Future[str]] = {}
        self.uploads = 0

    async def resolve(self, path: Path) -> str:
        fut = self._done.get(path)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._done[path] = fut
            try:
                uri = await asyncio.to_thread(data_uri, path)
                value = uri if self._inline else await self._upload(uri)
                if not self._inline:
                    self.uploads += 1
            except BaseException as exc:
                del self._done[path]
                fut.set_exception(exc)
                fut.exception()  # retrieved: waiters re-raise it themselves
                raise
            fut.set_result(value)
            return value
        return await asyncio.shield(fut)

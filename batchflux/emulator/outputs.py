"""Each completed job's output image: rendered once, off the event loop, cached under a memory cap.

The bytes derive only from the submit body, the emulator's seed and the input image's bytes, so a
re-render after eviction (or in another emulator with the same seed) gives the same sha256.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

from batchflux.emulator.config import EmulatorConfig
from batchflux.emulator.images import RenderSpec, label_for, output_size, render
from batchflux.emulator.inputs import InputResolver
from batchflux.emulator.jobs import JobRecord
from batchflux.emulator.media import MediaStore


class OutputRenderer:
    def __init__(
        self, media: MediaStore, inputs: InputResolver, config: Callable[[], EmulatorConfig]
    ) -> None:
        self._media = media
        self._inputs = inputs
        self._config = config
        self._locks: dict[str, asyncio.Lock] = {}

    async def bytes_for(self, record: JobRecord) -> bytes:
        """The output image; sets ``record.sha256`` the first time it is rendered."""
        cached = self._media.rendered(record.request_id)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(record.request_id, asyncio.Lock())
        try:
            async with lock:  # concurrent first GETs render once
                cached = self._media.rendered(record.request_id)
                if cached is not None:
                    return cached
                data = await self._render(record)
                self._media.keep_rendered(record.request_id, data)
                record.sha256 = hashlib.sha256(data).hexdigest()
                return data
        finally:
            if not lock.locked():
                self._locks.pop(record.request_id, None)

    async def _render(self, record: JobRecord) -> bytes:
        config = self._config()
        params = record.params
        source = await self._inputs.resolve(params.get("input_image"))
        size = output_size(
            params.get("aspect_ratio", "16:9"),
            config.image_long_side,
            source.image.size if source.image else None,
        )
        digest = hashlib.sha256(f"{record.digest}:{config.seed}:{source.digest}".encode()).digest()
        spec = RenderSpec(size, record.ext, label_for(params.get("prompt")), digest)
        return await asyncio.to_thread(render, spec, source.image)

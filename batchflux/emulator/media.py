"""Hosted bytes: uploaded assets by content hash, and a bounded cache of rendered outputs.

Rendered outputs are deterministic, so an evicted one is simply rendered again on the next GET;
the cache only bounds memory when benchmarks push thousands of jobs through.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[\w.+-]+)*)(;base64)?,(.*)$", re.DOTALL)
_EXT_BY_MIME = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/bmp": "bmp",
    "image/tiff": "tiff",
}
_MIME_BY_EXT = {ext: mime for mime, ext in _EXT_BY_MIME.items() if mime != "image/jpg"}


@dataclass(frozen=True, slots=True)
class DataUrl:
    mime: str
    data: bytes


def parse_data_url(url: str) -> DataUrl | None:
    """Decode a ``data:`` URI; None when it is not one or its payload does not decode."""
    match = _DATA_URL.match(url)
    if not match:
        return None
    mime = (match.group(1) or "text/plain").lower()
    payload = match.group(4)
    if match.group(3):
        try:
            data = base64.b64decode("".join(payload.split()), validate=True)
        except (binascii.Error, ValueError):
            return None
    else:
        data = unquote_to_bytes(payload)
    return DataUrl(mime, data)


def ext_for_mime(mime: str) -> str:
    return _EXT_BY_MIME.get(mime.lower(), "bin")


def mime_for_ext(ext: str) -> str:
    return _MIME_BY_EXT.get(ext.lower(), "application/octet-stream")


class MediaStore:
    """Uploads (kept for the emulator's lifetime) and rendered outputs (LRU, bounded by bytes)."""

    def __init__(self, render_cache_bytes: int = 64 * 1024 * 1024) -> None:
        self._uploads: dict[str, bytes] = {}  # "<sha256>.<ext>" -> bytes
        self._rendered: OrderedDict[str, bytes] = OrderedDict()
        self._rendered_bytes = 0
        self._cap = render_cache_bytes

    def add_upload(self, item: DataUrl) -> str:
        """Store an upload; returns its name ``<sha256>.<ext>`` (the same bytes, the same name)."""
        name = f"{hashlib.sha256(item.data).hexdigest()}.{ext_for_mime(item.mime)}"
        self._uploads.setdefault(name, item.data)
        return name

    def upload(self, name: str) -> bytes | None:
        return self._uploads.get(name)

    def rendered(self, request_id: str) -> bytes | None:
        data = self._rendered.get(request_id)
        if data is not None:
            self._rendered.move_to_end(request_id)
        return data

    def keep_rendered(self, request_id: str, data: bytes) -> None:
        if request_id in self._rendered:
            return
        self._rendered[request_id] = data
        self._rendered_bytes += len(data)
        while self._rendered_bytes > self._cap and len(self._rendered) > 1:
            _, old = self._rendered.popitem(last=False)
            self._rendered_bytes -= len(old)

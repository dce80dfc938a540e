"""Input images in a bucket (``input_image: s3://bucket/key``, ``gs://…``, ``az://…``).

Before anything is spent, each object the run will send is checked to exist: one HEAD each, at most
:data:`HEAD_WORKERS` at once. At submit time the value goes out as a signed GET URL that lives
:data:`~batchflux.rundir.objects.SIGNED_URL_TTL` (3 h: a request is served within its hour), or,
with ``--upload-inputs``, the object is read and uploaded through Segmind's upload host, once per
object per run. The ledger records the object's URL as the parameter and only a hash of what was
sent (a signed URL is a credential for its object)."""

from __future__ import annotations

import asyncio
import base64
import mimetypes
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from batchflux.manifest.inputs import BUCKET_SCHEMES
from batchflux.rundir.objects import ObjectStore, open_object_store
from batchflux.rundir.store import StoreUnavailable

HEAD_WORKERS = 16


def in_bucket(value: object) -> bool:
    return isinstance(value, str) and value.split("://", 1)[0].lower() in BUCKET_SCHEMES and "://" in value


class BucketInputs:
    """Opens one store per bucket; ``upload``: send objects through Segmind's upload host instead."""

    def __init__(self, upload: Callable[[str], Awaitable[str]] | None = None) -> None:
        self._upload = upload
        self._stores: dict[str, ObjectStore] = {}
        self._uploaded: dict[str, asyncio.Future[str]] = {}

    def _locate(self, url: str) -> tuple[ObjectStore, str]:
        scheme, rest = url.split("://", 1)
        bucket, _, key = rest.partition("/")
        root = f"{scheme}://{bucket}"
        store = self._stores.get(root)
        if store is None:
            store = self._stores[root] = open_object_store(root)
        return store, key

    def missing(self, urls: Iterable[str]) -> list[str]:
        """The URLs whose object does not exist (StoreUnavailable when a bucket cannot answer)."""
        unique = sorted(set(urls))

        def absent(url: str) -> bool:
            store, key = self._locate(url)
            return store.head(key) is None

        with ThreadPoolExecutor(max_workers=HEAD_WORKERS, thread_name_prefix="batchflux-head") as pool:
            return [url for url, gone in zip(unique, pool.map(absent, unique), strict=True) if gone]

    async def url_for(self, value: str) -> str:
        """What to send as ``input_image`` for ``value`` (other URLs pass through). OSError when
        the object's store cannot serve it."""
        if not in_bucket(value):
            return value
        try:
            if self._upload is None:
                store, key = self._locate(value)
                return await asyncio.to_thread(store.signed_get_url, key)
            return await self._uploaded_url(value)
        except StoreUnavailable as exc:
            raise OSError(str(exc)) from None

    async def _uploaded_url(self, value: str) -> str:
        assert self._upload is not None
        known = self._uploaded.get(value)
        if known is not None:
            return await asyncio.shield(known)
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._uploaded[value] = fut
        try:
            store, key = self._locate(value)
            data = await asyncio.to_thread(store.get, key)
            if data is None:
                raise StoreUnavailable(f"{value}: no such object")
            mime = mimetypes.guess_type(key)[0] or "application/octet-stream"
            url = await self._upload(f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}")
        except BaseException as exc:
            del self._uploaded[value]
            fut.set_exception(exc)
            fut.exception()
            raise
        fut.set_result(url)
        return url

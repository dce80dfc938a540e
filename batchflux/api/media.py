"""A result's image, fetched from the public media host: the HTTP half of a download.

:class:`MediaGet` is what :meth:`ApiClient.media <batchflux.api.client.ApiClient.media>` returns:
an async context manager that holds one of the client's media slots while the GET is under way and
yields a :class:`MediaBody`. Every HTTP and transport failure becomes a :class:`DownloadError` here,
with ``retryable`` saying whether the same URL may work next time (the file lives 7 days, a CDN may
lag right after completion). The bytes it yields are exactly a complete answer's body: the status
was 200, the size cap held, and ``Content-Length`` (when declared) matched what arrived.
Verifying the image and writing it are :mod:`batchflux.files.download`'s job.

The media host is public: no key is ever sent there (the session carries no default key header —
the client checks — and none is added).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Final

import aiohttp
from yarl import URL

from batchflux.api.errors import DownloadError

# Worth another try on the same URL: the file lives 7 days, a CDN may lag right after completion.
_RETRYABLE_STATUS: Final = frozenset({403, 404, 408, 425, 429})
_MEDIA_HEADERS: Final = {"Accept": "image/*", "Accept-Encoding": "identity"}


class MediaBody:
    """The body of a 200 answer from the media host, as it streams in."""

    __slots__ = ("_declared", "_max_bytes", "_resp", "where")

    def __init__(self, resp: aiohttp.ClientResponse, where: Where, max_bytes: int) -> None:
        self._resp = resp
        self.where = where
        self._max_bytes = max_bytes
        self._declared = resp.content_length if "Content-Encoding" not in resp.headers else None
        if self._declared is not None and self._declared > max_bytes:
            raise DownloadError(
                f"media {where}: {self._declared} bytes is over the {max_bytes}-byte cap", retryable=False
            )

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's chunks; raises :class:`DownloadError` for anything short of the whole body."""
        size = 0
        try:
            async for chunk in self._resp.content.iter_any():
                size += len(chunk)
                if size > self._max_bytes:
                    raise DownloadError(
                        f"media {self.where}: over the {self._max_bytes}-byte cap", retryable=False
                    )
                yield chunk
        except aiohttp.ClientPayloadError as exc:
            raise DownloadError(f"media {self.where}: truncated after {size} bytes", retryable=True) from exc
        except TimeoutError as exc:
            raise DownloadError(f"media {self.where}: timed out after {size} bytes", retryable=True) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise DownloadError(f"media {self.where}: {type(exc).__name__}: {exc}", retryable=True) from exc
        if self._declared is not None and size != self._declared:
            raise DownloadError(f"media {self.where}: got {size} of {self._declared} bytes", retryable=True)


class MediaGet:
    """``async with client.media(url) as body``: one GET, a media slot held until the block ends."""

    __slots__ = ("_cm", "_max_bytes", "_session", "_slots", "_timeout", "_url", "_where")

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        slots: asyncio.Semaphore,
        max_bytes: int,
        timeout_s: float,
    ) -> None:
        self._session = session
        self._url = url
        self._slots = slots
        self._max_bytes = max_bytes
        self._timeout = _media_timeout(timeout_s)
        self._where = Where(url)
        self._cm: AbstractAsyncContextManager[aiohttp.ClientResponse] | None = None

    async def __aenter__(self) -> MediaBody:
        await self._slots.acquire()
        try:
            self._cm = self._session.get(self._url, headers=_MEDIA_HEADERS, timeout=self._timeout)
            try:
                resp = await self._cm.__aenter__()
            except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError, aiohttp.TooManyRedirects) as exc:
                raise DownloadError(f"media {self._where}: {type(exc).__name__}", retryable=False) from exc
            except TimeoutError as exc:
                raise DownloadError(f"media {self._where}: timed out after 0 bytes", retryable=True) from exc
            except (aiohttp.ClientError, OSError) as exc:
                raise DownloadError(
                    f"media {self._where}: {type(exc).__name__}: {exc}", retryable=True
                ) from exc
            if resp.status != 200:
                retryable = resp.status >= 500 or resp.status in _RETRYABLE_STATUS
                await self._close()
                raise DownloadError(
                    f"media {self._where}: HTTP {resp.status}", retryable=retryable, status=resp.status
                )
            try:
                return MediaBody(resp, self._where, self._max_bytes)
            except BaseException:
                await self._close()
                raise
        except BaseException:
            self._slots.release()
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._close(kind, exc, tb)
        finally:
            self._slots.release()

    async def _close(
        self,
        kind: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        cm, self._cm = self._cm, None
        if cm is not None:
            await cm.__aexit__(kind, exc, tb)


@functools.lru_cache(maxsize=8)
def _media_timeout(total_s: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total_s, sock_connect=min(total_s, 30.0))


class Where:
    """A media URL as messages show it: host and path only (a signed URL's query may hold a
    token), worked out only when a message is formatted."""

    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        self.url = url

    def __str__(self) -> str:
        try:
            parsed = URL(self.url)
        except (TypeError, ValueError):
            return "(unparsable URL)"
        return f"{parsed.host or ''}{parsed.path}" if parsed.host else repr(self.url[:80])

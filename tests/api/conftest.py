"""Fixtures for the API-boundary tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain session, as the engine makes one: no default headers."""
    async with aiohttp.ClientSession() as s:
        yield s

"""Fixtures for the API-boundary tests (helpers live in api_helpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain session, as the engine makes one: no default headers."""
    async with aiohttp.ClientSession() as s:
        yield s

"""The ``clis`` fixture: CLI children started in the test's tmp_path, killed at teardown if still running."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cronkit import Clis


@pytest.fixture
async def clis(tmp_path: Path) -> AsyncIterator[Clis]:
    pool = Clis(tmp_path)
    try:
        yield pool
    finally:
        await pool.close()

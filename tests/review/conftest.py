"""A batch run once per module against the emulator, and a review server over a copy of it per test.

``batch``: a real run (``run_batch``: uploads, submits, polls, downloads, the ledger) of
:data:`JOBS` — two blocked by moderation, one prompt carrying markup. ``review``: a fresh copy of
its run directory (so each test starts unreviewed) served by :func:`batchflux.review.server.serve`
in the test's loop, with the URL it printed.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from reviewkit import Served, emulator_config, run_once, write_manifest

from batchflux.emulator import Emulator
from batchflux.review.server import serve


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of one real batch, made once per module (never modified: copy it)."""
    root = tmp_path_factory.mktemp("batch")
    write_manifest(root)

    async def go() -> Path:
        async with Emulator(emulator_config()) as emu:
            result = await run_once(root, emu)
        assert result.out_dir is not None
        return result.out_dir

    return asyncio.run(go())


@pytest_asyncio.fixture(loop_scope="module")  # the loop of the module's one browser
async def review(batch: Path, tmp_path: Path) -> AsyncIterator[Served]:
    out = tmp_path / "out"
    shutil.copytree(batch, out)
    stop = asyncio.Event()
    printed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve([out], ready=printed.set_result, stop=stop))
    try:
        url = await asyncio.wait_for(asyncio.shield(printed), 30)
        yield Served(url, out)
    finally:
        stop.set()
        await task

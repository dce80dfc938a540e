"""Shared fixtures: a running Segmind v2 emulator on 127.0.0.1 (random port).

- ``emulator``: a started ``Emulator`` with the default config; stopped at teardown.
- ``make_emulator(**knobs)``: builds an ``Emulator(EmulatorConfig(**knobs))``, not yet started. Use it as
  ``async with make_emulator(latency_mean=0.05, rpm=10) as emu: ...``, or ``emu = make_emulator(...)``
  then ``await emu.start()``: any emulator it made that is still running is stopped at teardown.

Point clients at ``emu.base_url`` with the key ``batchflux.emulator.DEFAULT_API_KEY``.

The suite runs in parallel worker processes (pytest-xdist, ``-n``/``--dist loadfile`` in pyproject's
addopts: each file's tests stay in one worker). Files holding a test marked ``slow`` are collected
first, so that the minute-long ones start at once instead of being what the last worker is left with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from runkit import Clis

from batchflux.emulator import Emulator, EmulatorConfig


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a ``slow`` test first (their order among themselves, and every other file's, kept)."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig()) as emu:
        yield emu


@pytest.fixture
async def make_emulator() -> AsyncIterator[Callable[..., Emulator]]:
    made: list[Emulator] = []

    def factory(**knobs: Any) -> Emulator:
        emu = Emulator(EmulatorConfig(**knobs))
        made.append(emu)
        return emu

    yield factory
    for emu in made:
        await emu.stop()


@pytest.fixture
async def clis(tmp_path: Path) -> AsyncIterator[Clis]:
    """CLI children started in the test's tmp_path, killed at teardown if still running."""
    pool = Clis(tmp_path)
    try:
        yield pool
    finally:
        await pool.close()

"""Shared fixtures: a running Segmind v2 emulator on 127.0.0.1 (random port).

- ``emulator``: a started ``Emulator`` with the default config; stopped at teardown.
- ``make_emulator(**knobs)``: builds an ``Emulator(EmulatorConfig(**knobs))``, not yet started. Use it as
  ``async with make_emulator(latency_mean=0.05, rpm=10) as emu: ...``, or ``emu = make_emulator(...)``
  then ``await emu.start()``: any emulator it made that is still running is stopped at teardown.

Point clients at ``emu.base_url`` with the key ``batchflux.emulator.DEFAULT_API_KEY``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from runkit import Clis

from batchflux.emulator import Emulator, EmulatorConfig


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

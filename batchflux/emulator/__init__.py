"""A faithful local Segmind v2 server: for tests, the demo, benchmarks and users' CI.

It speaks ``segmind-v2.md`` closely enough that the official ``segmind`` SDK works against it
unchanged. Modules:

- :mod:`.config` — ``EmulatorConfig``, the knobs (latency, workers, quota, faults, credits, ...).
- :mod:`.schedule`, :mod:`.quota`, :mod:`.account`, :mod:`.jobs` — pure time-driven state.
- :mod:`.images`, :mod:`.outputs`, :mod:`.media`, :mod:`.inputs` — output images (pure, then cached),
  hosted bytes, reading inputs.
- :mod:`.history` — the request history's rows, queries and pages (pure).
- :mod:`.core` — the state and decisions behind every endpoint, with stats.
- :mod:`.app`, :mod:`.wire` — the aiohttp routes and response shapes (incl. broken ones).
- :mod:`.server` — ``Emulator``, the async context manager, and ``serve`` for the CLI.

May import: manifest (the model's parameter table it shares with the client). Only cli imports it.
"""

from batchflux.emulator.config import DEFAULT_API_KEY, FAULT_KINDS, EmulatorConfig
from batchflux.emulator.server import Emulator, serve

__all__ = ["DEFAULT_API_KEY", "FAULT_KINDS", "Emulator", "EmulatorConfig", "serve"]

"""batchflux: run thousands of FLUX.1 Kontext [max] edits through Segmind's async v2 queue.

No job lost, no job paid twice, the account's rate quota used to the full, and a clear
answer for every failure. See README.md and the docs in docs/.

    result = await batchflux.run_batch("catalog.yaml", rpm=50)
    result = await batchflux.run_batch([{"prompt": "…", "input_image": "cat.jpg"}], out_dir="out/x")
    async for row in batchflux.stream(jobs, rpm=50, out_dir="out/x"): ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from batchflux.engine.config import EngineConfig
    from batchflux.engine.pacing import Rate
    from batchflux.manifest import ManifestError
    from batchflux.run.api import Stream, run_batch, stream
    from batchflux.run.runner import RunResult

__all__ = [
    "EngineConfig",
    "ManifestError",
    "Rate",
    "RunResult",
    "Stream",
    "__version__",
    "run_batch",
    "stream",
]

# Imported on first use so that `batchflux --version` and the emulator stay light.
_LAZY = {
    "run_batch": "batchflux.run.api",
    "stream": "batchflux.run.api",
    "Stream": "batchflux.run.api",
    "RunResult": "batchflux.run.runner",
    "ManifestError": "batchflux.manifest",
    "EngineConfig": "batchflux.engine.config",
    "Rate": "batchflux.engine.pacing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'batchflux' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

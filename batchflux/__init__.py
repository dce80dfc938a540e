"""batchflux: run thousands of FLUX.1 Kontext [max] edits through Segmind's async v2 queue.

No job lost, no job paid twice, the account's rate quota used to the full, and a clear
answer for every failure. See README.md.

    result = await batchflux.run_batch("catalog.yaml", engine=EngineConfig(rate=Rate(50, 60)))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from batchflux.runner import RunResult, run_batch

__all__ = ["RunResult", "__version__", "run_batch"]


def __getattr__(name: str) -> Any:
    # Imported on first use so that `batchflux --version` and the emulator stay light.
    if name in ("run_batch", "RunResult"):
        from batchflux import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'batchflux' has no attribute {name!r}")

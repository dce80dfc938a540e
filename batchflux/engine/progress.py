"""The progress seam the engine reports to, and its null object (the Python API, tests).

The faces a person sees (tqdm bars, periodic log lines) live in :mod:`batchflux.run.progress`.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, total: int) -> None: ...
    def submitted(self) -> None: ...
    def done(self, *, skipped: bool = False) -> None: ...
    def failed(self, *, kept: bool = False) -> None: ...
    def update_postfix(
        self, *, in_flight: int, quota: int | None, rate_limited: int, learned: str | None = None
    ) -> None: ...
    def close(self) -> None: ...


class NullProgress:
    def start(self, total: int) -> None:
        pass

    def submitted(self) -> None:
        pass

    def done(self, *, skipped: bool = False) -> None:
        pass

    def failed(self, *, kept: bool = False) -> None:
        pass

    def update_postfix(
        self, *, in_flight: int, quota: int | None, rate_limited: int, learned: str | None = None
    ) -> None:
        pass

    def close(self) -> None:
        pass

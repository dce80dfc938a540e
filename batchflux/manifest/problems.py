"""Located manifest problems: what is wrong, in which file, on which line, in which field.

Validation never stops at the first mistake: every check reports into a :class:`ProblemLog`,
and :func:`batchflux.manifest.load_manifest` raises one :class:`ManifestError` holding them all.
"""

from __future__ import annotations

from dataclasses import dataclass

SHOWN_IN_MESSAGE = 50  # ManifestError's str() lists this many
KEPT = 1000  # problems kept beyond that are only counted


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake: ``catalog.yaml:14: jobs[3].aspect_ratio: '16:10' is not one of …``."""

    source: str  # the file, as the user named it; "" for jobs given from Python (no file)
    line: int | None  # 1-based; None when the problem is about the whole file or the command line
    field: str  # "jobs[3].aspect_ratio", "seed" (CSV), "" for the file itself
    message: str

    def __str__(self) -> str:
        if not self.source:
            return f"{self.field}: {self.message}" if self.field else self.message
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, str | int | None]:
        return {"source": self.source, "line": self.line, "field": self.field, "message": self.message}


class ManifestError(Exception):
    """The manifest cannot be run; nothing was submitted.

    ``problems`` holds the first :data:`KEPT` problems in the order found; ``total`` counts all.
    """

    def __init__(self, problems: list[Problem], total: int | None = None) -> None:
        self.problems = problems
        self.total = len(problems) if total is None else total
        super().__init__(self.total)

    def __str__(self) -> str:
        lines = [str(p) for p in self.problems[:SHOWN_IN_MESSAGE]]
        rest = self.total - len(lines)
        if rest > 0:
            lines.append(f"… and {rest} more")
        return "\n".join(lines)


class ProblemLog:
    """Collects problems for one manifest; keeps the first :data:`KEPT`, counts the rest."""

    __slots__ = ("_problems", "total")

    def __init__(self) -> None:
        self._problems: list[Problem] = []
        self.total = 0

    def add(self, source: str, line: int | None, field: str, message: str) -> None:
        self.total += 1
        if len(self._problems) < KEPT:
            self._problems.append(Problem(source, line, field, message))

    def __bool__(self) -> bool:
        return self.total > 0

    def error(self) -> ManifestError:
        """All problems kept, in file order: files as first met, then by line (file-level first)."""
        files: dict[str, int] = {}
        for problem in self._problems:
            files.setdefault(problem.source, len(files))
        ordered = sorted(self._problems, key=lambda p: (files[p.source], p.line or 0))
        return ManifestError(ordered, self.total)


class Located:
    """Reports for one file: ``at(line, field, message)``; a fatal problem can stop reading it."""

    __slots__ = ("log", "source")

    def __init__(self, log: ProblemLog, source: str) -> None:
        self.log = log
        self.source = source

    def at(self, line: int | None, field: str, message: str) -> None:
        self.log.add(self.source, line, field, message)


class StopReading(Exception):
    """Raised inside a reader after a problem that makes the rest of the file meaningless."""

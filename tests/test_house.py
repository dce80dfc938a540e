"""The package's wings and which may import which: the architecture as a test.

Every import in ``batchflux/`` counts, at any depth of a module (a function-level or
``TYPE_CHECKING`` import ties two modules as surely as a top-level one). Data flows one way:

    cli ─> run ─> engine ─> ledger ─> manifest
            │       │         └──> files ─> api
            ├─> rundir ─> ledger, files  (the run directory: local, or a bucket and a spool)
            └─> report ─> ledger, manifest, files        emulator ─> manifest (the model table)
    cli ─> review ─> report, rundir, ledger, manifest, files

and nothing imports ``cli``; only ``cli`` imports ``emulator``.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "batchflux"

WINGS = (
    "cli",
    "run",
    "rundir",
    "engine",
    "api",
    "files",
    "ledger",
    "manifest",
    "report",
    "review",
    "emulator",
)

# What each wing may import besides itself.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "cli": frozenset(
        {"run", "rundir", "engine", "api", "files", "ledger", "manifest", "report", "review", "emulator"}
    ),
    "run": frozenset({"rundir", "engine", "api", "files", "ledger", "manifest", "report"}),
    # The run directory, local or in a bucket: the one place that knows which it is.
    "rundir": frozenset({"files", "ledger"}),
    "engine": frozenset({"api", "files", "ledger", "manifest"}),
    "report": frozenset({"files", "ledger", "manifest"}),
    "review": frozenset({"report", "rundir", "files", "ledger", "manifest"}),
    "ledger": frozenset({"files", "manifest"}),
    "files": frozenset({"api"}),  # the media body it reads and the error it raises
    "api": frozenset(),
    "manifest": frozenset(),
    "emulator": frozenset({"manifest"}),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, name: str) -> Iterator[str]:
    """Every ``batchflux`` module that ``path`` imports, resolved to a module (or package) name."""
    known = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name``, mod.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            if target == "batchflux" or target.startswith("batchflux."):
                yield target


def wing_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def test_the_tree_is_the_eleven_wings_and_nothing_loose() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert loose == []
    wings = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert wings == sorted(WINGS)
    for wing in WINGS:
        doc = ast.get_docstring(ast.parse((PACKAGE / wing / "__init__.py").read_text(encoding="utf-8")))
        assert doc, f"batchflux/{wing}/__init__.py says what the wing is for"


@pytest.mark.parametrize("wing", WINGS)
def test_a_wing_imports_only_what_it_may(wing: str) -> None:
    wrong = []
    for name, path in modules().items():
        if wing_of(name) != wing:
            continue
        for target in imported(path, name):
            other = wing_of(target)
            if other is not None and other != wing and other not in MAY_IMPORT[wing]:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_no_import_circle() -> None:
    graph = {name: set(imported(path, name)) for name, path in modules().items()}
    done: set[str] = set()
    circles: list[list[str]] = []

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            circles.append([*trail[trail.index(name) :], name])
            return
        if name in done:
            return
        for target in sorted(graph.get(name, ())):
            if target != name:
                visit(target, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    # A package's __init__ that hands on its modules' names is not a circle with them.
    real = [c for c in circles if not _through_own_face(c)]
    assert real == []


def _through_own_face(circle: list[str]) -> bool:
    """A module importing a package it lives in (``from batchflux.ledger import X`` inside
    ``batchflux.ledger.resume``, ``from batchflux import __version__``), where that package's face
    imports the module back to hand its names on: the face is always loaded first, so Python
    resolves it, and the face only re-exports."""
    return any(b.startswith(a + ".") or a.startswith(b + ".") for a, b in itertools.pairwise(circle))


def test_the_rules_catch_a_wrong_import(tmp_path: Path) -> None:
    """The checker itself: a manifest module that imports the API is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from batchflux.api.client import ApiClient\n", encoding="utf-8")
    targets = list(imported(bad, "batchflux.manifest.bad"))
    assert targets == ["batchflux.api.client"]
    assert "api" not in MAY_IMPORT["manifest"]

"""The docs cannot drift from the code: the generated command line reference is current, every
reference table names everything the code has, the README stays a short front door whose links
resolve, and no file tells anyone to install batchflux from the package index (it is not there)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from batchflux.cli import build_parser
from batchflux.emulator import Emulator, EmulatorConfig
from batchflux.ledger.events import FAILURE_CAUSES, EventType
from batchflux.run.exitcodes import ExitCode
from batchflux.run.metrics import RunMetrics, render_metrics
from batchflux.run.results import STATUSES, columns, param_names
from batchflux.run.summary import RunSummary

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def gen_cli() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def code_spans(text: str) -> set[str]:
    return set(re.findall(r"`([^`\n]+)`", text))


# --- the generated command line reference ----------------------------------------------------------


def test_the_cli_reference_is_what_the_parsers_say() -> None:
    committed = page("reference/cli.md")
    assert gen_cli().current() == committed, "docs/reference/cli.md is stale: run python docs/gen_cli.py"


def test_the_cli_reference_has_every_command_and_option() -> None:
    text = gen_cli().current()
    parser = build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        section = text.split(f"\n## batchflux {name}\n", 1)[1].split("\n## batchflux ", 1)[0]
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in section, f"batchflux {name} {option} is not on the page"


def test_the_renderer_keeps_help_text_literal() -> None:
    parser = argparse.ArgumentParser(prog="batchflux")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="h", description="a <b>bold</b> | pipe * star_name")
    demo.add_argument("--latency", type=float, default=1.5, metavar="S", help="mean (default %(default)s)")
    demo.add_argument("--fault", action="append", metavar="KIND=RATE", help="repeatable")
    demo.add_argument("out", nargs="+", help="run directory")
    text = gen_cli().render(parser)
    assert "a &lt;b&gt;bold&lt;/b&gt; \\| pipe \\* star\\_name" in text
    assert "| `--latency S` | mean (default 1.5) |" in text
    assert "| `--fault KIND=RATE` | repeatable |" in text
    assert "batchflux demo [OPTIONS] out [out ...]" in text


# --- the hand-written reference tables name everything the code has ---------------------------------


def test_exit_codes_page_lists_every_exit_code() -> None:
    text = page("reference/exit-codes.md")
    for code in ExitCode:
        assert f"\n| {code.value} |" in text, code


def test_summary_page_lists_every_key() -> None:
    summary = RunSummary(
        run_id="r", manifest="m", out_dir="o", started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:00:01Z", wall_s=1.0, exit_code=0,
    )  # fmt: skip
    spans = code_spans(page("reference/summary-json.md"))
    missing = [key for key in summary.to_dict() if key not in spans]
    assert missing == [], f"docs/reference/summary-json.md does not describe {missing}"


def test_results_page_lists_every_column_and_status() -> None:
    spans = code_spans(page("reference/results.md"))
    missing = [c for c in (*columns(param_names("flux-kontext-max")), *STATUSES) if c not in spans]
    assert missing == [], f"docs/reference/results.md does not describe {missing}"


def test_ledger_page_lists_every_event_and_cause() -> None:
    spans = code_spans(page("reference/ledger.md"))
    missing = [n for n in (*(e.value for e in EventType), *FAILURE_CAUSES) if n not in spans]
    assert missing == [], f"docs/reference/ledger.md does not describe {missing}"


def test_metrics_page_lists_every_gauge() -> None:
    summary = RunSummary(
        run_id="r", manifest="m", out_dir="o", started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:00:01Z", wall_s=1.0, exit_code=0,
    )  # fmt: skip
    rendered = render_metrics(RunMetrics.from_summary(summary))
    gauges = re.findall(r"^# TYPE (\S+) gauge$", rendered, re.MULTILINE)
    assert len(gauges) >= 8
    table = page("reference/metrics.md").split("```", 1)[0]  # the table, not the example file
    missing = [g for g in gauges if f"| `{g}" not in table]
    assert missing == [], f"docs/reference/metrics.md does not describe {missing}"


async def test_emulator_page_lists_every_knob_and_counter() -> None:
    text = page("reference/emulator.md")
    spans = code_spans(text)
    missing = [f.name for f in dataclasses.fields(EmulatorConfig) if f.name not in spans]
    async with Emulator(EmulatorConfig()) as emu:
        stats = emu.stats()
    missing += [key for key in stats if key not in spans]
    assert missing == [], f"docs/reference/emulator.md does not describe {missing}"


# --- every page says what it is for; the README is a short front door ------------------------------


@pytest.mark.parametrize("path", sorted(DOCS.rglob("*.md")), ids=lambda p: str(p.relative_to(DOCS)))
def test_every_page_opens_with_what_it_is_for(path: Path) -> None:
    title, blank, purpose, *_ = path.read_text(encoding="utf-8").splitlines()
    assert title.startswith("# ")
    assert blank == ""
    assert purpose, f"{path.name}: no line saying what the page is for"
    assert purpose[0] not in "#|`<-!:", f"{path.name}: no line saying what the page is for"


def test_the_readme_is_a_short_front_door() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.encode()) <= 8 * 1024
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    assert "pip install . && batchflux demo" in first_block
    assert "pip install -e '.[test]' && python -m pytest" in first_block
    assert "pip install -e '.[docs]' && mkdocs build --strict" in text
    assert "mkdocs serve" in text


def test_the_readme_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    targets = [t for t in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) if "://" not in t]
    assert len(targets) > 20
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert missing == [], f"README.md links to missing files: {missing}"


# --- install instructions name only what exists ---------------------------------------------------

# Installing the bare name would fetch whatever the package index holds under it, which is not this
# project; a wheel file (batchflux-0.1.0-…whl) or a checkout is fine.
_FROM_THE_INDEX = re.compile("pip install " + r"""['"]?batchflux(?![\w.-]*\.whl)(?=$|[\s=<>~\["'`)])""", re.M)
_SKIP_DIRS = {
    ".git", "site", "build", "dist", "out", "__pycache__", ".venv",
    ".mypy_cache", ".ruff_cache", ".pytest_cache",
}  # fmt: skip


def test_no_file_says_to_install_batchflux_from_the_package_index() -> None:
    offenders = []
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if not path.is_file() or _SKIP_DIRS & set(parts) or path == Path(__file__):
            continue
        if any(part.endswith(".egg-info") for part in parts):  # pip's copy of the README, made by an install
            continue
        if path.suffix in {".png", ".jpg", ".jpeg", ".gif", ".webp", ".pyc"}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        offenders += [f"{path.relative_to(ROOT)}: {m.group(0)!r}" for m in _FROM_THE_INDEX.finditer(text)]
    assert offenders == []


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("pip install batchflux", True),
        ("/opt/b/bin/pip install batchflux\n", True),
        ("pip install batchflux==0.1.0", True),
        ("pip install 'batchflux[test]'", True),
        ("pip install batchflux[docs]", True),
        ("pip install batchflux-0.1.0-py3-none-any.whl", False),
        ("pip install dist/batchflux-0.1.0-py3-none-any.whl", False),
        ("pip install .", False),
        ("pip install batchfluxer", False),
    ],
)
def test_the_install_pattern(line: str, found: bool) -> None:
    assert bool(_FROM_THE_INDEX.search(line)) is found

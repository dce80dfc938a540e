"""Every command explains itself: ``--help`` text for the tool and each command, flags documented."""

from __future__ import annotations

import argparse

import pytest

from batchflux import __version__
from batchflux.cli import COMMANDS, build_parser, main


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_is_registered() -> None:
    assert sorted(subparsers()) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_every_option_is_documented(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: batchflux {command}")
    parser = subparsers()[command]
    assert parser.description
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"batchflux {command} {action.option_strings[0]} has no help text"


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert f"    {command}" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"batchflux {__version__}"


def test_run_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    main(["run", "--help"])
    out = capsys.readouterr().out
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "130"):
        assert f"\n  {code}" in out


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: batchflux" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "ten"])
@pytest.mark.parametrize(
    ("command", "option"), [("run", "--max-cost"), ("run", "--price"), ("validate", "--price")]
)
def test_money_options_refuse_what_is_not_an_amount(
    command: str, option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "m.yaml", option, value]) == 2
    assert f"argument {option}:" in capsys.readouterr().err

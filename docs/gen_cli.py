"""Write ``docs/reference/cli.md`` from the real argparse parsers, so the page cannot drift from ``--help``.

    python docs/gen_cli.py            # rewrite the page from batchflux.cli.build_parser()
    python docs/gen_cli.py --check    # exit 1, rewriting nothing, when the page differs

``tests/test_docs.py`` renders the page in memory and fails when the committed file differs. The
page is built from the parsers' actions (option strings, metavars, help texts, groups), not from
argparse's formatted help, so it reads the same whatever the terminal width or Python version.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parent / "reference" / "cli.md"
REGENERATE = "python docs/gen_cli.py"

_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": r"\|", "*": r"\*", "_": r"\_", "`": r"\`", "\\": "\\\\"}
)


def _text(text: str) -> str:
    """Help or description text as Markdown: one line, nothing in it read as markup."""
    return " ".join(text.split()).translate(_ESCAPES)


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise ValueError("the parser has no subcommands")


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar)
    if action.choices is not None:
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return action.dest.upper() if action.option_strings else action.dest


def _value(action: argparse.Action) -> str:
    """What follows the option (or stands for the positional), as argparse's usage writes it."""
    name = _metavar(action)
    nargs = action.nargs
    if nargs == 0:
        return ""
    if nargs is None:
        return name
    if nargs == "?":
        return f"[{name}]"
    if nargs == "*":
        return f"[{name} ...]"
    if nargs == "+":
        return f"{name} [{name} ...]"
    if isinstance(nargs, int):
        return " ".join([name] * nargs)
    raise ValueError(f"{action.dest}: nargs {nargs!r} is not rendered")


def _help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%" in text:
        params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
        params["prog"] = prog
        text = text % params
    return _text(text)


def _synopsis(command: str, parser: argparse.ArgumentParser) -> str:
    words = [f"batchflux {command}", "[OPTIONS]"]
    words += [_value(a) for a in parser._actions if not a.option_strings]
    return " ".join(words)


def _groups(parser: argparse.ArgumentParser) -> list[tuple[str, list[argparse.Action]]]:
    """Option groups in the parser's order, each with its options (``--help`` left out: every
    command has it)."""
    groups = []
    for group in parser._action_groups:
        actions = [
            a for a in group._group_actions if a.option_strings and not isinstance(a, argparse._HelpAction)
        ]
        if actions:
            groups.append((group.title or "options", actions))
    return groups


def _command(name: str, parser: argparse.ArgumentParser) -> list[str]:
    lines = [f"## batchflux {name}", ""]
    if parser.description:
        lines += [_text(parser.description), ""]
    lines += ["```text", _synopsis(name, parser), "```", ""]
    positionals = [a for a in parser._actions if not a.option_strings]
    if positionals:
        lines += ["| argument | meaning |", "|---|---|"]
        lines += [f"| `{_value(a)}` | {_help(a, parser.prog)} |" for a in positionals]
        lines.append("")
    for title, actions in _groups(parser):
        lines += [f"**{_text(title)}**", "", "| option | meaning |", "|---|---|"]
        for action in actions:
            value = _value(action)
            flags = ", ".join(f"`{opt}{' ' + value if value else ''}`" for opt in action.option_strings)
            lines.append(f"| {flags} | {_help(action, parser.prog)} |")
        lines.append("")
    if parser.epilog:
        lines += ["```text", parser.epilog.strip("\n"), "```", ""]
    return lines


def render(parser: argparse.ArgumentParser) -> str:
    """The whole page for the ``batchflux`` parser."""
    commands = _subparsers(parser)
    helps = {choice.dest: choice.help or "" for choice in commands._choices_actions}
    lines = [
        "# Command line",
        "",
        "Every command and option, generated from the argparse parsers that `batchflux COMMAND --help` "
        f"prints (`{REGENERATE}` rewrites this page; a test fails when it is out of date).",
        "",
        f"{_text(parser.description or '')}",
        "",
        "```text",
        "batchflux [--version] COMMAND [OPTIONS] ...",
        "```",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    lines += [
        f"| [`{name}`](#batchflux-{name}) | {_text(helps.get(name, ''))} |" for name in commands.choices
    ]
    lines.append("")
    if parser.epilog:
        lines += [_text(parser.epilog), ""]
    for name, sub in commands.choices.items():
        lines += _command(name, sub)
    return "\n".join(lines).rstrip("\n") + "\n"


def current() -> str:
    from batchflux.cli import build_parser

    return render(build_parser())


def main(argv: list[str]) -> int:
    text = current()
    if argv == ["--check"]:
        if PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE} is out of date: run {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The command line: parse, wire, print, return an exit code.

Each command lives in its own module exposing ``register(subparsers)``, which adds the
subparser and sets ``handler`` (``Callable[[argparse.Namespace], int]``) as its default.
Business logic stays in the package; these modules only translate between the user and it.

May import every other wing; nothing imports it. The only wing that imports the emulator.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from batchflux import __version__
from batchflux.run.console import quiet_std_streams
from batchflux.run.exitcodes import ExitCode

# One module per command, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = ("run", "validate", "status", "export", "report", "review", "demo", "emulate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchflux",
        description="Run FLUX.1 Kontext [max] image edits in bulk through Segmind's async v2 API.",
        epilog="Run 'batchflux COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"batchflux {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"batchflux.cli.cmd_{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help/--version
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return ExitCode.USAGE
    handler = args.handler
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


def entry() -> None:
    """The ``batchflux`` program. A reader of its output that goes away (``| head``, a closed
    terminal) silences it but never changes what it does or the exit code it returns."""
    quiet_std_streams()
    sys.exit(main())

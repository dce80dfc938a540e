"""``batchflux emulate``: serve the local Segmind v2 emulator until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from batchflux.emulator import Emulator, serve
from batchflux.emulator.options import add_arguments, config_from_args, export_lines
from batchflux.run.exitcodes import ExitCode

HELP = "serve a local Segmind v2 emulator (no network, no credits) until Ctrl-C"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "emulate",
        help=HELP,
        description=(
            "Serve a local emulator of Segmind's async v2 API that the official SDK and batchflux "
            "accept unchanged. Prints the environment to point a client at it, then serves until "
            "Ctrl-C or SIGTERM."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"batchflux emulate: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if args.access_log:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")

    def ready(emulator: Emulator) -> None:
        for line in export_lines(emulator.base_url, config.keys[0]):
            print(line)
        print(f"# emulator serving at {emulator.base_url}; Ctrl-C to stop", file=sys.stderr)
        if emulator.media_base_url:
            print(f"# output files served at {emulator.media_base_url}", file=sys.stderr)
        sys.stdout.flush()

    try:
        asyncio.run(serve(config, ready, access_log=args.access_log))
    except OSError as exc:  # e.g. the port is taken
        print(f"batchflux emulate: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    return ExitCode.OK

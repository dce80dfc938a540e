"""``python -m batchflux.emulator [knobs]``: serve the emulator for a parent process.

The first stdout line is ``BATCHFLUX_EMULATOR_URL=http://127.0.0.1:PORT`` (flushed), so a parent
(e.g. a benchmark) can read the port; the ``export`` lines follow. Stops on SIGINT/SIGTERM, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from batchflux.emulator.options import add_arguments, config_from_args, export_lines
from batchflux.emulator.server import Emulator, serve


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batchflux.emulator", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.access_log:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")

    def ready(emulator: Emulator) -> None:
        print(f"BATCHFLUX_EMULATOR_URL={emulator.base_url}")
        for line in export_lines(emulator.base_url, config.keys[0]):
            print(line)
        sys.stdout.flush()

    asyncio.run(serve(config, ready, access_log=args.access_log))
    return 0


if __name__ == "__main__":
    sys.exit(main())

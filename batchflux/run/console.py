"""The console — stdout and stderr — as something a command can lose without noticing.

Whatever reads batchflux's output can go away while it works: a ``| head`` that has read its line,
a ``| tee`` stopped by the same signal, a log pipe that died, an SSH session closed under the
terminal. Python ignores SIGPIPE, so the next write raises instead: ``BrokenPipeError`` (EPIPE) on a
pipe or socket, ``OSError`` EIO on a terminal that hung up. A run must not end — or miss a stop
signal — because nobody is watching it, and a command cut short by ``| head`` must not print a
traceback about it.

:class:`QuietStream` wraps a text stream. The first write or flush that fails marks it gone: its
file descriptor is pointed at /dev/null (so the interpreter's last flush, and anything else that
holds the descriptor, writes into nothing instead of failing again) and whatever is written after
is dropped. Any ``OSError`` counts, not only EPIPE and EIO: a ``2>file`` on a full disk is a console
that cannot be written either, and the console is only ever a view of the work.

:func:`quiet_std_streams` puts one on ``sys.stdout`` and on ``sys.stderr`` for the rest of the
process, so every writer that looks them up — ``print``, logging's console handler, the tqdm bars,
argparse, warnings — goes through it. The command's exit code is never changed by a lost console.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import TextIO


class QuietStream(io.TextIOBase, TextIO):
    """A text stream that never raises ``OSError`` on write or flush: the first failure makes it
    :attr:`gone`, and from then on writes are dropped (and reported as written)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self._gone = False

    @property
    def gone(self) -> bool:
        """A write or flush failed; nothing more reaches the stream."""
        return self._gone

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except OSError:
                self._lose()
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except OSError:
                self._lose()

    def _lose(self) -> None:
        self._gone = True
        # A stream without a descriptor (io.StringIO) has nothing to redirect.
        with contextlib.suppress(OSError, ValueError):
            fd = self._stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, fd)
            finally:
                os.close(null)
            self._stream.flush()  # what the failed write left in the buffer now goes to /dev/null

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return not self._gone and self._stream.isatty()

    # Plain attributes in the type stubs, read-only descriptors of ``io.TextIOBase`` at run time.
    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._stream.errors

    def __repr__(self) -> str:
        return f"<QuietStream {'gone' if self._gone else 'open'} {self._stream!r}>"


def quiet_std_streams() -> None:
    """Route ``sys.stdout`` and ``sys.stderr`` through :class:`QuietStream` (once; a stream that is
    ``None`` — its descriptor was closed before the start — stays ``None``)."""
    if sys.stdout is not None and not isinstance(sys.stdout, QuietStream):
        sys.stdout = QuietStream(sys.stdout)
    if sys.stderr is not None and not isinstance(sys.stderr, QuietStream):
        sys.stderr = QuietStream(sys.stderr)

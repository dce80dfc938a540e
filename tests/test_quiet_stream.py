"""QuietStream: a console whose reader went away is silenced, never raised into the caller."""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Iterator

import pytest
from runkit import FailingStream

from batchflux.run.console import QuietStream


@pytest.fixture
def widowed_pipe() -> Iterator[io.TextIOWrapper]:
    """The writing end of a pipe whose reader has gone (what ``| head`` leaves once it has its line)."""
    r, w = os.pipe()
    os.close(r)
    with open(w, "w", encoding="utf-8") as stream:
        yield stream


def test_a_write_to_a_pipe_without_reader_is_dropped_and_the_descriptor_goes_to_devnull(
    widowed_pipe: io.TextIOWrapper,
) -> None:
    with pytest.raises(BrokenPipeError):  # what a plain write meets
        os.write(widowed_pipe.fileno(), b"x\n")
    quiet = QuietStream(widowed_pipe)
    assert not quiet.gone
    assert quiet.write("first line\n") == len("first line\n")
    quiet.flush()
    assert quiet.gone
    fd = widowed_pipe.fileno()
    assert stat.S_ISCHR(os.fstat(fd).st_mode)
    assert os.fstat(fd).st_rdev == os.stat(os.devnull).st_rdev
    # Later writes are dropped, and the stream's own final flush (the interpreter's) succeeds.
    print("more", file=quiet, flush=True)
    widowed_pipe.flush()


@pytest.mark.parametrize("err", [errno.EPIPE, errno.EIO, errno.ENOSPC])
def test_any_oserror_silences_the_stream_for_good(err: int) -> None:
    inner = FailingStream(err)
    quiet = QuietStream(inner)
    for n in range(3):
        assert quiet.write(f"line {n}\n") == len(f"line {n}\n")
    assert quiet.gone
    assert inner.attempts == 1
    assert not quiet.isatty()


def test_other_errors_are_not_hidden() -> None:
    quiet = QuietStream(io.StringIO())
    with pytest.raises(TypeError):
        quiet.write(b"bytes")  # type: ignore[arg-type]
    assert not quiet.gone


def test_it_passes_writes_and_properties_through() -> None:
    inner = io.StringIO()
    quiet = QuietStream(inner)
    print("hello", file=quiet, flush=True)
    assert inner.getvalue() == "hello\n"
    assert quiet.writable()
    assert not quiet.isatty()
    assert quiet.encoding == inner.encoding
    assert quiet.errors == inner.errors

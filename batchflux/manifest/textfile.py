"""Bounded reading of manifest files: never a whole unbounded line or file in memory.

A YAML manifest is read whole but only up to :data:`MAX_YAML_BYTES`; a CSV is streamed line by
line, each line at most :data:`MAX_LINE_BYTES`, decoded as UTF-8 (a BOM is dropped) with the
exact line of a bad byte reported. Non-regular files (directories, FIFOs, devices) are refused
before they are opened, so nothing blocks.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from batchflux.manifest.problems import Located, StopReading

MAX_YAML_BYTES = 32 * 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class Unreadable(Exception):
    """The file cannot be read as a manifest; ``str()`` says why, in the user's terms."""


def check_regular_file(path: Path, kind: str = "a manifest file") -> os.stat_result:
    """The file's ``stat``; raises :class:`Unreadable` for a missing file, a directory or a device.

    ``kind`` names what the file should be, for the directory message ("is a directory, not <kind>").
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise Unreadable("file not found") from None
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror or exc}") from None
    except ValueError:  # os.stat refuses a name with a NUL byte before asking the system
        raise Unreadable("is not a file name (it holds a NUL character)") from None
    if stat.S_ISDIR(info.st_mode):
        raise Unreadable(f"is a directory, not {kind}")
    if not stat.S_ISREG(info.st_mode):
        raise Unreadable("is not a regular file")
    return info


def read_capped(path: Path, cap: int = MAX_YAML_BYTES) -> bytes:
    """The whole file if it is at most ``cap`` bytes; :class:`Unreadable` otherwise."""
    check_regular_file(path)
    try:
        with open(path, "rb") as f:
            data = f.read(cap + 1)
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > cap:
        mib = cap // (1024 * 1024)
        raise Unreadable(f"is larger than {mib} MiB; put long job lists in a CSV (jobs_csv:)")
    return data


def text_lines(path: Path, where: Located, max_line: int = MAX_LINE_BYTES) -> Iterator[str]:
    """The file's lines as text, line endings kept (for :mod:`csv`).

    A line longer than ``max_line`` bytes, bytes that are not UTF-8, or a UTF-16 file is reported
    at its line and ends the reading with :class:`StopReading`.
    """
    check_regular_file(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 — closed below; a generator must hold it open
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror or exc}") from None
    with f:
        number = 0
        while True:
            try:
                raw = f.readline(max_line + 1)
            except OSError as exc:
                where.at(number + 1, "", f"cannot read: {exc.strerror or exc}")
                raise StopReading from None
            if not raw:
                return
            number += 1
            if len(raw) > max_line:
                where.at(number, "", f"line is longer than {max_line // 1024} KiB; stopped reading")
                raise StopReading
            if number == 1:
                if raw.startswith(_UTF16_BOMS):
                    where.at(1, "", "the file is UTF-16; save it as UTF-8")
                    raise StopReading
                raw = raw.removeprefix(_UTF8_BOM)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                where.at(
                    number,
                    "",
                    f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start + 1} of the line); "
                    "save the file as UTF-8; stopped reading",
                )
                raise StopReading from None

"""Logging for a run: ``<out>/batchflux.log`` (rotated), optional stderr, text or JSON lines,
and never a secret in any of them.

Everything batchflux logs goes through the ``batchflux`` logger and its children
(``batchflux.engine``, …); :func:`configure_logging` puts the handlers on that logger (not on
the root, so an embedding application's logging is left alone) and returns a teardown.

Redaction happens twice, on purpose:

- :class:`RedactingFilter`, on every handler, rewrites the record itself — message with its args
  merged, exception and stack text, string extras — so every later handler sees clean data;
- every formatter redacts its finished line too. tqdm's ``logging_redirect_tqdm`` replaces the
  console handler with its own and copies its formatter and stream; only recent releases copy
  its filters too (tqdm issue #1581), so the formatter is what is certain to travel with it.

With progress bars, wrap the run in
``tqdm.contrib.logging.logging_redirect_tqdm(loggers=[logging.getLogger("batchflux")])``: the
stderr handler made here is a ``StreamHandler(sys.stderr)``, which tqdm recognises and
swaps for one that prints above the bars. Levels live on the logger, not the handlers, because
tqdm's replacement handler does not copy a handler level (tqdm issue #1272).

A console that cannot be written (its reader gone) silences the console handler, never the file:
see :class:`ConsoleHandler`. tqdm's replacement handler writes to the same stream, which the
``batchflux`` program routes through :class:`~batchflux.run.console.QuietStream`.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TextIO

from batchflux.files.layout import LOG_FILENAME
from batchflux.files.secrets import Redactor

LOGGER_NAME = "batchflux"
MAX_BYTES = 10 * 1024 * 1024
BACKUP_COUNT = 5

LogFormat = Literal["text", "json"]

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


FILE_ONLY = {"file_only": True}  # ``extra=`` of a line the console already has (the CLI printed it)


def _not_file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, "file_only", False)


def log_said(line: str) -> None:
    """Put a line the CLI printed itself (a summary, a stop message) in ``batchflux.log`` too."""
    logging.getLogger(LOGGER_NAME + ".cli").info(line, extra=FILE_ONLY)


class RedactingFilter(logging.Filter):
    """Rewrites each record so no secret survives in it; never drops a record."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._redact:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not turn logging into a crash
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = self._redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                record.__dict__[key] = self._redact(value)
        return True


def _iso_utc(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


class TextFormatter(logging.Formatter):
    """``2026-11-25T10:00:00.123Z INFO    batchflux.engine: message`` (file) or
    ``10:00:00 INFO    message`` (console, local time); the finished line is redacted."""

    def __init__(self, redact: Redactor, *, console: bool) -> None:
        fmt = (
            "%(asctime)s %(levelname)-7s %(message)s"
            if console
            else ("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        )
        super().__init__(fmt, datefmt="%H:%M:%S" if console else None)
        self._redact = redact
        self._console = console

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if self._console:
            return super().formatTime(record, datefmt)
        return _iso_utc(record.created)

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (ISO 8601 UTC), ``level``, ``logger``, ``msg``, the record's
    ``extra=`` fields, and ``exc`` / ``stack`` when present; the finished line is redacted."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in data:
                data[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exc"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        return self._redact(json.dumps(data, ensure_ascii=False, default=str))


class ConsoleHandler(logging.StreamHandler[TextIO]):
    """The console's handler: a ``StreamHandler`` that falls silent for good after its first failed
    write (the reader of a pipe gone: EPIPE; a terminal hung up: EIO), without the traceback
    ``logging`` would print for it. The file handler beside it carries on alone."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.silenced = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.silenced:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            self.silenced = True
        else:
            super().handleError(record)


def _formatter(fmt: LogFormat | str, redact: Redactor, *, console: bool) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter(redact)
    return TextFormatter(redact, console=console)


class _LogFile(logging.handlers.RotatingFileHandler):
    """The run's log file. A line it cannot write (a full or read-only disk) is dropped without
    logging's traceback on stderr: the engine stops the run on a full disk with a line of its own,
    and the console handler still shows every record."""

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handleError(record)


def configure_logging(
    out_dir: Path | None,
    *,
    level: int | str = logging.INFO,
    fmt: LogFormat | str = "text",
    secrets: Sequence[str | None] = (),
    console: bool = True,
    stream: TextIO | None = None,
    max_bytes: int = MAX_BYTES,
    backup_count: int = BACKUP_COUNT,
) -> Callable[[], None]:
    """Send the ``batchflux`` logger to ``<out_dir>/batchflux.log`` (when ``out_dir`` is given,
    rotated at ``max_bytes`` keeping ``backup_count`` old files) and to ``stream`` (default
    ``sys.stderr``) when ``console``, as ``fmt`` ("text" or "json") lines, with every string in
    ``secrets`` replaced by ``SG_***``. Returns a teardown that removes and closes these handlers
    and restores the logger as it was; calling it twice is harmless."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', got {fmt!r}")
    logger = logging.getLogger(LOGGER_NAME)
    saved = (logger.level, logger.propagate)
    redact = Redactor(secrets)
    redacting = RedactingFilter(redact)
    handlers: list[logging.Handler] = []
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        file_handler = _LogFile(
            out_dir / LOG_FILENAME, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
        )
        file_handler.setFormatter(_formatter(fmt, redact, console=False))
        handlers.append(file_handler)
    if console:
        console_handler = ConsoleHandler(stream if stream is not None else sys.stderr)
        console_handler.setFormatter(_formatter(fmt, redact, console=True))
        console_handler.addFilter(_not_file_only)
        handlers.append(console_handler)
    for handler in handlers:
        handler.addFilter(redacting)
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # our handlers are the whole story; the root's would duplicate and leak

    def teardown() -> None:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        handlers.clear()
        logger.setLevel(saved[0])
        logger.propagate = saved[1]

    return teardown

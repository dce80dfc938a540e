"""Run logging: batchflux.log (rotated), text and JSON lines, the console through tqdm's redirect,
and the API key redacted from every one of them."""

from __future__ import annotations

import errno
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from runkit import FailingStream
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from batchflux.files.secrets import REDACTED
from batchflux.run.logs import LOG_FILENAME, LOGGER_NAME, configure_logging

KEY = "SG_0123456789abcdef"
log = logging.getLogger("batchflux.engine")  # a child, as the engine's modules use
Teardowns = list[Callable[[], None]]


@pytest.fixture
def teardowns() -> Iterator[Teardowns]:
    pending: Teardowns = []
    yield pending
    for teardown in pending:
        teardown()


def _fail_with_key() -> None:
    raise RuntimeError(f"server said: bad key {KEY}")


def test_text_file_is_redacted(tmp_path: Path, teardowns: Teardowns) -> None:
    teardowns.append(configure_logging(tmp_path, fmt="text", secrets=[KEY], console=False))
    log.info("submitting with key %s to %s", KEY, "https://api.segmind.com")
    log.warning("header x-api-key: " + KEY, extra={"job": "a"})
    try:
        _fail_with_key()
    except RuntimeError:
        log.exception("call failed")
    teardowns.pop()()
    text = (tmp_path / LOG_FILENAME).read_text()
    assert KEY not in text
    assert f"submitting with key {REDACTED} to https://api.segmind.com" in text
    assert f"header x-api-key: {REDACTED}" in text
    assert f"RuntimeError: server said: bad key {REDACTED}" in text  # the traceback too
    assert "batchflux.engine: call failed" in text
    first = text.splitlines()[0]
    assert first[:4].isdigit()
    assert first.split(" ")[0].endswith("Z")  # UTC timestamps in the file


def test_json_lines_are_redacted_and_carry_extras(tmp_path: Path, teardowns: Teardowns) -> None:
    teardowns.append(configure_logging(tmp_path, fmt="json", secrets=[KEY], console=False))
    log.info("job %s done", "img-1", extra={"job": "img-1", "elapsed_s": 24.5, "request_id": "r-1"})
    log.warning("odd answer", extra={"body": {"echo": KEY}, "header": f"x-api-key={KEY}"})
    try:
        _fail_with_key()
    except RuntimeError:
        log.error("boom %s", KEY, exc_info=True)
    teardowns.pop()()
    raw = (tmp_path / LOG_FILENAME).read_text()
    assert KEY not in raw
    lines = [json.loads(line) for line in raw.splitlines()]
    assert len(lines) == 3
    first = lines[0]
    assert first["level"] == "INFO"
    assert first["logger"] == "batchflux.engine"
    assert first["msg"] == "job img-1 done"
    assert first["job"] == "img-1"
    assert first["elapsed_s"] == 24.5
    assert first["ts"].endswith("Z")
    assert lines[1]["header"] == f"x-api-key={REDACTED}"
    assert lines[1]["body"] == {"echo": REDACTED}  # a non-string extra, serialised then redacted
    assert lines[2]["msg"] == f"boom {REDACTED}"
    assert f"server said: bad key {REDACTED}" in lines[2]["exc"]


def test_console_goes_to_stderr_and_through_tqdm_redirect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], teardowns: Teardowns
) -> None:
    teardowns.append(configure_logging(tmp_path, fmt="text", secrets=[KEY], console=True))
    log.info("plain %s", KEY)
    logger = logging.getLogger(LOGGER_NAME)
    before = list(logger.handlers)
    with tqdm(total=3, file=io.StringIO()) as bar, logging_redirect_tqdm(loggers=[logger]):
        # tqdm swapped our stderr handler for its own; the file handler stays.
        assert len(logger.handlers) == 2
        assert any(isinstance(h, logging.handlers.RotatingFileHandler) for h in logger.handlers)
        ours = next(h for h in before if not isinstance(h, logging.FileHandler))
        assert ours not in logger.handlers
        log.warning("during the bars %s", KEY)
        # A tqdm that copies no filters (releases before the fix of tqdm#1581) still keeps the formatter.
        tqdm_handler = next(h for h in logger.handlers if h not in before)
        for f in list(tqdm_handler.filters):
            tqdm_handler.removeFilter(f)
        logging.getLogger(LOGGER_NAME).error("bare record " + KEY)
        bar.update(3)
    assert logger.handlers == before  # restored
    err = capsys.readouterr().err
    assert KEY not in err
    assert f"plain {REDACTED}" in err
    assert f"during the bars {REDACTED}" in err
    assert f"bare record {REDACTED}" in err
    teardowns.pop()()
    file_text = (tmp_path / LOG_FILENAME).read_text()
    assert f"during the bars {REDACTED}" in file_text
    assert KEY not in file_text


def test_rotation_keeps_a_bounded_number_of_files(tmp_path: Path, teardowns: Teardowns) -> None:
    teardowns.append(configure_logging(tmp_path, console=False, max_bytes=2000, backup_count=2))
    for i in range(200):
        log.info("line %d %s", i, "x" * 50)
    teardowns.pop()()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [LOG_FILENAME, f"{LOG_FILENAME}.1", f"{LOG_FILENAME}.2"]
    assert all((tmp_path / n).stat().st_size <= 2000 for n in names)
    assert "line 199 " in (tmp_path / LOG_FILENAME).read_text()


def test_levels_teardown_and_restoring_the_logger(tmp_path: Path) -> None:
    logger = logging.getLogger(LOGGER_NAME)
    saved = (logger.level, logger.propagate, list(logger.handlers))
    teardown = configure_logging(tmp_path, level="WARNING", console=False)
    log.info("not shown")
    log.warning("shown")
    teardown()
    teardown()  # twice is harmless
    log.warning("after teardown")
    text = (tmp_path / LOG_FILENAME).read_text()
    assert "shown" in text
    assert "not shown" not in text
    assert "after teardown" not in text
    assert (logger.level, logger.propagate, list(logger.handlers)) == saved


def test_no_out_dir_means_no_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    teardown = configure_logging(None, fmt="json", secrets=[KEY], console=True)
    try:
        log.info("hello %s", KEY)
    finally:
        teardown()
    line = json.loads(capsys.readouterr().err.strip())
    assert line["msg"] == f"hello {REDACTED}"
    assert list(tmp_path.iterdir()) == []


def test_empty_secrets_and_bad_format_strings_do_not_break_logging(
    tmp_path: Path, teardowns: Teardowns
) -> None:
    teardowns.append(configure_logging(tmp_path, secrets=["", None], console=False))
    log.info("nothing to hide")
    teardowns.append(configure_logging(tmp_path / "b", secrets=[KEY], console=False))
    log.info("count %d", "not a number")  # the filter formats the message: it must not raise
    for teardown in reversed(teardowns):
        teardown()
    teardowns.clear()
    assert "nothing to hide" in (tmp_path / LOG_FILENAME).read_text()
    assert "not a number" in (tmp_path / "b" / LOG_FILENAME).read_text()


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'text' or 'json'"):
        configure_logging(tmp_path, fmt="xml")
    assert not (tmp_path / LOG_FILENAME).exists()


def test_json_escaped_secret_is_redacted(tmp_path: Path, teardowns: Teardowns) -> None:
    odd = 'se"cret\\ünï'
    teardowns.append(configure_logging(tmp_path, fmt="json", secrets=[odd], console=False))
    log.info("x", extra={"data": {"k": odd}})  # repr inside, escaped by json.dumps
    log.info("y %s", odd)
    teardowns.pop()()
    raw = (tmp_path / LOG_FILENAME).read_text()
    assert json.loads(raw.splitlines()[1])["msg"] == f"y {REDACTED}"
    assert 'se\\"cret' not in raw
    assert "cret" not in raw.replace(REDACTED, "")


@pytest.mark.parametrize("err", [errno.EPIPE, errno.EIO])
def test_a_gone_console_silences_its_handler_and_the_file_carries_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], teardowns: Teardowns, err: int
) -> None:
    console = FailingStream(err)
    teardowns.append(configure_logging(tmp_path, console=True, stream=console))
    for n in range(3):
        log.warning("line %d", n)
    teardowns.pop()()
    assert console.attempts == 1  # dropped after its first failed write
    assert capsys.readouterr().err == ""  # no "--- Logging error ---" traceback from handleError
    text = (tmp_path / LOG_FILENAME).read_text()
    assert [n for n in range(3) if f"line {n}" in text] == [0, 1, 2]


def test_other_console_errors_are_still_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], teardowns: Teardowns
) -> None:
    teardowns.append(configure_logging(tmp_path, console=True))
    log.warning("%d", "not a number")  # a bug in a log call, not a lost console
    log.warning("still shown")
    teardowns.pop()()
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err
    assert "still shown" in err


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_filter_cleans_the_record_itself(tmp_path: Path, teardowns: Teardowns) -> None:
    # A handler added later without any redaction of its own (say, by an embedding app) gets a clean record.
    teardowns.append(configure_logging(tmp_path, secrets=[KEY], console=False))
    collect = _Collect()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(collect)
    try:
        try:
            _fail_with_key()
        except RuntimeError:
            log.error("key %s", KEY, exc_info=True, stack_info=True, extra={"token": KEY})
    finally:
        logger.removeHandler(collect)
    (record,) = collect.records
    assert record.getMessage() == f"key {REDACTED}"
    assert record.exc_text is not None
    assert KEY not in record.exc_text
    assert REDACTED in record.exc_text
    assert record.__dict__["token"] == REDACTED
    assert KEY not in logging.Formatter().format(record)

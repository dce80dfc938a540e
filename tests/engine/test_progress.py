"""Progress faces count what the engine reports, once each."""

from __future__ import annotations

import logging

import pytest

from batchflux.run.progress import BarProgress, LogProgress


def test_bars_count_resumed_jobs_once() -> None:
    bars = BarProgress()
    bars.start(10)
    for _ in range(3):
        bars.done(skipped=True)  # finished in an earlier run
    bars.failed(kept=True)
    bars.submitted()
    bars.done()
    assert (bars._sub.n, bars._done.n, bars._fail.n) == (5, 4, 1)
    bars.close()


def test_log_progress_line(caplog: pytest.LogCaptureFixture) -> None:
    progress = LogProgress(interval=0.0)
    progress.start(3)
    progress.done(skipped=True)
    progress.submitted()
    with caplog.at_level(logging.INFO, logger="batchflux.progress"):
        progress.update_postfix(in_flight=1, quota=7, rate_limited=2)
    assert "1/3 done, 0 failed, 1 submitted, 1 in flight, quota used 7, 2 429s" in caplog.text


def test_a_learned_quota_shows_in_the_progress_line(caplog: pytest.LogCaptureFixture) -> None:
    progress = LogProgress(interval=0.0)
    progress.start(3)
    with caplog.at_level(logging.INFO, logger="batchflux.progress"):
        progress.update_postfix(in_flight=1, quota=7, rate_limited=2, learned="60/6s")
    assert "quota used 7 of 60/6s (learned), 2 429s" in caplog.text

"""Progress display, a seam with three faces.

- :class:`BarProgress` — tqdm bars (submitted / done / failed) with in-flight count, quota use and
  429s in the postfix, for a terminal.
- :class:`LogProgress` — no bars; one log line every ``interval`` seconds, for cron and pipes.
- :class:`~batchflux.engine.progress.NullProgress` — nothing (``--no-progress`` with quiet logs, the Python
  API, tests), beside the protocol the engine reports to.
"""

from __future__ import annotations

import logging
import time
from typing import NoReturn

from tqdm import tqdm

log = logging.getLogger("batchflux.progress")


class _Counts:
    def __init__(self) -> None:
        self.total = self.submitted_n = self.done_n = self.failed_n = 0
        self.in_flight = self.rate_limited = 0
        self.quota: int | None = None
        self.learned: str | None = None

    def start(self, total: int) -> None:
        self.total = total

    def submitted(self) -> None:
        self.submitted_n += 1

    def done(self, *, skipped: bool = False) -> None:
        self.done_n += 1

    def failed(self, *, kept: bool = False) -> None:
        self.failed_n += 1

    def update_postfix(
        self, *, in_flight: int, quota: int | None, rate_limited: int, learned: str | None = None
    ) -> None:
        self.in_flight, self.quota, self.rate_limited, self.learned = in_flight, quota, rate_limited, learned

    def line(self) -> str:
        quota = f", quota used {self.quota}" if self.quota is not None else ""
        if self.learned is not None:
            quota += f" of {self.learned} (learned)"
        return (
            f"{self.done_n}/{self.total} done, {self.failed_n} failed, {self.submitted_n} submitted, "
            f"{self.in_flight} in flight{quota}, {self.rate_limited} 429s"
        )


class LogProgress(_Counts):
    def __init__(self, interval: float = 30.0) -> None:
        super().__init__()
        self.interval = interval
        self._last = time.monotonic()

    def update_postfix(
        self, *, in_flight: int, quota: int | None, rate_limited: int, learned: str | None = None
    ) -> None:
        super().update_postfix(in_flight=in_flight, quota=quota, rate_limited=rate_limited, learned=learned)
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            log.info("progress: %s", self.line())

    def close(self) -> None:
        log.info("progress: %s", self.line())


class BarProgress(_Counts):
    def __init__(self) -> None:
        super().__init__()
        self._bars: list[tqdm[NoReturn]] = []

    def start(self, total: int) -> None:
        super().start(total)
        fmt = "{desc:>10} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
        self._sub = tqdm(total=total, desc="submitted", position=0, bar_format=fmt, dynamic_ncols=True)
        self._done = tqdm(total=total, desc="done", position=1, bar_format=fmt, dynamic_ncols=True)
        self._fail = tqdm(total=total, desc="failed", position=2, bar_format=fmt, dynamic_ncols=True)
        self._bars = [self._sub, self._done, self._fail]
        # Jobs finished in an earlier run arrive at once from the engine's feeder as done(skipped=True)
        # and failed(kept=True): they fill the bars before the first submit.

    def submitted(self) -> None:
        super().submitted()
        self._sub.update(1)

    def done(self, *, skipped: bool = False) -> None:
        super().done()
        self._done.update(1)
        if skipped:
            self._sub.update(1)

    def failed(self, *, kept: bool = False) -> None:
        super().failed()
        self._fail.update(1)
        if kept:
            self._sub.update(1)

    def update_postfix(
        self, *, in_flight: int, quota: int | None, rate_limited: int, learned: str | None = None
    ) -> None:
        super().update_postfix(in_flight=in_flight, quota=quota, rate_limited=rate_limited, learned=learned)
        postfix: dict[str, object] = {"in_flight": in_flight, "429s": rate_limited}
        if quota is not None:
            postfix["quota"] = quota if learned is None else f"{quota} of {learned} learned"
        self._sub.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        for bar in self._bars:
            bar.close()

"""One host as the engine sees it: whether it answers, whose accident a failed call is, and the
line of calls waiting for it to come back.

A call that gets no answer or a 5xx tells one of two stories. On a host that answers other calls
meanwhile, it is the job's own accident: the job spends one of its tries. On a host where nothing
succeeds, it is the host's: no job spends anything, every call waits in line for the host, and one
of them (the first in line) probes it at a short, growing cadence. The first success lets the whole
line go, in order; the host's :class:`~.breaker.Breaker` opening (every call failed for its window)
ends the wait for calls that cannot outlive an outage (a submit gives up, nothing created), while
the others go on probing until the run ends. So no job fails for an outage, however long, and a
job that keeps failing while its host serves the others still fails, as before.

"Answered other calls meanwhile" is exact: a failure is the job's own when a success on the host
was recorded after the failed call was sent, or after its previous failure (so a job that fails
every time on a host that answers everyone else runs out of tries, rather than probing forever).

:class:`HostHealth` is the rule (pure; the caller gives the clock); :class:`Host` adds the line,
timer-driven.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from batchflux.engine.breaker import MIN_FAILURES, OUTAGE_AFTER_S, Breaker

PROBE_BASE_S = 0.1  # the first probe of a failing host, this long after its failure …
PROBE_CAP_S = 2.0  # … doubling up to this: a dead host is asked at most every 2 s
PROBE_TIMEOUT_S = 60.0  # a probe that never reported back no longer holds the line
# New calls join the line once this many calls in a row have failed; before, only the calls that
# failed do. One failure among many successes (a 502 here and there) holds nobody else up.
LINE_AFTER = 2


@dataclass(frozen=True, slots=True)
class Failure:
    own: bool  # the host answered other calls meanwhile: the job spends a try
    opened: bool  # this failure opened the host's breaker (an outage)


class HostHealth:
    """Pure: what the host's answers say, for the clock given."""

    __slots__ = ("_clock", "_last_failure", "_last_success", "breaker", "name")

    def __init__(
        self,
        name: str,
        clock: Callable[[], float],
        *,
        window_s: float = OUTAGE_AFTER_S,
        min_failures: int = MIN_FAILURES,
    ) -> None:
        self.name = name
        self._clock = clock
        self.breaker = Breaker(clock, window_s=window_s, min_failures=min_failures)
        self._last_success = -math.inf
        self._last_failure = -math.inf

    @property
    def answering(self) -> bool:
        """No call has failed since the last success."""
        return self.breaker.failures == 0

    @property
    def down(self) -> bool:
        """The breaker has decided: an outage."""
        return self.breaker.open

    def succeeded(self) -> None:
        """A call got an answer (any answer that proves the host is there)."""
        self.breaker.success()
        self._last_success = self._clock()

    def failed(self, since: float, error: object = "") -> Failure:
        """A call got no answer, or a 5xx. ``since``: when it was sent or, when it failed before,
        its previous failure: a success on the host after that makes it the call's own accident
        (the host answered others while this call kept failing)."""
        own = self._last_success > since
        self._last_failure = self._clock()
        return Failure(own=own, opened=self.breaker.failure(error))

    def probe_at(self) -> float:
        """When the next probe of a failing host may go: sooner after few failures."""
        failures = max(1, self.breaker.failures)
        return self._last_failure + min(PROBE_CAP_S, PROBE_BASE_S * 2.0 ** min(failures - 1, 16))

    def describe(self) -> str:
        return self.breaker.describe(self.name)


@dataclass(eq=False, slots=True)
class _Waiter:
    future: asyncio.Future[bool]
    keep_trying: bool


class Host(HostHealth):
    """The rule plus the line: :meth:`turn` before every call, then :meth:`succeeded` or
    :meth:`failed` after it."""

    __slots__ = ("_line", "_loop", "_probe_sent", "_timer")

    def __init__(
        self,
        name: str,
        clock: Callable[[], float],
        *,
        window_s: float = OUTAGE_AFTER_S,
        min_failures: int = MIN_FAILURES,
    ) -> None:
        super().__init__(name, clock, window_s=window_s, min_failures=min_failures)
        self._loop = asyncio.get_running_loop()
        self._line: deque[_Waiter] = deque()
        self._probe_sent: float | None = None  # a probe is out and has not reported back
        self._timer: asyncio.TimerHandle | None = None

    async def turn(self, *, keep_trying: bool = True, retry: bool = False) -> bool:
        """Wait until a call may go: at once while the host answers; else in line, until a call
        succeeds or this one's turn to probe comes. ``retry``: the call failed, and it was the
        host's failure; a new call joins the line only once :data:`LINE_AFTER` calls in a row
        failed. False (go no further) once the host is down and ``keep_trying`` is off, or when
        :meth:`give_up` is called."""
        if self.answering or (not retry and self.breaker.failures < LINE_AFTER):
            return True  # (while the host answers, nobody is in line: a success lets them all go)
        if self.down and not keep_trying:
            return False
        waiter = _Waiter(self._loop.create_future(), keep_trying)
        self._line.append(waiter)
        self._dispatch()
        try:
            return await waiter.future
        finally:
            if not waiter.future.done():  # cancelled while waiting
                waiter.future.cancel()

    def give_up(self) -> None:
        """The run is stopping: calls that cannot outlive it stop waiting (their turn says False)."""
        for waiter in self._line:
            if not waiter.keep_trying and not waiter.future.done():
                waiter.future.set_result(False)
        self._dispatch()

    def succeeded(self) -> None:
        super().succeeded()
        self._probe_sent = None
        self._dispatch()

    def failed(self, since: float, error: object = "") -> Failure:
        failure = super().failed(since, error)
        self._probe_sent = None
        self._dispatch()
        return failure

    def _dispatch(self) -> None:
        """Let go whom the host's state lets go, in the order they came."""
        line = self._line
        while line and line[0].future.done():
            line.popleft()
        if not line:
            return
        if self.answering:
            while line:
                waiter = line.popleft()
                if not waiter.future.done():
                    waiter.future.set_result(True)
            return
        if self.down:
            for waiter in line:
                if not waiter.keep_trying and not waiter.future.done():
                    waiter.future.set_result(False)
            while line and line[0].future.done():
                line.popleft()
            if not line:
                return
        now = self._clock()
        if self._probe_sent is not None and now - self._probe_sent < PROBE_TIMEOUT_S:
            self._wake_at(self._probe_sent + PROBE_TIMEOUT_S)
            return
        due = self.probe_at()
        if now >= due:  # the first in line probes
            self._probe_sent = now
            line.popleft().future.set_result(True)
            return
        self._wake_at(due)

    def _wake_at(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._dispatch)

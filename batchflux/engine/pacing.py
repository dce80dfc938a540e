"""Pacing primitives: the submit-rate limiter and the 429 pause gates.

All timing uses an injected monotonic clock (the loop's ``time``) and waits with timers —
``asyncio.sleep`` until a computed instant — never a spin.

- :class:`SlidingWindowLimiter` — never more than ``limit`` acquisitions in any ``period``-second
  window (a sliding-window log, as aiolimiter does for leaky buckets). Against a fixed-window
  server limiter it spends each window's quota as soon as it opens and nothing beyond it. Aligned
  to the server's windows, it counts in those instead.
- :class:`PauseGate` — a gate the calls of one kind pass before they go; a 429 on one of them
  closes it until the server's reset time (the pacer keeps one per kind of call).

With no ``--rate``, the limiter's rate is learned from the 429s (:mod:`batchflux.engine.quota`);
:mod:`batchflux.engine.pacer` puts the pieces together for every API call.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
PREP_MEMORY = 32  # calls whose preparation (grant to ready to send) the head start covers, the longest
HEAD_START = 0.1  # seconds, before any call was measured
MAX_HEAD_START = 0.25  # seconds, and at most a 20th of the window


@dataclass(slots=True, eq=False)
class Slot:
    """One call's place in the window."""

    at: float  # granted then; settled to the call's answer (the server had counted it by then)
    not_before: float  # the call goes no sooner: the server frees the place it takes only then


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` events per ``period`` seconds (``--rate 60/6s``; ``--rpm R`` is ``R/60s``)."""

    limit: int
    period: float

    def __str__(self) -> str:
        return f"{self.limit}/{self.period:g}s"


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(text: str) -> Rate:
    """``"60/6s"``, ``"1000/1h"``, ``"50/m"``, ``"50/60"`` → :class:`Rate`; ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([smh]?)\s*", text)
    if not m or not m.group(1) or (not m.group(2) and not m.group(3)):
        raise ValueError(f"{text!r} is not a rate like 50/60s, 60/6s or 1000/1h")
    limit = int(m.group(1))
    period = float(m.group(2) or 1) * _UNITS[m.group(3) or "s"]
    if limit < 1 or period <= 0:
        raise ValueError(f"{text!r}: a rate needs a positive limit and period")
    return Rate(limit, period)


class SlidingWindowLimiter:
    """At most ``rate.limit`` acquisitions in any window of ``rate.period`` seconds.

    Each acquisition stamps a slot; :meth:`acquire` returns the slot so the caller can
    :meth:`settle` it to the moment the server answered: the server saw the request no later than
    that, so the next window is counted from there and client/server skew cannot push a request
    into a window the server has already filled.

    A call is not sent the moment its slot is granted: a submit first records its intent and waits
    for the disk (~20 ms here). Counted from its answer, each slot would then come back that much
    later every window, and the windows' submits drift apart (0.09 s to 0.35 s over ten windows,
    measured). So, sliding, a slot is granted a *head start* early — the longest time the last 32
    calls took from grant to ready (:meth:`ready`) — and carries ``not_before``, the moment the
    place it takes frees: the call does its preparation meanwhile and goes no sooner (:meth:`ready`
    waits).

    Waiters are served in arrival order, ``urgent`` ones first (polls, when the server counts them
    toward the same quota as submits: a finished job should not wait behind new work). A timer at
    the instant the oldest slot leaves the window wakes the next waiter; nothing polls.

    Two refinements serve a quota that counts the polls too (the :class:`~.pacer.Pacer` turns them
    on):

    - :meth:`align` — count in the server's own fixed windows, one of which starts at a 429's
      reset: a slot is held until the end of the window it fell in. Sliding windows are stricter
      than the server's and copy each window's shape onto the next: calls held back to a window's
      opening free their slots at the next opening only, so a poll that falls due mid-window waits
      again, window after window (half a window of detection lag, measured). A slot within
      ``guard`` seconds of a boundary counts on both sides of it (the clocks' skew, the reset's
      precision).
    - :meth:`keep_room` — each normal acquisition (a submit) brings ``followups`` urgent ones
      later (its polls): the submits take ``limit / (1 + followups)`` of a window (rounded down
      when sliding; to the nearest when aligned, where an overshoot is taken off the next window)
      and leave the rest. Urgent-first alone does not keep that room: a window opens with no poll due yet, the
      submits take all of it at once, and the polls falling due a second later wait a window.
      Aligned, the polls already waiting at a window's opening come off the submits' part of that
      window, so a backlog is cleared in one window instead of being carried from window to window.
      The run's last submits are let past that share once all that are ``left`` fit in the
      window's free room: their polls wait for the next window, where a submit held over would
      have waited for it too, and then for its job's latency (1 or 2 jobs of 600 held over made
      a run end a window and a latency later, measured).
    """

    def __init__(self, rate: Rate, clock: Clock) -> None:
        self.rate = rate
        self._clock = clock
        self._log: deque[Slot] = deque()
        self._normal_log: deque[Slot] = deque()  # the normal acquisitions among them
        self.followups: float | None = None  # calls each normal acquisition brings (keep_room)
        self._left: Callable[[], int | None] = lambda: None  # normal acquisitions still to come
        self._boundary: float | None = None  # a start of the server's fixed windows (loop clock)
        self._preps: deque[float] = deque(maxlen=PREP_MEMORY)  # recent calls' grant to ready
        self.head_start = min(HEAD_START, rate.period / 20)
        # When the places of slots let go ahead of time truly free (sliding, with a head start):
        # each is the ``not_before`` of a grant to come.
        self._freeing: list[float] = []  # sorted
        self.guard = 0.0
        # Aligned: the current window's index, the urgent acquisitions before its first normal one,
        # and whether that has come.
        self._opening = (-1, 0, False)
        self._urgent: deque[asyncio.Future[Slot]] = deque()
        self._normal: deque[asyncio.Future[Slot]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    async def acquire(self, *, urgent: bool = False) -> Slot:
        if not self._urgent and not self._normal and self._room(normal=not urgent):
            return self._take(normal=not urgent)
        waiter: asyncio.Future[Slot] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._normal).append(waiter)
        self._serve()
        try:
            return await waiter
        except asyncio.CancelledError:
            line = self._urgent if urgent else self._normal
            if waiter.done() and not waiter.cancelled():  # granted as it was cancelled: give it back
                self._forget(waiter.result())
            elif waiter in line:  # not yet dropped by a _serve() that found it cancelled
                line.remove(waiter)
            self._serve()
            raise

    def set_rate(self, rate: Rate) -> None:
        """A new rate, from the next acquisition on (a learned quota, revised)."""
        self.rate = rate
        self._wake()

    def align(self, boundary: float | None, guard: float) -> None:
        """Count in the server's fixed windows, one of which starts at ``boundary`` (None: count in
        a sliding window again, as a sliding limiter does)."""
        self._boundary = boundary
        self.guard = guard
        self._wake()

    def seed(self, taken: list[float], *, normal: bool = True) -> None:
        """Calls made (at these times, none before a slot already held) without a slot: they hold
        one now. ``normal``: they are submits, not urgent calls."""
        for at in sorted(taken):
            slot = Slot(at, at)
            self._log.append(slot)
            if normal:
                self._normal_log.append(slot)
        self._wake()

    async def ready(self, slot: Slot, *, prepared: bool = True) -> None:
        """The call of ``slot`` is ready to go: wait until it may (its ``not_before``).
        ``prepared``: it was prepared since its grant, and the time that took sizes the head start."""
        now = self._clock()
        if prepared:
            self._preps.append(max(0.0, now - slot.at))
            self.head_start = min(max(self._preps), MAX_HEAD_START, self.rate.period / 20)
        if slot.not_before > now:
            await asyncio.sleep(slot.not_before - now)

    def keep_room(self, followups: float | None, left: Callable[[], int | None] | None = None) -> None:
        """Leave each window room for ``followups`` urgent calls per normal one (None: no room kept).
        ``left()``: the normal acquisitions still to come in the run (None: not known yet)."""
        self.followups = None if followups is None else max(0.0, followups)
        if left is not None:
            self._left = left
        self._wake()

    def _index(self, at: float) -> int:
        assert self._boundary is not None
        return math.floor((at - self._boundary) / self.rate.period)

    def _expiry(self, at: float) -> float:
        """When a slot taken at ``at`` stops counting."""
        period = self.rate.period
        if self._boundary is None:
            return at + period
        # The end of the window that ``at`` falls in (or, within the guard of its end, the next one).
        return self._boundary + (self._index(at + self.guard) + 1) * period + self.guard

    def _share(self) -> int | None:
        """How many normal acquisitions the current window admits."""
        if self.followups is None:
            return None
        left = self._left()
        if left is not None and len(self._log) + left <= self.rate.limit:
            return None  # the run's last submits: all fit
        room = self.rate.limit
        if self._boundary is None:
            return max(1, math.floor(room / (1.0 + self.followups)))
        index, early, _ = self._opening
        if index == self._index(self._clock()):
            room -= early
        # Rounded to the nearest: a window a call over leaves that call waiting at the next opening,
        # which takes it off the next window's submits; rounding down would waste up to a job's
        # calls in every window.
        return max(0, math.floor(room / (1.0 + self.followups) + 0.5))

    @property
    def early(self) -> float:
        """How long before its place frees a slot may be granted (sliding only: a slot of the
        server's fixed windows counts in the window it is taken in, and must not be taken in the
        one before)."""
        return self.head_start if self._boundary is None else 0.0

    def _room(self, *, normal: bool) -> bool:
        now = self._clock()
        early = self.early
        while self._freeing and self._freeing[0] <= now:
            del self._freeing[0]
        while self._log and (frees := self._expiry(self._log[0].at)) - early <= now:
            self._log.popleft()
            if frees > now:
                bisect.insort(self._freeing, frees)
        if len(self._log) >= self.rate.limit:
            return False
        share = self._share() if normal else None
        if share is None:
            return True
        while self._normal_log and self._expiry(self._normal_log[0].at) - early <= now:
            self._normal_log.popleft()
        return len(self._normal_log) < share

    def _take(self, *, normal: bool, waited: bool = False) -> Slot:
        now = self._clock()
        slot = Slot(now, self._freeing.pop(0) if self._freeing else now)
        self._log.append(slot)
        if normal:
            self._normal_log.append(slot)
        if self._boundary is not None:
            index, early, started = self._opening
            if index != (now_index := self._index(now)):
                index, early, started = now_index, 0, False
            if normal:
                started = True
            elif waited and not started:  # an urgent call held over from the last window
                early += 1
            self._opening = (index, early, started)
        return slot

    def _forget(self, slot: Slot) -> None:
        """A slot unused after all: its place is free again, from its ``not_before`` on."""
        if slot.not_before > self._clock():
            bisect.insort(self._freeing, slot.not_before)
        for log in (self._log, self._normal_log):
            for i, held in enumerate(log):
                if held is slot:
                    del log[i]
                    break

    def _wake(self) -> None:
        if self._urgent or self._normal:
            self._serve()

    def _serve(self) -> None:
        """Hand free slots to the waiters, urgent first; time the next wake-up if any are left."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for line, normal in ((self._urgent, False), (self._normal, True)):
            while line and self._room(normal=normal):
                waiter = line.popleft()
                if not waiter.done():
                    waiter.set_result(self._take(normal=normal, waited=True))
        if not (self._urgent or self._normal):
            return
        if self._urgent or len(self._log) >= self.rate.limit:
            at = self._expiry(self._log[0].at) - self.early  # full: its oldest slot frees one
        else:  # the submits' part is spent: their oldest slot frees one, or the next window opens
            at = self._expiry(self._normal_log[0].at) - self.early if self._normal_log else math.inf
            if self._boundary is not None:
                opens = self._boundary + (self._index(self._clock()) + 1) * self.rate.period
                at = min(at, opens + self.guard)
            if at == math.inf:
                return
        self._timer = asyncio.get_running_loop().call_at(at, self._serve)

    def settle(self, slot: Slot) -> None:
        slot.at = max(slot.at, self._clock())

    def give_back(self, slot: Slot) -> None:
        """The server refused the call (a 429) and so counted nothing: its slot is free again."""
        self._forget(slot)
        self._wake()

    def used(self) -> int:
        """Acquisitions in the current window (for the progress bar's quota figure)."""
        now = self._clock()
        freeing = sum(1 for at in self._freeing if at > now)  # let go early, still counted
        return freeing + sum(1 for s in self._log if self._expiry(s.at) > now)


class PauseGate:
    """Closed until ``resume_at`` (monotonic); every API call passes :meth:`wait` first."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.resume_at = 0.0
        self.pauses = 0

    def pause_for(self, delay: float) -> bool:
        """Close the gate for ``delay`` seconds from now (never shortening a pause); True when
        this starts a new pause rather than extending one."""
        now = self._clock()
        until = now + max(0.0, delay)
        if until <= self.resume_at:
            return False
        new = self.resume_at <= now
        if new:
            self.pauses += 1
        self.resume_at = until
        return new

    @property
    def paused(self) -> bool:
        return self._clock() < self.resume_at

    async def wait(self, *, early: float = 0.0) -> None:
        """Until the pause ends (``early`` seconds before: the caller waits out the rest itself)."""
        # Sleeps exactly until the reset; loops only when another 429 pushed the reset later.
        while (delay := self.resume_at - early - self._clock()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)

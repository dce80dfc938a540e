"""What the account's quota lets through: every API call passes the :class:`Pacer` before it goes
and tells it how the server answered.

- One :class:`~.pacing.PauseGate` per kind of call (:data:`GATE_KINDS`): a 429 pauses the calls of
  its kind until the server's reset, and on the API's host every kind its quota counts (one quota:
  a 429 on a poll says the submits' window is full too). A new pause is handed to ``on_pause`` (the ledger's
  ``paused`` event), and a run started inside one waits it out.
- The window limiter: told (``--rate``/``--rpm``), or learned from the 429s
  (:class:`~.quota.QuotaLearner`) and then counted in the server's own windows.
- Kinds the server has shown it counts toward the quota (a 429 on one) are paced by the limiter
  too, ahead of the submits; once polls are among them, each window keeps room for the polls its
  submits will make (:class:`~.quota.FollowUps`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping

from batchflux.api import RateLimited, policy
from batchflux.engine.pacing import Clock, PauseGate, Rate, SlidingWindowLimiter, Slot
from batchflux.engine.quota import SLIDING, FollowUps, QuotaLearner, suggest_flag

log = logging.getLogger("batchflux.engine")

# Kinds of call that a 429 pauses together: status and result calls are both polling.
GATE_KINDS = ("submit", "poll", "upload", "history")
GATE_OF = {"status": "poll", "result": "poll", "history_record": "history"}
API_KINDS = ("submit", "poll")  # the kinds the API's own host serves: one quota
# A call this close to a learned window's boundary counts on both sides of it: the reset header's
# precision and the clocks' skew (at most a 60th of the window, so ≤ 1.7 % of it is spent twice).
ALIGN_GUARD_S = 0.25
# A pause the limiter paces ends this long after the reset: the emulator's header is rounded up to
# the millisecond. (Segmind's precision is undocumented; a reset read early meets one more 429, and
# the limiter, counting from the calls' answers, holds the window's calls back meanwhile.)
RESET_PRECISION_S = 0.002


def gate_kind(kind: str) -> str:
    """The gate a kind of call passes (``status`` and ``result`` are both ``poll``)."""
    return GATE_OF.get(kind, kind)


class Pacer:
    def __init__(
        self,
        rate: Rate | None,
        clock: Clock,
        *,
        rng: random.Random,
        wall: Callable[[], float] = time.time,
        on_pause: Callable[[str, float], None] = lambda kind, until: None,
        pauses: Mapping[str, float] | None = None,
        to_submit: Callable[[], int | None] = lambda: None,
    ) -> None:
        """``rate``: the quota as told (None: learn it). ``on_pause(kind, until)``: a new pause the
        server announced (unix end time). ``pauses``: the ledger's announced pauses by kind (unix
        end times); a kind still inside one waits it out. ``to_submit()``: the jobs the run has
        left to submit (None: not known yet)."""
        self._clock = clock
        self._rng = rng
        self._wall = wall
        self._on_pause = on_pause
        self._to_submit = to_submit
        self._loop = asyncio.get_running_loop()
        self.gates = {kind: PauseGate(clock) for kind in GATE_KINDS}
        self.limiter = SlidingWindowLimiter(rate, clock) if rate else None
        self.quota = None if rate else QuotaLearner(clock)
        self.one_at_a_time = asyncio.Lock()  # submits measuring a quota's window go through it
        self.counted: set[str] = set()  # kinds of call the server has limited (so counts toward its quota)
        self.followups = FollowUps()  # calls a job makes after its submit: polls' share of a window
        self._places = 0  # submits let into the window after the first 429 while it is measured
        self._said_rate: Rate | None = None  # the learned quota as last logged
        self._announce: asyncio.TimerHandle | None = None
        self._wait_out(pauses or {})

    # ---- before a call -------------------------------------------------------------------

    def gate(self, kind: str) -> PauseGate:
        return self.gates[gate_kind(kind)]

    def measuring_alone(self, in_flight: int) -> bool:
        """Whether a submit should go alone (:attr:`one_at_a_time`) while the quota's window is measured."""
        return self.quota is not None and not self.quota.admits(in_flight)

    async def admit(self, kind: str, *, urgent: bool) -> Slot | None:
        """Wait out the kind's pause, then take a slot of the quota's window: submits always (None:
        no limiter yet), other kinds once the server counts them. In that order, and again if a 429
        paused the kind meanwhile: a slot taken before a pause would count in the window the pause
        ends, while the call lands in the next one."""
        kind = gate_kind(kind)
        gate = self.gates[kind]
        paced = kind == "submit" or kind in self.counted
        while True:
            # Sliding, a submit is let through a pause's end early by the limiter's head start: it
            # prepares meanwhile and goes at the reset (its slot's not_before), not a preparation
            # later (a window's 60 submits spread over 0.22 s instead of 0.08, measured).
            early = self.limiter.early if self.limiter is not None and paced else 0.0
            await gate.wait(early=early)
            if self.limiter is None or not paced:
                return None
            slot = await self.limiter.acquire(urgent=urgent)
            if gate.resume_at - self.limiter.early <= self._clock():
                slot.not_before = max(slot.not_before, gate.resume_at)
                if kind != "submit":  # sent at once: nothing to prepare while its place frees
                    await self.ready(slot, kind, prepared=False)
                return slot
            self.limiter.give_back(slot)

    # ---- after it ------------------------------------------------------------------------

    async def ready(self, slot: Slot | None, kind: str = "submit", *, prepared: bool = True) -> None:
        """The call of ``slot`` is prepared: wait until its place in the window is free, and out
        any pause a 429 announced meanwhile."""
        if slot is not None and self.limiter is not None:
            await self.limiter.ready(slot, prepared=prepared)
        gate = self.gate(kind)
        await gate.wait()
        if self.limiter is None and kind == "submit" and await self._take_place():
            await gate.wait()  # a 429 came meanwhile

    def answered(self, slot: Slot | None) -> None:
        """The server saw the call no later than now: its window is counted from here."""
        if slot is not None and self.limiter is not None:
            self.limiter.settle(slot)

    def accepted(self, kind: str, sent: float | None = None, slot: Slot | None = None) -> None:
        """A call of a kind the quota counts, sent at ``sent`` (loop clock; None: not told) with
        ``slot`` (None: it took none), was accepted (the learner counts the window's calls, each
        counted by the server in between)."""
        kind = gate_kind(kind)
        if kind != "submit" and kind not in self.counted:
            return
        if slot is None and self.limiter is not None:
            # Sent before there was a limiter (or before its kind was known to count), answered
            # after: the server counted it all the same. Left out, the window it falls in would
            # admit one call more than the quota, and that call's 429 pause every caller.
            self.limiter.seed([self._clock()], normal=kind == "submit")
        if self.quota is not None:
            self._learned(self.quota.accepted(sent))

    def rate_limited(self, exc: RateLimited, attempt: int, kind: str, slot: Slot | None = None) -> None:
        """A 429 on a call of ``kind``: its slot goes back (the server counted nothing), and that
        kind pauses until the server's reset."""
        if slot is not None and self.limiter is not None:
            self.limiter.give_back(slot)
        kind = gate_kind(kind)
        if kind not in self.counted:
            self.counted.add(kind)
            if kind != "submit":
                log.info("the API counts %s calls toward the quota: they are paced with the submits", kind)
                self._keep_room()
        if self.quota is not None:  # every 429 is evidence for the learner
            used = self.limiter.used() if self.limiter is not None else None
            self._learned(self.quota.rate_limited(exc.delay_s, used=used))
            self._align(exc.delay_s)
        delay = policy.rate_limit_delay(exc, attempt, self._rng)
        # Once the limiter lets through no more than the quota from the reset on, or while the
        # window is measured and each submit goes when its place frees (ready), the pause needs no
        # cushion or jitter to spread the callers, and each would hold back a whole window's
        # opening (~0.1 s at every 429, measured).
        paced = self.limiter is not None and kind in API_KINDS
        placed = self._measuring and self.paused_with(kind) == ["submit"]
        if exc.delay_s is not None and (paced or placed):
            delay = min(delay, max(0.0, exc.delay_s) + RESET_PRECISION_S)
        for paused in self.paused_with(kind):
            gate = self.gates[paused]
            if exc.delay_s is not None and gate.resume_at >= self._clock() + exc.delay_s:
                # The pause already covers this reset: the calls refused together announce one
                # reset, and each 429's own jitter would only push the pause to the latest of them
                # (reset + ~0.15 s after a burst of 16, measured, where one draw averages 0.1 s).
                continue
            if gate.pause_for(delay) and exc.delay_s is not None:
                self._on_pause(paused, self._wall() + delay)

    def paused_with(self, kind: str) -> list[str]:
        """The kinds a 429 on ``kind`` pauses: on the API's host, whose quota is one, every kind it
        counts (submits, and polls once a 429 showed they count); elsewhere (the upload host, the
        request history) the kind alone."""
        kind = gate_kind(kind)
        if kind not in API_KINDS or kind not in self.counted:
            return [kind]
        return [k for k in API_KINDS if k == "submit" or k in self.counted]

    def followed_up(self, calls: int) -> None:
        """A job's result is in, after ``calls`` status and result calls."""
        self.followups.observe(calls)
        self._keep_room()

    # ---- what it knows -------------------------------------------------------------------

    def used(self) -> int | None:
        """Calls in the current window (None: no limiter)."""
        return self.limiter.used() if self.limiter is not None else None

    @property
    def learned_rate(self) -> Rate | None:
        return self.quota.rate if self.quota is not None else None

    def say_quota(self) -> None:
        """Log the learned quota, if it changed since it was last said."""
        if self._announce is not None:
            self._announce.cancel()
            self._announce = None
        rate = self.learned_rate
        if rate is None or rate == self._said_rate:
            return
        assert self.quota is not None
        kind = self.quota.kind or "fixed"
        if self._said_rate is None:
            log.info("learned the quota from the 429s: %s a %s window; pass %s to start at it next time",
                     rate, kind, suggest_flag(rate))  # fmt: skip
        else:
            log.info("quota revised: %s (%s window)", rate, kind)
        self._said_rate = rate

    # ---- inside --------------------------------------------------------------------------

    @property
    def _measuring(self) -> bool:
        return self.quota is not None and self.quota.measuring

    def _learned(self, rate: Rate | None) -> None:
        """The learner has a new rate: pace by it from now on."""
        if rate is None:
            return
        if self.limiter is None:
            self.limiter = SlidingWindowLimiter(rate, self._clock)
            assert self.quota is not None
            self.limiter.seed(self.quota.recent(rate.period))  # the calls already in the window
        else:
            self.limiter.set_rate(rate)
        self._keep_room()
        # Said once the window that measured it is over: answers still on the wire may raise it.
        if self._announce is not None:
            self._announce.cancel()
        assert self.quota is not None
        self._announce = self._loop.call_at(self.quota.settles_at, self.say_quota)

    async def _take_place(self) -> bool:
        """While the quota's window is measured, a submit goes when its place in the window after
        the first 429 frees (:meth:`~.quota.QuotaLearner.frees_at`): the calls that 429 refused come
        back one by one as the places free, not all at once a cushion after the reset (so its pause
        needs none). Returns whether it waited."""
        at = self.quota.frees_at(self._places) if self.quota is not None else None
        if at is None:
            return False
        self._places += 1
        if (wait := at - self._clock()) <= 0:
            return False
        await asyncio.sleep(wait)
        return True

    def _align(self, delay: float | None) -> None:
        """A learned quota counts in the server's own windows: fixed ones start at the reset of a
        429 that fit them; a sliding one is counted as sliding. A busy 429 moves nothing."""
        assert self.quota is not None
        if self.limiter is None or delay is None:
            return
        if self.quota.kind == SLIDING:
            self.limiter.align(None, guard=0.0)
        elif self.quota.fitted:
            period = self.limiter.rate.period
            self.limiter.align(self._clock() + delay, guard=min(ALIGN_GUARD_S, period / 60))

    def _keep_room(self) -> None:
        """Once polls count toward the quota, each window keeps room for the polls of its submits."""
        if self.limiter is not None and "poll" in self.counted:
            self.limiter.keep_room(self.followups.mean, left=self._to_submit)

    def _wait_out(self, pauses: Mapping[str, float]) -> None:
        now = self._wall()
        for kind, until in pauses.items():
            if kind in self.gates and until > now:
                log.info("the API asked for a pause of %s calls until %s; waiting it out (%.1fs)",
                         kind, time.strftime("%H:%M:%S", time.localtime(until)), until - now)  # fmt: skip
                self.gates[kind].pause_for(until - now)

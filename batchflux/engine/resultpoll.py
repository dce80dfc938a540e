"""Whether a poll goes to the result URL instead of the status URL (pure).

When polls count toward the quota, a job's calls are its submit, its status polls, and one result
call once a status said COMPLETED. If the result URL answers a request not finished yet with its
non-terminal status (undocumented; segmind-v2.md guesses it does), polling it alone saves that last
call: the poll that finds the job done brings its output too. So once polls are known to count,
polls go to the result URL as probes until one meets a request not finished yet, once per run: its
non-terminal status → every poll goes there from then on; a 404 → polls stay on the status URL, as
before. A probe that finds its request already done (an ordinary result fetch) or gets no answer
says nothing: the next poll probes again.

Polls come due where 90 % of jobs are done, so most probes found their request done and said
nothing, while every other poll waited for them: a learned run with polls counted saw its jobs done
4.5 s (p50) after they finished, and learned the answer near its end. So a request just submitted,
surely not finished, is polled at once as a probe (:meth:`ResultPolling.plan_probe`): one counted
call more in the run, and the answer within a call.
"""

from __future__ import annotations

import enum

# Probes under way at once. A probe that finds its request already done is an ordinary result fetch
# (its output, one call) but says nothing, and most do: first polls aim where 90 % of jobs are done.
# One at a time would make them a queue; a few at once cost at most this many 404s where the URL
# does not answer pending requests.
MAX_PROBES = 4


class Via(enum.Enum):
    STATUS = "status"
    RESULT = "result"
    PROBE = "probe"  # the result URL, to learn whether it answers a request not finished yet
    WAIT = "wait"  # a probe is under way: look again shortly, by whichever URL it finds


class ResultPolling:
    __slots__ = ("_probing", "_young", "answers_pending")

    def __init__(self) -> None:
        self.answers_pending: bool | None = None  # None: not known yet
        self._probing = 0
        self._young: object | None = None  # the just-submitted request probed, while under way

    def plan_probe(self, polls_counted: bool, request: object) -> bool:
        """Whether ``request``, just submitted, should be polled at once to probe the result URL
        (one at a time, until the answer is known)."""
        if not polls_counted or self.answers_pending is not None or self._young is not None:
            return False
        self._young = request
        return True

    def via(self, polls_counted: bool) -> Via:
        """Where the next poll goes; a few probes at a time (:data:`MAX_PROBES`), and the other
        polls wait for their answer (a probe may wait out a 429's pause; had they gone to the status
        URL meanwhile, each would cost the call the probe is there to save)."""
        if not polls_counted or self.answers_pending is False:
            return Via.STATUS
        if self.answers_pending:
            return Via.RESULT
        if self._probing >= MAX_PROBES:
            return Via.WAIT
        self._probing += 1
        return Via.PROBE

    def probes_young(self, request: object) -> bool:
        """Whether ``request`` is the just-submitted one planned as a probe."""
        return request is not None and request is self._young

    def learned(self, answers_pending: bool | None, request: object = None) -> None:
        """The probe of ``request``: True or False, or None when it said nothing."""
        self._probing = max(0, self._probing - 1)
        if request is not None and request is self._young:
            self._young = None  # said nothing (no answer): another young request is probed
        if answers_pending is not None and self.answers_pending is None:
            self.answers_pending = answers_pending

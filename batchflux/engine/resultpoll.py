"""Whether a poll goes to the result URL instead of the status URL (pure).

When polls count toward the quota, a job's calls are its submit, its status polls, and one result
call once a status said COMPLETED. If the result URL answers a request not finished yet with its
non-terminal status (undocumented; segmind-v2.md guesses it does), polling it alone saves that last
call: the poll that finds the job done brings its output too. So once polls are known to count,
polls go to the result URL. A probe learns, once per run, what it answers a request not finished
yet: its non-terminal status, or a 404. Either way polls stay there: a 404 for a request well within
its hour can only mean it is not finished, and costs the one call a status poll would, while a done
job's output comes in one call instead of two (a 200-job run with polls counted and 404s: 3.04
counted calls a job polling the status URL, as first built).

A probe that finds its request done is an ordinary result fetch: its output in one call, where the
status URL would have taken two. Polls come due where 90 % of jobs are done, so most probes say
nothing about pending requests; a request just submitted, surely not finished, is polled at once as
the probe that does (:meth:`ResultPolling.plan_probe`): one counted call more in the run, the answer
within a call. Until it comes, every poll is a probe; none waits for it. (Held back behind a few
probes at a time, the others waited for polls that found their jobs done and said nothing: a
learned run with polls counted saw its jobs done 4.5 s (p50) after they finished, and learned the
answer near its end.)
"""

from __future__ import annotations

import enum


class Via(enum.Enum):
    STATUS = "status"
    RESULT = "result"
    PROBE = "probe"  # the result URL, to learn whether it answers a request not finished yet


class ResultPolling:
    __slots__ = ("_young", "answers_pending")

    def __init__(self) -> None:
        self.answers_pending: bool | None = None  # None: not known yet
        self._young: object | None = None  # the just-submitted request probed, while under way

    def via(self, polls_counted: bool) -> Via:
        """Where the next poll goes."""
        if not polls_counted:
            return Via.STATUS
        return Via.PROBE if self.answers_pending is None else Via.RESULT

    def plan_probe(self, polls_counted: bool, request: object) -> bool:
        """Whether ``request``, just submitted, should be polled at once to probe the result URL
        (one at a time, until the answer is known)."""
        if not polls_counted or self.answers_pending is not None or self._young is not None:
            return False
        self._young = request
        return True

    def probes_young(self, request: object) -> bool:
        """Whether ``request`` is the just-submitted one planned as a probe."""
        return request is not None and request is self._young

    def learned(self, answers_pending: bool | None, request: object = None) -> None:
        """The probe of ``request``: True or False, or None when it said nothing."""
        if request is not None and request is self._young:
            self._young = None  # said nothing (no answer): another young request is probed
        if answers_pending is not None and self.answers_pending is None:
            self.answers_pending = answers_pending

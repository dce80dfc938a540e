"""Whether a poll goes to the result URL instead of the status URL (pure).

When polls count toward the quota, a job's calls are its submit, its status polls, and one result
call once a status said COMPLETED. If the result URL answers a request not finished yet with its
non-terminal status (undocumented; segmind-v2.md guesses it does), polling it alone saves that last
call: the poll that finds the job done brings its output too. So once polls are known to count,
one pending request's result URL is asked, a probe, once per run: its non-terminal status → every
poll goes there from then on; a 404 (or any refusal of a request not finished) → polls stay on the
status URL, as before. A probe that finds its request already done, or gets no answer, says
nothing: the next poll probes again.
"""

from __future__ import annotations

import enum


class Via(enum.Enum):
    STATUS = "status"
    RESULT = "result"
    PROBE = "probe"  # the result URL, to learn whether it answers a request not finished yet


class ResultPolling:
    __slots__ = ("_probing", "answers_pending")

    def __init__(self) -> None:
        self.answers_pending: bool | None = None  # None: not known yet
        self._probing = False

    def via(self, polls_counted: bool) -> Via:
        """Where the next poll goes; one probe at a time."""
        if not polls_counted or self.answers_pending is False:
            return Via.STATUS
        if self.answers_pending:
            return Via.RESULT
        if self._probing:
            return Via.STATUS
        self._probing = True
        return Via.PROBE

    def learned(self, answers_pending: bool | None) -> None:
        """The probe's outcome: True or False, or None when it said nothing."""
        self._probing = False
        if answers_pending is not None:
            self.answers_pending = answers_pending

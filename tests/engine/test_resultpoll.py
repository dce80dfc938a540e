"""Where a poll goes (pure): the status URL until polls are known to count; then the result URL as
probes, one of them a request just submitted, until one answers for a request not finished; then the
result URL alone, whichever the answer."""

from __future__ import annotations

import pytest

from batchflux.engine.resultpoll import ResultPolling, Via


def test_polls_not_counted_go_to_the_status_url_and_nothing_is_probed() -> None:
    polling = ResultPolling()
    assert [polling.via(False) for _ in range(3)] == [Via.STATUS] * 3
    assert polling.answers_pending is None


# Either answer keeps the polls on the result URL: a 404 within the request's hour means not finished.
@pytest.mark.parametrize(("answer", "then"), [(True, Via.RESULT), (False, Via.RESULT)])
def test_the_first_conclusive_probe_decides_for_the_run(answer: bool, then: Via) -> None:
    polling = ResultPolling()
    assert [polling.via(True) for _ in range(8)] == [Via.PROBE] * 8  # none waits for another
    polling.learned(answer)
    polling.learned(not answer)  # the first conclusive answer decides
    assert [polling.via(True) for _ in range(3)] == [then] * 3


def test_a_probe_that_says_nothing_is_followed_by_another() -> None:
    polling = ResultPolling()
    assert polling.via(True) is Via.PROBE
    polling.learned(None)  # its request was already done, or no answer
    assert polling.via(True) is Via.PROBE
    polling.learned(True)
    assert polling.via(True) is Via.RESULT
    assert polling.via(False) is Via.STATUS  # (polls not counted: the status URL, as ever)


def test_one_request_just_submitted_is_probed_at_a_time_until_the_answer_is_known() -> None:
    polling = ResultPolling()
    first, second, third = object(), object(), object()
    assert not polling.plan_probe(False, first)  # polls not counted: nothing to learn
    assert polling.plan_probe(True, first)
    assert polling.probes_young(first)
    assert not polling.plan_probe(True, second)  # one at a time
    assert polling.via(True) is Via.PROBE
    polling.learned(None, first)  # no answer: another young request is probed
    assert polling.plan_probe(True, second)
    assert polling.via(True) is Via.PROBE
    polling.learned(True, second)
    assert not polling.plan_probe(True, third)  # known: no more probes
    assert polling.via(True) is Via.RESULT

"""Resume decisions: every rule on a hand-written ledger (lines in, decisions out), the plan's counts
and summary line, and the two I/O helpers (file check, --fresh set-aside) on real files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batchflux.ledger import Event, EventType, JobRecord, Replay, replay_lines
from batchflux.ledger.resume import (
    Action,
    FileCheck,
    check_file,
    move_ledger_aside,
    plan_resume,
)
from batchflux.manifest.job import Job

T0 = 1_700_000_000.0
HOUR = 3600.0
DAY = 86400.0


def make_job(jid: str = "a", fp: str = "fp1", output: str | None = None) -> Job:
    return Job(
        id=jid,
        index=0,
        model="flux-kontext-max",
        params={"prompt": "make it blue", "output_format": "png"},
        output=output or f"{jid}.png",
        fingerprint=fp,
    )


def ev(kind: str, job: str | None = "a", ts: float = T0, **data: Any) -> str:
    return Event(EventType(kind), job, data, ts=ts).encode()


def intent(job: str = "a", fp: str = "fp1", ts: float = T0, output: str | None = None) -> str:
    params = {"prompt": "make it blue", "output_format": "png"}
    out = output or f"{job}.png"
    return ev("submit_intent", job, ts, fingerprint=fp, model="flux-kontext-max", params=params, output=out)


def submitted(job: str = "a", rid: str = "r1", ts: float = T0) -> str:
    urls = {"status_url": f"http://x/v2/requests/{rid}/status", "response_url": f"http://x/v2/requests/{rid}"}
    return ev("submitted", job, ts, request_id=rid, submitted_at=ts, **urls)


def result(job: str = "a", rid: str = "r1", ts: float = T0 + 30) -> str:
    out = f"http://img/{rid}.png"
    return ev(
        "result", job, ts, request_id=rid, output_url=out, metrics={"inference_time": 24.3}, completed_at=ts
    )


def downloaded(job: str = "a", rid: str = "r1", ts: float = T0 + 31, path: str | None = None) -> str:
    return ev("downloaded", job, ts, request_id=rid, path=path or f"{job}.png", size=3, sha256="00" * 32)


def failed(job: str = "a", cause: str = "moderation", ts: float = T0 + 30, rid: str | None = "r1") -> str:
    return ev("failed", job, ts, request_id=rid, cause=cause, error=f"{cause} trouble", http_status=422)


def replay(*lines: str) -> Replay:
    return replay_lines(line + "\n" for line in lines)


DONE = (intent(), submitted(), result(), downloaded())

INTACT: Callable[[JobRecord], bool] = lambda _rec: True  # noqa: E731
MISSING: Callable[[JobRecord], bool] = lambda _rec: False  # noqa: E731
DAMAGED: Callable[[JobRecord], FileCheck] = lambda _rec: FileCheck.DAMAGED  # noqa: E731


def rule(
    name: str,
    lines: tuple[str, ...],
    action: Action,
    reason: str,
    *,
    now: float = T0 + 60,
    retry: frozenset[str] | None = None,
    file_ok: Callable[[JobRecord], bool | FileCheck] = INTACT,
    fp: str = "fp1",
) -> Any:
    return pytest.param(lines, now, retry, file_ok, fp, action, reason, id=name)


SUBMITTED = (intent(), submitted())
COMPLETED = (*SUBMITTED, result())
FAILED_DOWNLOAD = (*COMPLETED, failed(cause="download"))
NOT_SUBMITTED = ev("state", request_id=None, status="NOT_SUBMITTED", reason="429")
FAILED_EARLY = ev("failed", cause="input", error="unreadable", request_id=None, http_status=None)
MOVED = (intent(output="old/a.png"), submitted(), result(), downloaded(path="old/a.png"))
SUBMIT, SKIP, DOWNLOAD, POLL, FAILED = Action.SUBMIT, Action.SKIP, Action.DOWNLOAD, Action.POLL, Action.FAILED

RULES = [
    rule("no-record-new", (), SUBMIT, "new"),
    rule("changed-after-done", DONE, SUBMIT, "changed", fp="fp2"),
    rule("changed-in-flight", SUBMITTED, SUBMIT, "changed", fp="fp2"),
    rule("downloaded-intact", DONE, SKIP, "intact"),
    rule("downloaded-missing", DONE, DOWNLOAD, "missing", file_ok=MISSING),
    rule("downloaded-damaged", DONE, DOWNLOAD, "damaged", file_ok=DAMAGED),
    rule("missing-and-url-past-7-days", DONE, SUBMIT, "missing", file_ok=MISSING, now=T0 + 8 * DAY),
    rule("result-known-not-downloaded", COMPLETED, DOWNLOAD, "missing"),
    rule("result-known-url-past-7-days", COMPLETED, SUBMIT, "missing", now=T0 + 8 * DAY),
    rule("submitted-within-retention", (*SUBMITTED, ev("state", status="PROCESSING")), POLL, "in_flight",
         now=T0 + HOUR - 1),
    rule("submitted-at-retention-boundary", SUBMITTED, SUBMIT, "expired", now=T0 + HOUR),
    rule("expired-event", (*SUBMITTED, ev("expired", request_id="r1")), SUBMIT, "expired"),
    rule("open-intent", (intent(),), SUBMIT, "ambiguous"),
    rule("intent-closed-not-submitted", (intent(), NOT_SUBMITTED), SUBMIT, "new"),
    rule("rejected-at-submit-stays-failed", (intent(), failed(cause="invalid", rid=None)), FAILED, "failed"),
    rule("failed-kept", (*SUBMITTED, failed()), FAILED, "failed"),
    rule("retry-all-failed", (*SUBMITTED, failed()), SUBMIT, "retry_failed", retry=frozenset()),
    rule("retry-selected-cause", (*SUBMITTED, failed(cause="server")), SUBMIT, "retry_failed",
         retry=frozenset({"server", "moderation"})),
    rule("retry-other-cause-kept", (*SUBMITTED, failed(cause="invalid")), FAILED, "failed",
         retry=frozenset({"server"})),
    rule("retry-failed-download-fetches-again", FAILED_DOWNLOAD, DOWNLOAD, "retry_failed",
         retry=frozenset({"download"})),
    rule("accident-retried-by-itself", (*SUBMITTED, failed(cause="transport", rid=None)), SUBMIT, "accident"),
    rule("accident-server-failed-retried", (*SUBMITTED, failed(cause="server")), SUBMIT, "accident"),
    rule("accident-download-fetches-again", FAILED_DOWNLOAD, DOWNLOAD, "accident"),
    rule("accident-expired-resubmitted",
         (*SUBMITTED, ev("expired", request_id="r1"), failed(cause="expired")), SUBMIT, "accident"),
    rule("accident-twice-still-retried",
         (*SUBMITTED, failed(cause="server"), *SUBMITTED, failed(cause="server")), SUBMIT, "accident"),
    rule("accident-budget-spent-stays-failed",
         (*SUBMITTED, failed(cause="server"), *SUBMITTED, failed(cause="transport"), *SUBMITTED,
          failed(cause="download")), FAILED, "failed"),
    rule("accident-budget-spent-retry-failed-takes-it",
         (*SUBMITTED, failed(cause="server"), *SUBMITTED, failed(cause="server"), *SUBMITTED,
          failed(cause="server")), SUBMIT, "retry_failed", retry=frozenset({"server"})),
    rule("verdict-after-accidents-stays-failed", (*SUBMITTED, failed(cause="server"), *SUBMITTED, failed()),
         FAILED, "failed"),
    rule("accident-budget-resets-for-a-changed-job",
         (*SUBMITTED, failed(cause="server"), *SUBMITTED, failed(cause="server"), intent(fp="fp2"),
          submitted(), failed(cause="server")), SUBMIT, "accident", fp="fp2"),
    rule("retry-failed-download-url-gone", FAILED_DOWNLOAD, SUBMIT, "retry_failed", retry=frozenset(),
         now=T0 + 8 * DAY),
    rule("output-path-differs-same-job", MOVED, SKIP, "intact"),
    rule("failed-before-any-intent", (FAILED_EARLY,), FAILED, "failed"),
    rule("submitted-without-request-id", (intent(), ev("submitted", request_id=None, submitted_at=T0)),
         SUBMIT, "ambiguous"),
    rule("earlier-ambiguous-then-submitted", (intent(), intent(ts=T0 + 5), submitted(ts=T0 + 6)), POLL,
         "in_flight"),
]  # fmt: skip


@pytest.mark.parametrize(("lines", "now", "retry", "file_ok", "fp", "action", "reason"), RULES)
def test_rule(
    lines: tuple[str, ...],
    now: float,
    retry: frozenset[str] | None,
    file_ok: Callable[[JobRecord], bool | FileCheck],
    fp: str,
    action: Action,
    reason: str,
) -> None:
    rep = replay(*lines)
    plan = plan_resume([make_job(fp=fp, output="a.png")], rep, now=now, retry_failed=retry, file_ok=file_ok)
    (decision,) = plan.decisions
    assert (decision.action, decision.reason) == (action, reason)
    assert decision.record is rep.jobs.get("a")
    assert plan.orphans == ()


def test_file_ok_is_asked_only_about_downloaded_records() -> None:
    asked: list[str] = []

    def file_ok(rec: JobRecord) -> bool:
        asked.append(rec.job_id)
        return True

    lines = [*DONE, intent("b"), submitted("b", "r2"), intent("c"), failed("c")]
    jobs = [make_job("a"), make_job("b"), make_job("c")]
    plan_resume(jobs, replay(*lines), now=T0 + 60, file_ok=file_ok)
    assert asked == ["a"]


def test_possible_duplicates_count_manifest_jobs_only_and_earlier_ambiguities() -> None:
    lines = [
        intent("a"),
        intent("a", ts=T0 + 1),  # the first intent of a never got its 'submitted'
        submitted("a", "r1", ts=T0 + 2),
        intent("b"),  # still open: b will be resubmitted
        intent("gone"),  # an orphan's open intent is not this manifest's concern
    ]
    plan = plan_resume([make_job("a"), make_job("b")], replay(*lines), now=T0 + 60, file_ok=INTACT)
    assert plan.possible_duplicates == 2
    assert plan.orphans == ("gone",)


def composed_plan() -> Any:
    """Two done, one in flight, one to download, three resubmits (expired, ambiguous, changed), one
    failed kept, one new, and two ledger ids the manifest no longer has."""
    lines: list[str] = []
    for jid in ("d1", "d2"):
        lines += [
            intent(jid),
            submitted(jid, f"r-{jid}"),
            result(jid, f"r-{jid}"),
            downloaded(jid, f"r-{jid}"),
        ]
    lines += [intent("p"), submitted("p", "r-p", ts=T0 + 100)]
    lines += [intent("dl"), submitted("dl", "r-dl"), result("dl", "r-dl")]
    lines += [intent("x"), submitted("x", "r-x", ts=T0 - 2 * HOUR)]
    lines += [intent("amb")]
    lines += [intent("ch", fp="old"), submitted("ch", "r-ch")]
    lines += [intent("f"), submitted("f", "r-f"), failed("f")]
    lines += [intent("o1"), intent("o2")]
    jobs = [make_job(j) for j in ("d1", "d2", "p", "dl", "x", "amb", "ch", "f", "n")]
    return plan_resume(jobs, replay(*lines), now=T0 + 200, file_ok=INTACT)


def test_counts_by_action_and_reason() -> None:
    counts = composed_plan().counts()
    assert {k: counts[k] for k in ("skip", "poll", "download", "submit", "failed")} == {
        "skip": 2,
        "poll": 1,
        "download": 1,
        "submit": 4,
        "failed": 1,
    }
    assert counts["expired"] == counts["ambiguous"] == counts["changed"] == counts["new"] == 1
    assert counts["intact"] == 2
    assert counts["in_flight"] == 1
    assert counts["missing"] == 1
    assert counts["retry_failed"] == 0
    assert counts["orphans"] == 2


def test_summary_line() -> None:
    plan = composed_plan()
    assert plan.summary_line() == (
        "resuming: 2 done, 1 re-polled, 1 re-downloaded, 3 resubmitted (1 expired, "
        "1 ambiguous: possible duplicate charges, 1 changed), 1 new, 1 failed kept, 2 not in the manifest"
    )


def test_summary_line_says_how_many_gave_up_after_accidents() -> None:
    spent = [line for _ in range(3) for line in (*SUBMITTED, failed(cause="server"))]
    once = [intent("b"), submitted("b"), failed("b", cause="transport")]
    plan = plan_resume([make_job("a"), make_job("b")], replay(*spent, *once), now=T0 + 60, file_ok=INTACT)
    assert [(d.action, d.reason) for d in plan.decisions] == [(FAILED, "failed"), (SUBMIT, "accident")]
    line = plan.summary_line()
    assert "1 resubmitted (1 failed by accident, retried)" in line
    assert "1 failed kept (1 after 3 accidental failures: --retry-failed to try again)" in line


def test_summary_line_mentions_earlier_duplicates_and_first_runs() -> None:
    lines = [intent("a"), intent("a", ts=T0 + 1), submitted("a", ts=T0 + 2)]
    plan = plan_resume([make_job("a")], replay(*lines), now=T0 + 60, file_ok=INTACT)
    assert plan.summary_line().endswith("; 1 possible duplicate charge in the ledger so far")
    first = plan_resume([make_job("a"), make_job("b")], Replay(), now=T0, file_ok=INTACT)
    assert not first.resuming
    assert first.summary_line() == "starting: 2 jobs, none in the ledger yet"


# ---- check_file: real files -------------------------------------------------------------------------


def record_for(tmp_path: Path, rel: str, content: bytes, downloaded_at: float | None = None) -> JobRecord:
    target = tmp_path / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    rec = JobRecord(job_id="a", path=rel, size=len(content), sha256=hashlib.sha256(content).hexdigest())
    rec.downloaded_at = downloaded_at
    return rec


def test_check_file_intact_missing_damaged(tmp_path: Path) -> None:
    check = check_file(tmp_path)
    rec = record_for(tmp_path, "sub/a.png", b"\x89PNG image bytes")
    assert check(rec) is FileCheck.INTACT
    (tmp_path / "sub/a.png").write_bytes(b"\x89PNG image byteZ")  # same size, other content
    assert check(rec) is FileCheck.DAMAGED
    (tmp_path / "sub/a.png").write_bytes(b"short")
    assert check(rec) is FileCheck.DAMAGED
    (tmp_path / "sub/a.png").unlink()
    assert check(rec) is FileCheck.MISSING


def test_check_file_never_reads_outside_the_run_directory(tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rec = record_for(tmp_path, "secret.png", b"outside")
    for path in ("../secret.png", str(outside)):
        rec.path = path
        assert check_file(run_dir)(rec) is FileCheck.MISSING


def test_check_file_quick_trusts_unmodified_files_only(tmp_path: Path) -> None:
    rec = record_for(tmp_path, "a.png", b"original!")
    (tmp_path / "a.png").write_bytes(b"tampered!")  # same size
    st = (tmp_path / "a.png").stat()
    rec.downloaded_at = st.st_mtime + 1  # the file looks untouched since its 'downloaded' event
    assert check_file(tmp_path, quick=True)(rec) is FileCheck.INTACT
    assert check_file(tmp_path)(rec) is FileCheck.DAMAGED  # the default hashes
    rec.downloaded_at = st.st_mtime - 10  # modified after the download: quick hashes too
    assert check_file(tmp_path, quick=True)(rec) is FileCheck.DAMAGED


def test_plan_with_real_file_check(tmp_path: Path) -> None:
    content = b"\x89PNG fine"
    digest = hashlib.sha256(content).hexdigest()
    (tmp_path / "a.png").write_bytes(content)
    lines = [intent("a"), submitted("a"), result("a")]
    lines.append(
        ev("downloaded", "a", T0 + 31, request_id="r1", path="a.png", size=len(content), sha256=digest)
    )
    lines += [intent("b"), submitted("b", "r2"), result("b", "r2")]
    lines.append(
        ev("downloaded", "b", T0 + 31, request_id="r2", path="b.png", size=len(content), sha256=digest)
    )
    plan = plan_resume(
        [make_job("a"), make_job("b")], replay(*lines), now=T0 + 60, file_ok=check_file(tmp_path)
    )
    assert [(d.job.id, d.action, d.reason) for d in plan.decisions] == [
        ("a", Action.SKIP, "intact"),
        ("b", Action.DOWNLOAD, "missing"),
    ]


# ---- --fresh ----------------------------------------------------------------------------------------


def test_move_ledger_aside_keeps_everything(tmp_path: Path) -> None:
    assert move_ledger_aside(tmp_path) is None
    (tmp_path / "ledger.jsonl").write_text(intent() + "\n")
    (tmp_path / "ledger.jsonl.torn").write_text('# torn\n{"v":1\n')
    first = move_ledger_aside(tmp_path)
    assert first is not None
    assert first.parent == tmp_path
    assert first.name.startswith("ledger.")
    assert first.name.endswith("Z.jsonl")
    assert first.read_text() == intent() + "\n"
    assert (tmp_path / (first.name + ".torn")).read_text().startswith("# torn")
    assert not (tmp_path / "ledger.jsonl").exists()
    assert not (tmp_path / "ledger.jsonl.torn").exists()
    (tmp_path / "ledger.jsonl").write_text(submitted() + "\n")
    second = move_ledger_aside(tmp_path)  # within the same second: a distinct name, nothing overwritten
    assert second is not None
    assert second != first
    assert first.read_text() == intent() + "\n"
    assert second.read_text() == submitted() + "\n"
    assert sorted(os.listdir(tmp_path)) == sorted([first.name, first.name + ".torn", second.name])

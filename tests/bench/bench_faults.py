"""Benchmark: nothing lost, nothing corrupt, nothing paid twice — under injected faults and under kill -9.

    python -m tests.bench.bench_faults [--jobs 200] [--chaos-jobs 300] [--kills 5] [--seed 8]
    python -m tests.bench.bench_faults --only nightly --repeat 3 [--nightly-jobs 1000] [--nightly-kills 20]

1. **Fault mix** (the engine issue's): 200 jobs against an emulator (its own process) where every request
   has a 10 % chance each of a 500, an HTML 502, a dropped connection and (media only) a truncated
   body, with a quota of 80 submits per 1 s window that the client is not told (so it meets 429s).
   ``batchflux run`` with default settings, as a user runs it; when it exits 1 (a job out of retries),
   the same command with ``--retry-failed`` again, as the user would (counted).
2. **kill -9 chaos** (the resume issue's): ``batchflux run`` of 300 jobs as a subprocess, SIGKILLed five
   times, each after a random (seeded) number of new ledger lines so kills land in every phase whatever
   the machine's speed; then the same command until it exits 0. Latency N(0.3 s, 0.1 s), submits paced
   at ``--rate 100/1s``, 5 % of submit connections dropped after the request was created (a real
   ambiguous submit) and 5 % of media bodies truncated.

3. **nightly** (the never-paid-twice issue's): what a nightly run meets, all at once — 1 000 jobs, SIGKILLed
   20 times, then resumed until exit 0, against a quota the client is not told (20 submits per 3 s
   window: a run's first burst meets 429s, and those submits POST one or more windows after their
   ``submit_intent``, longer than the 1 s ``--history-wait``), one accepted submit's answer in eleven
   dropped, and history records landing 1 s late. History on, no ``--rate``. Target: 0 lost,
   0 corrupt, 0 paid twice. (With the landing wait counted from the intent, as before, one run of
   this row paid 43 requests twice.)

Rows 1 and 2 run twice: with the request history on (the default: an ambiguous intent or an expired request is
looked up before it is paid again) and with ``--no-history`` (the ledger alone decides).

Checks, for both: jobs lost (a job of the manifest without an image on disk and without a failure —
must be 0); corrupt images (a file whose sha256 differs from the ledger's or from what the emulator
served for that request — must be 0); extra paid submits (emulator submits beyond one per job) against
the ambiguous windows the ledger records (intents never answered) — with the history, 0 must be paid
twice; without it, no more than the ambiguous windows; paid requests abandoned while still unresolved
(must be 0); media requests that carried the API key (must be 0).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests import runkit  # shared ledger helpers: read_events, ambiguous_count, abandoned_requests
from tests.bench import harness as h


@dataclass(frozen=True, slots=True)
class Integrity:
    jobs: int
    done: int
    failed: dict[str, int]
    lost: int
    corrupt: int
    extra_submits: int
    duplicate_bodies: int
    ambiguous: int
    abandoned: int
    media_with_key: int
    rate_limited: int
    faults: dict[str, int]

    def ok(self, *, history: bool) -> bool:
        paid_twice = max(self.extra_submits, self.duplicate_bodies)
        return (
            self.lost == 0
            and self.corrupt == 0
            and paid_twice <= (0 if history else self.ambiguous)
            and self.abandoned == 0
            and self.media_with_key == 0
            and self.done == self.jobs
        )

    def text(self) -> str:
        failed = ", ".join(f"{n} {c}" for c, n in self.failed.items()) or "0"
        faults = ", ".join(f"{n} {k}" for k, n in self.faults.items() if n) or "none"
        return (
            f"{self.done}/{self.jobs} done, failed {failed}; lost {self.lost}, corrupt {self.corrupt}; "
            f"extra paid submits {self.extra_submits} (identical bodies {self.duplicate_bodies}) vs "
            f"{self.ambiguous} ambiguous in the ledger; abandoned {self.abandoned}; "
            f"media with key {self.media_with_key}; 429s {self.rate_limited}; faults served: {faults}"
        )


def check(emu: h.EmulatorProc, out: Path, job_ids: list[str]) -> Integrity:
    events = runkit.read_events(out)
    stats = emu.stats()
    last_download = {e["job"]: e for e in events if e["event"] == "downloaded"}
    downloaded_jobs = set(last_download)
    failed_last: dict[str, str] = {}
    for e in events:
        if e["event"] == "failed":
            failed_last[e["job"]] = str(e.get("cause", "?"))
        elif e["event"] == "downloaded":
            failed_last.pop(e["job"], None)
    corrupt = 0
    for ev in last_download.values():
        path = out / ev["path"]
        data = path.read_bytes() if path.exists() else b""
        served = emu.request_info(ev["request_id"]).get("sha256")
        if hashlib.sha256(data).hexdigest() != ev["sha256"] or ev["sha256"] != served:
            corrupt += 1
    failed: dict[str, int] = {}
    for job, cause in failed_last.items():
        if job not in downloaded_jobs:
            failed[cause] = failed.get(cause, 0) + 1
    lost = sum(1 for j in job_ids if j not in downloaded_jobs and j not in failed_last)
    return Integrity(
        jobs=len(job_ids),
        done=len(downloaded_jobs & set(job_ids)),
        failed=failed,
        lost=lost,
        corrupt=corrupt,
        extra_submits=int(stats["submits"]) - len(job_ids),
        duplicate_bodies=int(stats["duplicate_submits"]),
        ambiguous=runkit.ambiguous_count(events),
        abandoned=len(runkit.abandoned_requests(events)),
        media_with_key=int(stats["media_with_key"]),
        rate_limited=int(stats["rate_limited"]),
        faults={k: int(v) for k, v in stats["faults"].items()},
    )


def _cli(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "batchflux", *argv]


def _env() -> dict[str, str]:
    return {**os.environ, "SEGMIND_API_KEY": h.API_KEY, "PYTHONUNBUFFERED": "1"}


def _variant(history: bool) -> tuple[list[str], str, str]:
    """The extra flags, the row's label and the paid-twice target of a run with or without the history."""
    if history:
        return [], "history on", "0 paid twice"
    return ["--no-history"], "--no-history", "extra paid ≤ ambiguous"


def fault_mix(jobs: int, seed: int, *, history: bool = True) -> h.Row:
    faults = {"500": 0.1, "502": 0.1, "drop": 0.1, "truncate": 0.1}
    emu_args = h.emulator_args(
        latency="0.3,0.1", latency_min=0.02, rpm=80, window=1.0, faults=faults, seed=seed
    )
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp_name:
        tmp = Path(tmp_name)
        manifest = h.write_manifest(tmp / "m.csv", jobs)
        out = tmp / "out"
        codes = []
        flags, label, paid_target = _variant(history)
        with h.emulator(*emu_args) as emu:
            argv = h.batchflux_cmd(manifest, out, emu.url, *flags)
            for attempt in range(3):
                h.say(f"faults: batchflux run, {jobs} jobs, 10 % each of 500/502/drop/truncate, 80/1 s quota")
                extra = ["--retry-failed"] if attempt else []
                codes.append(h.run_measured(_cli([*argv, *extra]), env=_env()).exit_code)
                if codes[-1] != 1:
                    break
            result = check(emu, out, [f"job{i:06d}" for i in range(jobs)])
    runs = " then ".join(f"exit {c}" for c in codes)
    return h.Row(
        f"5. faults: 10 % 500/502/drop/truncate + 429s ({label})",
        f"batchflux run m.csv --no-report {' '.join(flags)} (then --retry-failed while exit 1); {jobs} jobs, "
        f"emulator --fault 500=0.1 --fault 502=0.1 --fault drop=0.1 --fault truncate=0.1 --rpm 80 --window 1 "
        f"--latency 0.3,0.1",
        f"{runs}; {result.text()}",
        f"0 lost, 0 corrupt, {paid_target}, 0 key leaks",
        h.verdict(result.ok(history=history) and codes[-1] == 0, "see figure"),
    )


def _wait_lines_or_exit(proc: subprocess.Popen[bytes], out: Path, lines: int, within: float) -> None:
    deadline = time.monotonic() + within
    while proc.poll() is None and runkit.ledger_lines(out) < lines:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the ledger did not reach {lines} lines within {within:g} s")
        time.sleep(0.005)


@dataclass(frozen=True, slots=True)
class KillRun:
    """What a kill -9 loop left: where each kill landed, the resumes' exit codes, the check, the wall."""

    at_kill: list[Any]  # Phases per SIGKILL, or "exit N" for a run that ended before its kill
    finals: list[int]
    result: Integrity
    wall_s: float

    @property
    def killed(self) -> list[Any]:
        return [p for p in self.at_kill if not isinstance(p, str)]

    def text(self) -> str:
        killed = self.killed
        interrupted = (
            f"kills interrupted {sum(p.open_intents for p in killed)} open intents, "
            f"{sum(p.polling for p in killed)} polls, {sum(p.downloading for p in killed)} downloads"
        )
        resumes = ", ".join(f"exit {c}" for c in self.finals)
        return (f"{len(killed)} SIGKILLs ({interrupted}); resumes: {resumes}; {self.result.text()}; "
                f"{self.wall_s:.0f} s in all")  # fmt: skip


def kill_and_resume(
    name: str,
    jobs: int,
    kills: int,
    seed: int,
    emu_args: list[str],
    flags: list[str],
    *,
    lines: tuple[int, int] = (30, 200),
    keep: Path | None = None,
) -> KillRun:
    """``batchflux run`` of ``jobs`` jobs with ``flags`` as a subprocess, SIGKILLed ``kills`` times, each
    after a random (seeded) number of new ledger lines in ``lines``; then the same command until it
    exits 0 (at most 6 times). ``keep``: where a run that missed leaves its directory and logs."""
    rng = random.Random(seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp_name:
        tmp = Path(tmp_name)
        manifest = h.write_manifest(tmp / "m.csv", jobs)
        out = tmp / "out"
        at_kill: list[Any] = []
        finals: list[int] = []
        with h.emulator(*emu_args) as emu:
            argv = h.batchflux_cmd(manifest, out, emu.url, *flags)
            for n in range(kills):
                target = runkit.ledger_lines(out) + rng.randint(*lines)
                h.say(f"{name}: run {n + 1}, SIGKILL after ledger line {target}")
                log = (tmp / f"run{n}.log").open("wb")
                proc = subprocess.Popen(_cli(argv), stdout=log, stderr=log, cwd=h.ROOT, env=_env())
                try:
                    _wait_lines_or_exit(proc, out, target, within=120)
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGKILL)
                    code = proc.wait()
                finally:
                    log.close()
                at_kill.append(
                    runkit.phases(runkit.read_events(out)) if code == -signal.SIGKILL else f"exit {code}"
                )
            for _ in range(6):
                h.say(f"{name}: resuming")
                finals.append(h.run_measured(_cli(argv), env=_env(), timeout=1800).exit_code)
                if finals[-1] == 0:
                    break
            result = check(emu, out, [f"job{i:06d}" for i in range(jobs)])
        if keep is not None and not result.ok(history="--no-history" not in flags):
            kept = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=keep))
            shutil.copytree(tmp, kept, dirs_exist_ok=True)
            h.say(f"{name}: missed; its run directory and logs are kept in {kept}")
    return KillRun(at_kill, finals, result, time.perf_counter() - t0)


def chaos(jobs: int, kills: int, seed: int, *, history: bool = True) -> h.Row:
    emu_args = h.emulator_args(latency="0.3,0.1", latency_min=0.02, seed=seed,
                               faults={"drop": 0.05, "truncate": 0.05})  # fmt: skip
    emu_args += ["--fault-endpoints", "submit,media"]
    flags, label, paid_target = _variant(history)
    # Each job needs ≥ 4 lines (intent, submitted, result, downloaded): with at most 200 new lines
    # a run, five runs cannot finish 300 jobs before their kills.
    got = kill_and_resume("chaos", jobs, kills, seed, emu_args, ["--rate", "100/1s", *flags])
    return h.Row(
        f"5. faults: kill -9 × {kills} then resume ({label})",
        f"batchflux run m.csv --no-report --rate 100/1s {' '.join(flags)}; {jobs} jobs, emulator --latency "
        f"0.3,0.1 --fault drop=0.05 --fault truncate=0.05 --fault-endpoints submit,media; seed {seed}",
        got.text(),
        f"0 lost, 0 corrupt, {paid_target}, 0 abandoned",
        h.verdict(
            got.result.ok(history=history) and len(got.killed) == kills and got.finals[-1] == 0, "see figure"
        ),
    )


# The nightly row's server, a whole night's trouble at once, scaled to a 3 s quota window: a quota the
# client is not told (so a run's first burst meets 429s and POSTs windows after its intents: longer
# than the landing wait), one accepted submit's answer in eleven lost, history records landing 1 s late.
NIGHTLY_QUOTA, NIGHTLY_WINDOW, NIGHTLY_WAIT = 20, 3.0, 1.0


def nightly(jobs: int, kills: int, seed: int, keep: Path | None = None) -> h.Row:
    emu_args = h.emulator_args(latency="0.3,0.1", latency_min=0.02, rpm=NIGHTLY_QUOTA, window=NIGHTLY_WINDOW,
                               faults={"drop": 0.09}, seed=seed)  # fmt: skip
    emu_args += ["--fault-endpoints", "submit", "--history-delay", "1"]
    flags = ["--history-wait", f"{NIGHTLY_WAIT:g}"]
    # Each job needs ≥ 4 lines: at most 3/4 of them are reached by the kills, so every run is
    # still going at its kill.
    most = max(31, 3 * jobs // kills)
    got = kill_and_resume("nightly", jobs, kills, seed, emu_args, flags, lines=(30, most), keep=keep)
    return h.Row(
        f"5. faults: nightly — kill -9 × {kills}, 429 waits, lost answers, late records",
        f"batchflux run m.csv --no-report --history-wait {NIGHTLY_WAIT:g} (no --rate: the quota is learned); "
        f"{jobs} jobs, emulator --rpm {NIGHTLY_QUOTA} --window {NIGHTLY_WINDOW:g} --fault drop=0.09 "
        f"--fault-endpoints submit --history-delay 1 --latency 0.3,0.1; seed {seed}",
        got.text(),
        "0 lost, 0 corrupt, 0 paid twice, 0 abandoned",
        h.verdict(
            got.result.ok(history=True) and len(got.killed) == kills and got.finals[-1] == 0, "see figure"
        ),
    )


def run(quick: bool = False) -> list[h.Row]:
    jobs, chaos_jobs, kills = (60, 100, 2) if quick else (200, 300, 5)
    nightly_jobs, nightly_kills = (200, 4) if quick else (1000, 20)
    return [
        *(fault_mix(jobs, seed=8, history=history) for history in (True, False)),
        *(chaos(chaos_jobs, kills=kills, seed=8, history=history) for history in (True, False)),
        nightly(nightly_jobs, nightly_kills, seed=8),
    ]


ROWS = ("mix", "chaos", "nightly")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--chaos-jobs", type=int, default=300)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--nightly-jobs", type=int, default=1000)
    ap.add_argument("--nightly-kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--only", choices=ROWS, action="append", help="run only these rows (repeatable)")
    ap.add_argument("--repeat", type=int, default=1, metavar="N", help="run each row N times")
    ap.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep the run directory of a kill -9 row that missed"
    )
    args = ap.parse_args()
    only = set(args.only or ROWS)
    rows: list[h.Row] = []
    seed = args.seed
    for _ in range(args.repeat):  # the same rows again: timing makes each run differ
        if "mix" in only:
            rows += [fault_mix(args.jobs, seed, history=history) for history in (True, False)]
        if "chaos" in only:
            rows += [chaos(args.chaos_jobs, args.kills, seed, history=history) for history in (True, False)]
        if "nightly" in only:
            rows.append(nightly(args.nightly_jobs, args.nightly_kills, seed, keep=args.keep))
    print(h.render_table(rows))


if __name__ == "__main__":
    main()

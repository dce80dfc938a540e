"""Benchmark: 429s that are no quota's — the learned quota must not collapse on them.

    python -m tests.bench.bench_quota_busy [--jobs 600] [--every 9] [--reset 1.2]

The emulator has no quota, but answers one submit in ``--every`` with a 429 whose reset is
``--reset`` seconds on, whatever the rate (``--busy-429 9 --busy-reset 1.2``): load, not a quota.
A client that honours every pause and submits at full speed between them gets ``every − 1`` submits
through per pause (reset + the client's 0.05 s cushion + 0.05 s mean jitter): the ceiling, ~6 a second
at 1 in 9 and 1.2 s. Two clients side by side, each against its own emulator: batchflux as it is,
every flag at its default, and batchflux as it was before it learned quotas (``PREVIOUS_PACING``,
taken from git: pauses only, no window limiter). Target: makespan within 2× of the ceiling, and
never slower than the previous pacing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from batchflux.api.policy import RATE_LIMIT_CUSHION_S, RATE_LIMIT_JITTER_S
from tests import runkit
from tests.bench import harness as h

PREVIOUS_PACING = "6122e77^"  # the last commit before the learned quota


@dataclass(frozen=True, slots=True)
class BusySetup:
    jobs: int = 600
    every: int = 9
    reset: float = 1.2
    latency: float = 2.4
    latency_sd: float = 0.5

    @property
    def ceiling(self) -> float:
        """The makespan of a client that honours every pause and loses nothing between them."""
        pause = self.reset + RATE_LIMIT_CUSHION_S + RATE_LIMIT_JITTER_S / 2
        return self.jobs / (self.every - 1) * pause + self.latency

    def emulator(self) -> list[str]:
        return h.emulator_args(
            latency=f"{self.latency},{self.latency_sd}",
            latency_min=0.02,
            image_size=64,
            busy_429=self.every,
            busy_reset=self.reset,
        )

    def label(self) -> str:
        return (
            f"{self.jobs} jobs, emulator --busy-429 {self.every} --busy-reset {self.reset:g} "
            f"--latency {self.latency:g},{self.latency_sd:g}, no quota"
        )


@dataclass(frozen=True, slots=True)
class BusyRun:
    client: str
    command: str
    makespan: float
    done: int
    failed: int
    rate_limited: int
    in_pause: int
    learned: str


def _previous(tmp: Path) -> Path | None:
    """The package as it was at ``PREVIOUS_PACING``, unpacked under ``tmp`` beside today's bench
    client (None: no git history)."""
    where = tmp / "previous"
    where.mkdir()
    archive = subprocess.run(
        ["git", "archive", PREVIOUS_PACING, "batchflux"], cwd=h.ROOT, capture_output=True, check=False
    )
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    (where / "tests" / "bench").mkdir(parents=True)
    for name in ("__init__.py", "clients.py"):
        shutil.copy(h.ROOT / "tests" / "bench" / name, where / "tests" / "bench" / name)
    return where


def _run(setup: BusySetup, tmp: Path, manifest: Path, previous: Path | None) -> BusyRun:
    with h.emulator(*setup.emulator()) as emu:
        out = tmp / ("previous" if previous else "now") / "out"
        argv = h.batchflux_cmd(manifest, out, emu.url)
        report = h.run_client("batchflux", ["--", *argv], timeout=1800, root=previous or h.ROOT)
        stats = emu.stats()
    events = runkit.read_events(out)
    downloads = [e["ts"] for e in events if e["event"] == "downloaded"]
    times = stats["submit_times"]
    summary = runkit.summary(out)
    return BusyRun(
        client=f"previous pacing ({PREVIOUS_PACING}: pauses only)" if previous else "batchflux, defaults",
        command=h.show_cmd(argv, "m.csv") + f"  [exit {report['exit_code']}]",
        makespan=max(downloads) - min(times) if downloads and times else float("nan"),
        done=len({e["job"] for e in events if e["event"] == "downloaded"}),
        failed=sum(1 for e in events if e["event"] == "failed"),
        rate_limited=int(stats["rate_limited"]),
        in_pause=int(stats["calls_in_announced_pause"]),
        learned=str(summary.get("learned_rate") or "nothing"),
    )


def measure_busy(setup: BusySetup) -> list[BusyRun]:
    """Both clients side by side (each waits on pauses, not on CPU), each against its own emulator."""
    with tempfile.TemporaryDirectory(prefix="bench-busy-") as tmp_name:
        tmp = Path(tmp_name)
        manifest = h.write_manifest(tmp / "m.csv", setup.jobs)
        previous = _previous(tmp)
        h.say(f"quota: busy 429s, batchflux now and {PREVIOUS_PACING} side by side, {setup.label()}")
        with ThreadPoolExecutor(2) as pool:
            now = pool.submit(_run, setup, tmp, manifest, None)
            before = pool.submit(_run, setup, tmp, manifest, previous) if previous else None
            return [now.result(), *([before.result()] if before else [])]


def busy_rows(setup: BusySetup, runs: list[BusyRun]) -> list[h.Row]:
    ceiling = setup.ceiling
    previous = next((r.makespan for r in runs if r.client.startswith("previous")), None)
    out = []
    for run in runs:
        figure = (
            f"makespan {run.makespan:.1f} s ({setup.jobs / run.makespan:.2f} jobs/s), "
            f"{run.makespan / ceiling:.2f}× the ceiling, {run.done}/{setup.jobs} done, failed {run.failed}, "
            f"{run.rate_limited} 429s, "
            f"{run.in_pause} calls inside an announced pause, learned {run.learned}"
        )
        target = (
            f"ceiling {ceiling:.1f} s = {setup.jobs}/{setup.every - 1} pauses × "
            f"({setup.reset:g} + {RATE_LIMIT_CUSHION_S:g} + {RATE_LIMIT_JITTER_S / 2:g}) s"
            f" + {setup.latency:g} s"
        )
        if run.client.startswith("previous"):
            judged = "info (baseline)"
        else:
            ok = run.done == setup.jobs and run.makespan <= 2 * ceiling
            ok = ok and (previous is None or run.makespan <= previous)
            if previous is not None:
                figure += f", {previous / run.makespan:.2f}× the previous pacing's speed"
            judged = h.verdict(ok, f"{run.makespan / ceiling:.2f}× the ceiling")
            target += "; target ≤ 2× the ceiling, and no slower than the previous pacing"
        out.append(
            h.Row(
                f"1. quota, busy 429s: {run.client}",
                f"{run.command}; {setup.label()}",
                figure,
                target,
                judged,
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=600)
    ap.add_argument("--every", type=int, default=9, help="one submit in EVERY is answered 429")
    ap.add_argument("--reset", type=float, default=1.2, help="the busy 429s' reset, seconds")
    args = ap.parse_args()
    setup = BusySetup(args.jobs, args.every, args.reset)
    print(h.render_table(busy_rows(setup, measure_busy(setup))))


if __name__ == "__main__":
    main()

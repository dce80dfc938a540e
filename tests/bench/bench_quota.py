"""Benchmark: how much of a windowed quota each client turns into finished images.

    python -m tests.bench.bench_quota [--jobs 600] [--limit 60] [--window 6] [--latency 2.4,0.5]
        [--only rate,fixed,sliding,polls,sdk] [--keep DIR] [--client-path CHECKOUT]

The emulator (its own process) grants ``--limit`` submits per ``--window`` seconds per key, fixed windows,
and answers 429 beyond; inference takes N(2.4 s, 0.5 s), Segmind's ~24 s scaled by 1/10 like the window.
No client can finish sooner than the limit ⌊(N−1)/R⌋ windows + one latency after its first submit.
Three clients, each against a fresh emulator with the same seed (so the same latency draws):

1. ``batchflux run --rate 60/6s`` — told the quota (``--rpm R`` is ``--rate R/60s``);
2. ``batchflux run`` — not told: it learns the quota from the 429s; once with the emulator counting
   only submits toward the quota, once counting the status and result calls too (``--count-polls``);
3. the official SDK in a thread pool of ⌈R/W × (latency + poll interval)⌉ threads (enough to keep the
   quota busy), and again with 80 % of that (headroom, fewer 429s), polling every 0.1 s (its 1 s
   default, scaled); it has no 429 handling, so every 429 fails its job.

Makespan runs from the first submit the emulator saw to the last image on disk. Quota use is
limit / makespan; the target (DESIGN.md) is ≥ 95 % with the rate given, and no 429s. Without the
rate (issue 15): ≥ 95 %, at most 2 429s in any window after the first, and a detection lag p50 ≤ 1 s
(per job, the ledger's ``result`` event minus the emulator's completion: how soon a finished job
was seen while submits were being paced).

Each batchflux client runs ``--repeat`` times (3), the repetitions side by side, each against its
own emulator process: the makespan is set by the quota's windows, not by CPU (a client uses ~2 % of
a core here), so three at once take the minute one takes. The medians are shown. The SDK runs are
a baseline and run once each, one after the other.
"""

from __future__ import annotations

import argparse
import functools
import math
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from batchflux.engine.pacing import parse_rate
from tests import runkit
from tests.bench import harness as h
from tests.bench.bench_quota_busy import BusySetup, busy_rows, measure_busy


@dataclass(frozen=True, slots=True)
class QuotaSetup:
    jobs: int = 600
    limit: int = 60
    window: float = 6.0
    latency: float = 2.4
    latency_sd: float = 0.5
    sdk_interval: float = 0.1
    threads: int | None = None  # the SDK's pool; default ⌈R/W × (latency + interval)⌉
    count_polls: bool = False  # the emulator counts status/result calls toward the quota too
    limiter: str = "fixed"  # the emulator's kind of window: fixed or sliding

    @property
    def bound(self) -> float:
        return (self.jobs - 1) // self.limit * self.window + self.latency

    @property
    def rate(self) -> str:
        return f"{self.limit}/{self.window:g}s"

    @property
    def sdk_threads(self) -> int:
        if self.threads is not None:
            return self.threads
        return math.ceil(self.limit / self.window * (self.latency + self.sdk_interval))

    @property
    def sdk_pools(self) -> tuple[int, ...]:
        """Pool sizes tried: enough to cover quota × latency, and 80 % of that (headroom for the
        latency's spread, so fewer windows overflow: a 429 fails a job at once, and the freed thread
        submits the next job straight into the same full window)."""
        if self.threads is not None:
            return (self.threads,)
        full = self.sdk_threads
        return (full, max(1, int(full * 0.8)))

    def emulator(self) -> list[str]:
        return h.emulator_args(
            latency=f"{self.latency},{self.latency_sd}",
            latency_min=0.02,
            rpm=self.limit,
            window=self.window,
            image_size=64,
            count_polls=self.count_polls,
            limiter=None if self.limiter == "fixed" else self.limiter,
        )

    def label(self) -> str:
        return (
            f"{self.jobs} jobs, emulator --rpm {self.limit} --window {self.window:g} "
            f"--latency {self.latency:g},{self.latency_sd:g}"
            + (" --count-polls" if self.count_polls else "")
            + (f" --limiter {self.limiter}" if self.limiter != "fixed" else "")
        )


@dataclass(frozen=True, slots=True)
class QuotaRun:
    role: str  # "rate": batchflux told the quota; "learned": batchflux not told; "sdk"
    client: str
    command: str
    makespan: float
    rate_limited: int
    done: int
    failed: str
    max_in_window: int
    status_calls: int
    worst_later_window: int = 0  # the most 429s in one window after the first
    quota_calls: int = 0  # calls the emulator counted toward the quota and accepted
    lag_p50: float | None = None  # seconds from completion to the client's result event
    learned: str = ""

    def use(self, bound: float) -> float:
        """Share of the quota turned into images: limit / makespan (meaningful only when all are done)."""
        return bound / self.makespan if self.makespan > 0 else 0.0


CLIENT_ROOT = h.ROOT  # --client-path: run another checkout's batchflux (a before/after)


def _batchflux(setup: QuotaSetup, tmp: Path, manifest: Path, with_rate: bool, rep: int = 0) -> QuotaRun:
    polls = "-polls" if setup.count_polls else ""
    with h.emulator(*setup.emulator()) as emu:
        out = tmp / f"{'bf-rate' if with_rate else 'bf-learned'}{polls}-{setup.limiter}-{rep}"
        extra = ["--rate", setup.rate] if with_rate else []
        argv = h.batchflux_cmd(manifest, out, emu.url, *extra)
        report = h.run_client("batchflux", ["--", *argv], root=CLIENT_ROOT)
        stats = emu.stats()
        events = runkit.read_events(out)
        results = {e["request_id"]: e["ts"] for e in events if e["event"] == "result"}
        lags = [at - float(emu.request_info(rid)["completed_at"]) for rid, at in results.items()]
    downloads = [e["ts"] for e in events if e["event"] == "downloaded"]
    failed = sum(1 for e in events if e["event"] == "failed")
    times = stats["submit_times"]
    makespan = max(downloads) - min(times) if downloads and times else float("nan")
    summary = runkit.summary(out)
    return QuotaRun(
        role="rate" if with_rate else "learned",
        client="batchflux"
        + (f" --rate {setup.rate}" if with_rate else " (no rate given: learned)")
        + (", polls counted" if setup.count_polls else "")
        + (f", {setup.limiter} limiter" if not with_rate and not setup.count_polls else ""),
        command=h.show_cmd(argv, "m.csv") + f"  [exit {report['exit_code']}]",
        makespan=makespan,
        rate_limited=int(stats["rate_limited"]),
        done=len(set(e["job"] for e in events if e["event"] == "downloaded")),
        failed=str(failed),
        max_in_window=runkit.max_in_window(times, setup.window),
        status_calls=int(stats["status_calls"]),
        worst_later_window=_worst_later_window(stats["rate_limited_times"], times, setup.window),
        quota_calls=len(times)
        + (int(stats["status_calls"]) + int(stats["result_calls"]) if setup.count_polls else 0)
        - (int(stats["rate_limited"]) if setup.count_polls else 0),
        lag_p50=h.percentile(lags, 50) if lags else None,
        learned=str(summary.get("learned_rate") or ""),
    )


def _worst_later_window(limited: list[float], submits: list[float], window: float) -> int:
    """The most 429s in one window after the first (windows counted from the first submit; the
    emulator's are aligned to its start, so this is the most in any ``window`` seconds)."""
    if not limited or not submits:
        return 0
    later = sorted(t for t in limited if t >= min(submits) + window)
    return runkit.max_in_window(later, window) if later else 0


def _sdk(setup: QuotaSetup, tmp: Path, manifest: Path, threads: int) -> QuotaRun:
    with h.emulator(*setup.emulator()) as emu:
        args = ["--url", emu.url, "--manifest", str(manifest), "--out", str(tmp / "sdk")]
        args += ["--threads", str(threads), "--interval", str(setup.sdk_interval)]
        report = h.run_client("sdk", args)
        stats = emu.stats()
    times = stats["submit_times"]
    last = report["last_done_unix"]
    failures = report["failures"]
    return QuotaRun(
        role="sdk",
        client=f"official SDK, {threads} threads",
        command=f"segmind SDK submit_async().wait(interval={setup.sdk_interval:g}) × {threads} threads",
        makespan=(last - min(times)) if last and times else float("nan"),
        rate_limited=int(stats["rate_limited"]),
        done=int(report["done"]),
        failed=(", ".join(f"{n} {why}" for why, n in failures.items()) or "0"),
        max_in_window=runkit.max_in_window(times, setup.window),
        status_calls=int(stats["status_calls"]),
    )


ROWS = ("rate", "fixed", "sliding", "polls", "sdk")  # the rows, by name (--only)


def measure(
    setup: QuotaSetup, repeat: int = 3, only: tuple[str, ...] = ROWS, keep: Path | None = None
) -> list[QuotaRun]:
    """``keep``: leave each run's directory (its ledger and log) there, for a look at a bad run."""
    runs: list[QuotaRun] = []
    with tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp_name:
        tmp = Path(tmp_name) if keep is None else keep
        tmp.mkdir(parents=True, exist_ok=True)
        manifest = h.write_manifest(tmp / "m.csv", setup.jobs)
        variants = {
            "rate": (True, setup),
            "fixed": (False, setup),
            "sliding": (False, replace(setup, limiter="sliding")),
            "polls": (False, replace(setup, count_polls=True)),
        }
        for with_rate, variant in (variants[name] for name in ROWS if name in only and name in variants):
            how = "with" if with_rate else "without"
            h.say(f"quota: batchflux {how} --rate, {repeat} runs side by side, {variant.label()}")
            with ThreadPoolExecutor(repeat) as pool:
                runs += pool.map(
                    functools.partial(_batchflux, variant, tmp, manifest, with_rate), range(repeat)
                )
        for threads in setup.sdk_pools if "sdk" in only else ():
            h.say(f"quota: official SDK, {threads} threads, {setup.label()}")
            runs.append(_sdk(setup, tmp, manifest, threads))
    return runs


def rows(setup: QuotaSetup, runs: list[QuotaRun]) -> list[h.Row]:
    bound = setup.bound
    limit_text = (
        f"limit {bound:.1f} s = ⌊{setup.jobs - 1}/{setup.limit}⌋×{setup.window:g} s + {setup.latency:g} s"
    )
    groups: dict[str, list[QuotaRun]] = {}
    for run in runs:
        groups.setdefault(run.client, []).append(run)
    out = []
    for client, group in groups.items():
        first, n = group[0], len(group)
        label = replace(setup, limiter="sliding").label() if "sliding limiter" in client else setup.label()
        all_done = all(r.done == setup.jobs for r in group)
        makespan = h.median(r.makespan for r in group)
        row_bound, row_limit_text = bound, limit_text
        if "polls counted" in client:  # every accepted status and result call took a slot too
            calls = int(h.median(r.quota_calls for r in group))
            row_bound = (calls - 1) // setup.limit * setup.window + setup.latency
            row_limit_text = (
                f"limit {row_bound:.1f} s = ⌊({calls} quota-counted calls − 1)/{setup.limit}⌋"
                f"×{setup.window:g} s + {setup.latency:g} s"
            )
        use = row_bound / makespan if makespan > 0 else 0.0
        limited = [r.rate_limited for r in group]
        if n > 1:
            spans = ", ".join(f"{r.makespan:.1f}" for r in group)
            head = f"makespan {makespan:.1f} s (median of {n}: {spans})"
            shown_429 = f"{max(limited)} 429s at most ({', '.join(map(str, limited))})"
        else:
            head, shown_429 = f"makespan {makespan:.1f} s", f"{limited[0]} 429s"
        use_text = f"quota use {use:.1%}" if all_done else "quota use n/a (jobs lost)"
        figure = (
            f"{head}, {use_text}, {shown_429}, {min(r.done for r in group)}/{setup.jobs} done, "
            f"failed {', '.join(sorted(set(r.failed for r in group)))}, "
            f"max {max(r.max_in_window for r in group)} submits in any {setup.window:g} s, "
            f"{h.median(r.status_calls for r in group) / setup.jobs:.2f} status calls/job"
        )
        lags = [r.lag_p50 for r in group if r.lag_p50 is not None]
        worst = max(r.worst_later_window for r in group)
        if first.role != "sdk":
            figure += f", detection lag p50 {h.median(lags):.2f} s" if lags else ""
            figure += f", at most {worst} 429s in a window after the first"
        if first.role == "learned":
            figure += f", learned {', '.join(r.learned or 'nothing' for r in group)}"
            error = max(window_error(r.learned, setup.window) for r in group)
            figure += f", window error {error:.2%} at most"
        if first.role == "rate":
            ok = use >= 0.95 and max(limited) == 0 and all_done
            judged = h.verdict(ok, f"{use:.1%} of quota, {max(limited)} 429s")
            target = f"{row_limit_text}; target ≥ 95 % use, 0 429s"
        elif first.role == "learned":
            lag = h.median(lags) if lags else float("inf")
            polls = "polls counted" in client
            floor = 0.95 if polls else 0.97
            ok = all_done and use >= floor and worst <= 2 and lag <= 1.0 and (polls or error <= 0.01)
            judged = h.verdict(ok, f"{use:.1%} of quota, {worst} 429s in a later window, lag p50 {lag:.2f} s")
            target = (
                f"{row_limit_text}; target ≥ {floor:.0%} use, ≤ 2 429s a window after the first, "
                "lag p50 ≤ 1 s" + ("" if polls else ", learned window within 1 %")
            )
        else:
            judged, target = "info (baseline)", limit_text
        out.append(h.Row(f"1. quota: {client}", f"{first.command}; {label}", figure, target, judged))
    return out


def window_error(learned: str, window: float) -> float:
    """How far a learned ``N/Ps`` is from the emulator's window (1.0: nothing learned)."""
    try:
        return abs(parse_rate(learned).period - window) / window
    except ValueError:
        return 1.0


def run(quick: bool = False) -> list[h.Row]:
    setup = QuotaSetup(jobs=120, limit=30, window=2.0, latency=0.8, latency_sd=0.2) if quick else QuotaSetup()
    busy = BusySetup(jobs=120) if quick else BusySetup()
    return rows(setup, measure(setup, repeat=1 if quick else 3)) + busy_rows(busy, measure_busy(busy))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=600)
    ap.add_argument("--limit", type=int, default=60, help="submits per window")
    ap.add_argument("--window", type=float, default=6.0, help="window, seconds")
    ap.add_argument("--latency", default="2.4,0.5", help="MEAN,SD seconds")
    ap.add_argument("--sdk-threads", type=int, help="default: ⌈R/W × (latency + 0.1 s)⌉")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each batchflux client, side by side")
    ap.add_argument("--sdk-only", action="store_true", help="only the SDK run")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="keep the runs' directories in DIR")
    ap.add_argument(
        "--client-path", type=Path, metavar="DIR", help="run the batchflux of this checkout (a before/after)"
    )
    ap.add_argument(
        "--only", default=",".join(ROWS), help=f"the rows to run, comma-separated, of {','.join(ROWS)}"
    )
    args = ap.parse_args()
    if args.client_path is not None:
        global CLIENT_ROOT
        CLIENT_ROOT = args.client_path.resolve()
    mean, sd = (float(x) for x in args.latency.split(","))
    setup = QuotaSetup(args.jobs, args.limit, args.window, mean, sd, threads=args.sdk_threads)
    if args.sdk_only:
        with tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp_name:
            tmp = Path(tmp_name)
            manifest = h.write_manifest(tmp / "m.csv", setup.jobs)
            sdk = [_sdk(setup, tmp, manifest, threads) for threads in setup.sdk_pools]
        print(h.render_table(rows(setup, sdk)))
        return
    only = tuple(name.strip() for name in args.only.split(","))
    if unknown := [name for name in only if name not in ROWS]:
        ap.error(f"--only: unknown row {', '.join(unknown)} (rows: {', '.join(ROWS)})")
    print(h.render_table(rows(setup, measure(setup, args.repeat, only, args.keep))))


if __name__ == "__main__":
    main()

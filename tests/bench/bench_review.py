"""How the review holds up on a big run: opening it, serving its page, giving and seeing verdicts.

    python -m tests.bench.bench_review [--jobs 10000] [--verdicts 500]

Builds the report benchmark's run directory (N jobs, 90 % done with real PNG outputs), then times:
- the session's start (ledger replay, rows, the review log merged);
- the page (every card with its verdict) and its size;
- giving a verdict (appended and fsynced to reviews.jsonl): median and p95 of ``--verdicts`` of them;
- what another tab's poll costs once the log has them all (the log re-read and merged);
- the run's verdict count at its end (a replay of the ledger, the log merged), which a run pays only
  when someone has reviewed in its directory.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from batchflux.files.layout import LEDGER_FILENAME, REVIEWS_FILENAME
from batchflux.ledger import replay_file
from batchflux.ledger.reviews import count_verdicts, merge_reviews
from batchflux.review.page import render_review
from batchflux.review.session import ReviewSession
from tests.bench.bench_report import build


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--verdicts", type=int, default=500)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = build(Path(tmp), args.jobs)
        session, start_s = timed(lambda: ReviewSession([out]))
        html, page_s = timed(
            lambda: render_review(
                title="bench", out_dirs=[out], cards=session.cards("t" * 32), counts=session.counts(),
                token="t" * 32, version=0, nonce="n",
            )
        )  # fmt: skip
        done = [row for row in session.model.rows if row.status == "done"][: args.verdicts]
        gives = []
        for i, row in enumerate(done):
            rid = session.model.record(row).request_id
            verdict = "approved" if i % 4 else "rejected"
            gives.append(timed(lambda row=row, rid=rid, v=verdict: session.give(row.key, rid, v, "note"))[1])
        other = ReviewSession([out])
        (out / REVIEWS_FILENAME).touch()
        _, poll_s = timed(other.refresh_verdicts)

        def count() -> dict[str, int]:
            replay = replay_file(out / LEDGER_FILENAME)
            merge_reviews(replay, out)
            return count_verdicts(replay.jobs.values())

        counts, count_s = timed(count)
        print(f"review of {args.jobs:,} jobs ({len(done)} verdicts given)")
        print(f"  session start (replay + rows + log): {start_s * 1000:8.1f} ms")
        print(f"  page render: {page_s * 1000:8.1f} ms, {len(html) / 1e6:.1f} MB")
        gives.sort()
        p95 = gives[int(0.95 * (len(gives) - 1))]
        median = statistics.median(gives)
        print(f"  a verdict (append + fsync): median {median * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms")
        print(f"  another tab's poll after {len(done)} verdicts (log re-read): {poll_s * 1000:8.1f} ms")
        print(f"  verdicts at a run's end (replay + log): {count_s * 1000:8.1f} ms -> {counts}")


if __name__ == "__main__":
    main(sys.argv[1:])

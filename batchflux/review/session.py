"""One review: the directories' rows as last read, and the verdicts given on them.

The rows (ledgers) are read when the session starts and again when the page is loaded after a
ledger changed (a run working on the directory). Verdicts are re-read from the review logs
whenever one changed (another tab, another reviewer's server, ``--reject`` from a script), which
costs a read of those small files only. A verdict is given for the image the page showed — its
request id — and is refused (409) when the job has another image by now.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from batchflux.files.layout import LEDGER_FILENAME, REVIEWS_FILENAME
from batchflux.ledger.records import REVIEW_VERDICTS
from batchflux.ledger.reviews import append_reviews, merge_reviews, review_event
from batchflux.review.images import StoredImages
from batchflux.review.model import FAILED, REVIEWABLE, ReviewModel, card, load_model

MAX_NOTE = 2000  # characters of a note kept


class Refused(Exception):
    """A verdict the session will not record: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Verdict:
    key: str
    verdict: str | None
    note: str
    version: int  # the session's version after it


class ReviewSession:
    """Called from the server's worker threads: hold :attr:`lock` around every call."""

    def __init__(self, out_dirs: Sequence[Path], images: StoredImages | None = None) -> None:
        self.lock = threading.RLock()
        self.images = images  # run directories in a bucket: their images are fetched when shown
        self.out_dirs = tuple(Path(d) for d in out_dirs)
        self.model: ReviewModel = load_model(self.out_dirs)
        self._ledgers = self._signature(LEDGER_FILENAME)
        self._reviews = self._signature(REVIEWS_FILENAME)
        self.version = 0  # bumped whenever the verdicts may have changed

    def reload_if_changed(self) -> bool:
        """Read the ledgers again if a run changed them since; True when it did."""
        now = self._signature(LEDGER_FILENAME)
        if now == self._ledgers:
            self.refresh_verdicts()
            return False
        self.model = load_model(self.out_dirs)
        self._ledgers = now
        self._reviews = self._signature(REVIEWS_FILENAME)
        self.version += 1
        return True

    @property
    def ledgers_changed(self) -> bool:
        """A run has written to a ledger since the rows were read: the page may be out of date."""
        return self._signature(LEDGER_FILENAME) != self._ledgers

    def refresh_verdicts(self) -> bool:
        """Re-read the review logs if one changed; True when it did."""
        now = self._signature(REVIEWS_FILENAME)
        if now == self._reviews:
            return False
        self._reviews = now
        for rd in self.model.dirs:
            for rec in rd.replay.jobs.values():
                rec.review = None
            merge_reviews(rd.replay, rd.path)
        self.version += 1
        return True

    def cards(self, token: str) -> list[dict[str, object]]:
        """The page's cards, each with the verdict and note its image has now."""
        out = []
        for row in self.model.rows:
            data = card(row, token, self.images.exists) if self.images else card(row, token)
            data.pop("rv", None)
            data.pop("rn", None)
            review = self.model.record(row).current_review
            if review is not None and review.verdict:
                data["rv"] = review.verdict
            if review is not None and review.note:
                data["rn"] = review.note
            out.append(data)
        return out

    def verdicts(self) -> dict[str, list[str | None]]:
        """Row key -> [verdict, note] for every row with a verdict or a note on its image."""
        out: dict[str, list[str | None]] = {}
        for row in self.model.rows:
            review = self.model.record(row).current_review
            if review is not None and (review.verdict or review.note):
                out[row.key] = [review.verdict, review.note]
        return out

    def counts(self) -> dict[str, int]:
        """The page's filters: all, unreviewed (images without a verdict), approved, rejected, failed."""
        counts = dict.fromkeys(("all", "unreviewed", "approved", "rejected", "failed"), 0)
        for row in self.model.rows:
            counts["all"] += 1
            if row.status in FAILED:
                counts["failed"] += 1
            elif row.status == REVIEWABLE:
                verdict = self.model.record(row).verdict
                counts[verdict.verdict if verdict and verdict.verdict else "unreviewed"] += 1
        return counts

    def give(self, key: str, request_id: object, verdict: object, note: object) -> Verdict:
        """Record a verdict (None: clear it) and a note on the image ``request_id`` of row ``key``."""
        row = self.model.by_key.get(key)
        if row is None:
            raise Refused(404, f"no job {key!r} in this review")
        if verdict is not None and verdict not in REVIEW_VERDICTS:
            raise Refused(400, "verdict must be approved, rejected or null")
        if not isinstance(note, str):
            note = ""
        note = note.strip()[:MAX_NOTE]
        self.refresh_verdicts()
        rec = self.model.record(row)
        if row.status != REVIEWABLE or rec.request_id is None:
            raise Refused(409, f"{row.job_id} has no image to review ({row.status})")
        if request_id != rec.request_id:
            raise Refused(409, f"{row.job_id} has another image now; reload the page")
        event = review_event(row.job_id, rec.request_id, verdict, note)
        appended = append_reviews(row.out_dir, [event])
        rec.apply_fields(event.event, event.ts, event.data)
        self.version += 1
        # Nobody else wrote the log since it was read: the one line is folded in already, and the
        # next poll need not read the log again. Otherwise it does, and finds the others' lines.
        i = self.out_dirs.index(row.out_dir)
        known = self._reviews[i]
        if appended is not None and (known == appended.before or (known is None and appended.before[0] == 0)):
            self._reviews = (*self._reviews[:i], appended.after, *self._reviews[i + 1 :])
        return Verdict(key, rec.review.verdict if rec.review else None, note, self.version)

    def _signature(self, name: str) -> tuple[tuple[int, int] | None, ...]:
        out: list[tuple[int, int] | None] = []
        for d in self.out_dirs:
            try:
                st = os.stat(d / name)
            except OSError:
                out.append(None)
            else:
                out.append((st.st_size, st.st_mtime_ns))
        return tuple(out)

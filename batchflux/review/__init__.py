"""The review: a person approves or rejects each edit in the browser; verdicts go to the record.

- :mod:`.model` — the report's job rows in manifest order, with their verdicts.
- :mod:`.session` — one review's state: rows as last read, verdicts given and re-read.
- :mod:`.page` — the page (pure): the report's look and cards, the review's keys.
- :mod:`.server` — the aiohttp app on 127.0.0.1 behind a random token.
- :mod:`.scripted` — verdicts from a script (``--approve-all-unreviewed``, ``--reject``).

Verdicts are ``reviewed`` events in each directory's review log (:mod:`batchflux.ledger.reviews`).

May import: report, ledger, manifest, files. Never engine or run: it reads run directories and
appends only to their review logs.
"""

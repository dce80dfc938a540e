"""What a run directory holds, by name: one list for every part that reads or writes it."""

from typing import Final

LEDGER_FILENAME: Final = "ledger.jsonl"  # the append-only event log, the run's source of truth
REVIEWS_FILENAME: Final = "reviews.jsonl"  # verdicts: `batchflux review` appends here
SUMMARY_FILENAME: Final = "summary.json"  # what the last run did and where it left the directory
REPORT_FILENAME: Final = "report.html"
LOCK_FILENAME: Final = "run.lock"  # held by the one run that may write here
LOG_FILENAME: Final = "batchflux.log"
THUMB_DIRNAME: Final = "thumbs"  # the report's thumbnails
RESULTS_JSONL_FILENAME: Final = "results.jsonl"  # one row per job, for the next step of a pipeline
RESULTS_CSV_FILENAME: Final = "results.csv"  # the same rows for a spreadsheet
JOBS_FILENAME: Final = "jobs.csv"  # the manifest of jobs given from Python, kept for resume and export

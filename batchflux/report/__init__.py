"""The HTML report: a before/after gallery of a batch in one self-contained file.

- :mod:`.model` — ledgers and summaries → job rows and the timeline's events (pure).
- :mod:`.rows` — the report's inputs (one per output directory) and its job rows.
- :mod:`.figures` — the header's counts, wall time, quota use, spend and timings (pure).
- :mod:`.timeline` — submissions and completions over time as inline SVG (pure).
- :mod:`.render` — the page: escaped markup, inert embedded JSON, a strict CSP (pure).
- :mod:`.thumbs` — Pillow thumbnails in ``OUT/thumbs/``, made once and reused (or, for an image
  that leaves the disk, made before it goes and named by its content).
- :mod:`.build` — :func:`write_report`, the one function that reads and writes files.

May import: ledger, manifest, files. Never engine or run: it reads run directories only.
"""

from batchflux.files.layout import REPORT_FILENAME
from batchflux.report.build import ReportError, write_report

__all__ = ["REPORT_FILENAME", "ReportError", "write_report"]

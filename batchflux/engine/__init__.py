"""The engine: the stages (upload, submit, poll, result, download) as bounded worker pools in one
TaskGroup, the poll schedule and the pacing (rate window, 429 gate, in-flight cap), and the request
history's lookups before anything is paid for twice (:mod:`.history`).

May import: api, files, ledger, manifest. Never run, cli, report or emulator: it reports through
the :class:`~batchflux.engine.progress.Progress` seam and the ledger, and never prints.
"""

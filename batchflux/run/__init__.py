"""One run of a manifest, start to finish: the runner, the lock, sharding, run state, the summary,
metrics, progress, logging, the console (a stdout or stderr that may go away) and the exit codes;
and what a batch really cost, asked of the request history (:mod:`.spend`, ``status --spend``).

May import: engine, api, files, ledger, manifest, report. Never cli or emulator.
"""

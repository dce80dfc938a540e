from batchflux.cli import entry

entry()

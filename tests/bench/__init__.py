"""The benchmark suite: ``python -m tests.bench`` runs every benchmark and prints one table (see README.md).

Modules named ``bench_*.py`` are not collected by pytest (its default pattern is ``test_*.py``); importing
this package runs nothing.
"""

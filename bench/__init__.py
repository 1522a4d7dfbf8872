"""Reproducible benchmarks: `python -m bench <name> [--db sqlite|postgres]` (see __main__)."""

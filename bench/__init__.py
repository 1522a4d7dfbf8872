"""Reproducible benchmarks: `python -m bench <name> [--db sqlite|postgres] [options]`.

Each benchmark is a module `bench/<name>.py` with `async def run(db_url, args) -> dict` (and
optionally `add_arguments(parser)`); `python -m bench` prepares the database, runs it and
prints one JSON line. The test suite runs smaller versions of the same scenarios
(tests/test_bench.py).

`bot` is imported first so that aiogram's models are built on first use here as in the
running bot (bot/lazy_models.py)."""

import bot  # noqa: F401

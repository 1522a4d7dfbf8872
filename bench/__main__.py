"""`python -m bench <name> [--db sqlite|postgres]`: runs `bench/<name with - → _>.py`, whose
`async def run(db_url: str, args) -> dict` returns the figures; prints them as one JSON line.

SQLite uses a fresh file in a temporary directory; PostgreSQL the database in
BENCH_POSTGRES_URL (its public schema is dropped and recreated: use a throwaway database).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
import tempfile

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("name", help="benchmark name, e.g. digest")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    args, _rest = parser.parse_known_args(argv)
    module = importlib.import_module(f"bench.{args.name.replace('-', '_')}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.db == "sqlite":
            url = f"sqlite+aiosqlite:///{os.path.join(tmp, 'bench.db')}"
        else:
            url = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES)
        result = asyncio.run(module.run(url, args))
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m bench <name> [--db sqlite|postgres] [other args]`

Imports `bench.<name>` (dashes become underscores), which defines
`async def run(db_url: str, args: argparse.Namespace) -> dict` and optionally
`add_arguments(parser)`; prints ONE JSON line: the figures plus the benchmark's name, the
database, the Python version and the machine. Exits 1 when the figures miss the issue's
targets (`"ok": false`).

`--db sqlite` (default) uses a fresh file in a temporary directory; `--db postgres` uses
BENCH_POSTGRES_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/bench), creates the
database if it is missing and resets its schema (all data is dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import sys
import tempfile

from bench.common import machine, postgres_url, prepare


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = argparse.ArgumentParser(prog="python -m bench", add_help=False)
    first.add_argument("name", nargs="?")
    known, _rest = first.parse_known_args(argv)
    if not known.name or known.name.startswith("-"):
        print("usage: python -m bench <name> [--db sqlite|postgres] [options]", file=sys.stderr)
        return 2
    name = known.name
    try:
        module = importlib.import_module(f"bench.{name.replace('-', '_')}")
    except ModuleNotFoundError as exc:
        if exc.name != f"bench.{name.replace('-', '_')}":
            raise
        print(f"bench: no benchmark named {name!r}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"python -m bench {name}")
    parser.add_argument("name")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--log-level", default="WARNING", help="logging level (stderr)")
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiogram.event").setLevel(max(logging.WARNING, logging.root.level))

    with tempfile.TemporaryDirectory(prefix=f"tuan-bench-{name}-") as tmp:
        if args.db == "postgres":
            db_url = postgres_url()
        else:
            db_url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        args.tmp = tmp

        async def go() -> dict:
            await prepare(db_url)
            return await module.run(db_url, args)

        result = asyncio.run(go())
    line = {**result, "bench": name, "db": args.db, **machine()}
    print(json.dumps(line, ensure_ascii=False), flush=True)
    return 0 if result.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())

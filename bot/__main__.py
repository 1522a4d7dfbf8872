"""`python -m bot [run|migrate|healthcheck|verify-lottery ...]` — run is the default.

`run` applies the migrations in a short-lived child process (`python -m bot migrate`, same
interpreter, environment and working directory, hence the same settings and `.env`) before
it starts the bot, so Alembic and Mako are never imported by the running bot.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from bot.config import DatabaseSettings, Settings, describe_error


def _fail(message: str, code: int = 2) -> int:
    print(f"tuan: {message}", file=sys.stderr)
    return code


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if level != "DEBUG":  # aiogram logs every update at INFO
        logging.getLogger("aiogram.event").setLevel(logging.WARNING)


def cmd_migrate() -> int:
    from bot.migrate import upgrade

    try:
        settings = DatabaseSettings()
    except ValidationError as exc:
        return _fail(describe_error(exc))
    try:
        upgrade(settings.database_url)
    except Exception as exc:
        return _fail(f"migration failed: {type(exc).__name__}: {exc}".splitlines()[0])
    print("tuan: database is up to date", file=sys.stderr)
    return 0


def migrate_in_child() -> int:
    """`python -m bot migrate` as a child process; its exit code (it reports on stderr)."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "bot", "migrate"], env=os.environ.copy(), check=False
        ).returncode
    except OSError as exc:
        return _fail(f"could not start the migration step: {exc}")


def cmd_run() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        return _fail(describe_error(exc))
    _logging(settings.log_level)
    code = migrate_in_child()
    if code != 0:
        return code

    from aiogram.exceptions import TelegramUnauthorizedError

    from bot.factory import create_app
    from bot.runner import serve

    async def main() -> None:
        app = create_app(settings)
        try:
            await serve(app)
        finally:
            await app.close()

    try:
        asyncio.run(main())
    except TelegramUnauthorizedError:
        return _fail("Telegram rejected BOT_TOKEN (401 Unauthorized); check it with @BotFather")
    except KeyboardInterrupt:
        pass
    return 0


def cmd_healthcheck(max_age: float = 90.0) -> int:
    """Exit 0 when the bot's heartbeat is fresh and the database answers."""
    try:
        settings = DatabaseSettings()
    except ValidationError as exc:
        return _fail(describe_error(exc), 1)
    beat = Path(settings.data_dir) / "heartbeat"
    try:
        age = time.time() - beat.stat().st_mtime
    except FileNotFoundError:
        return _fail("no heartbeat yet", 1)
    if age > max_age:
        return _fail(f"heartbeat is {age:.0f} s old", 1)

    async def ping() -> None:
        from sqlalchemy import text

        from models.db import create_engine

        engine = create_engine(settings.database_url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        asyncio.run(asyncio.wait_for(ping(), 5))
    except Exception as exc:
        return _fail(f"database unreachable: {type(exc).__name__}", 1)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "verify-lottery":  # its own options (bot/verify_lottery.py)
        from bot.verify_lottery import main as verify_lottery

        return verify_lottery(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bot", description="Tuan Telegram bot")
    parser.add_argument(
        "command", nargs="?", default="run", choices=["run", "migrate", "healthcheck"]
    )
    args = parser.parse_args(argv)
    if args.command == "migrate":
        return cmd_migrate()
    if args.command == "healthcheck":
        return cmd_healthcheck()
    return cmd_run()


if __name__ == "__main__":
    sys.exit(main())

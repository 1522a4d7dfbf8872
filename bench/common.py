"""What the benchmarks share: the database (reset and migrated), the app wired with a fake
Bot API session (tests/fake_api.py, the same fake the test suite uses), seeding, update
streams, percentiles and the description of the machine."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import platform
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.types import Update
from sqlalchemy import event, insert, select, text
from sqlalchemy.engine import make_url

from bot.config import Settings
from bot.factory import App, create_app
from models import Database, DealPost, Group, GroupAdmin
from services import deals as deal_service
from services.timezones import utcnow
from tests.fake_api import FakeTelegram

TOKEN = "123456789:AAHfakeTokenForBenchOnly_abcdefghijkl"
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench"
GROUP_BASE = -1001_500_000_000  # group i has chat id GROUP_BASE - i
USER_BASE = 5_000_000  # member i has user id USER_BASE + i
OWNER_ID = 4_000_001


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:  # the model name says more than the architecture
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} CPUs",
    }


def postgres_url() -> str:
    return os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES)


async def ensure_postgres_database(url: str) -> None:
    """Create the database of `url` if it does not exist (connecting to `postgres`)."""
    import asyncpg

    parsed = make_url(url)
    name = parsed.database
    dsn = parsed.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def prepare(db_url: str) -> None:
    """An empty database at the latest migration (PostgreSQL: the database is created if
    missing and its public schema dropped first)."""
    if db_url.startswith("postgresql"):
        await ensure_postgres_database(db_url)
    db = Database(db_url)
    try:
        async with db.engine.begin() as conn:
            if db.dialect == "postgresql":
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
            else:
                rows = await conn.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'table'")
                )
                for (name,) in rows.all():
                    if not name.startswith("sqlite_"):
                        await conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
    finally:
        await db.dispose()
    from bot.migrate import upgrade

    await asyncio.to_thread(upgrade, db_url)  # Alembic runs its own event loop


def settings(db_url: str, data_dir: str | Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bot_token": TOKEN,
        "database_url": db_url,
        "data_dir": str(data_dir),
        "default_timezone": "Asia/Shanghai",
        "default_language": "en",
        "default_currency": "CNY",
        "admin_ids": "42",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def make_app(
    db_url: str, data_dir: str | Path, api: FakeTelegram | None = None, **overrides: Any
) -> tuple[App, FakeTelegram]:
    api = api if api is not None else FakeTelegram()
    return create_app(settings(db_url, data_dir, **overrides), session=api), api


def group_chat_id(index: int) -> int:
    return GROUP_BASE - index


def member_id(index: int) -> int:
    return USER_BASE + index


async def add_groups(
    db: Database, count: int, *, chunk: int = 5000, owned: bool = False
) -> list[int]:
    """`count` active groups (chat ids group_chat_id(0..count-1)); their internal ids. With
    `owned`, OWNER_ID is each one's creator in a fresh stored list of administrators (owner
    actions check current rights: services.rights)."""
    now = utcnow()
    rows = [
        {
            "chat_id": group_chat_id(i),
            "title": f"Group {i}",
            "type": "supergroup",
            "timezone": "Asia/Shanghai",
            "currency": "CNY",
            "language": "zh_Hans" if i % 3 == 2 else "en",
            "is_active": True,
            "admins_refreshed_at": now if owned else None,
        }
        for i in range(count)
    ]
    async with db.transaction() as session:
        for start in range(0, len(rows), chunk):
            await session.execute(insert(Group), rows[start : start + chunk])
        ids = await session.execute(
            select(Group.id, Group.chat_id).where(Group.chat_id <= group_chat_id(0))
        )
        by_chat = {chat_id: gid for gid, chat_id in ids.all()}
        admins = [
            {"group_id": gid, "user_id": OWNER_ID, "status": "creator", "refreshed_at": now}
            for gid in (by_chat.values() if owned else ())
        ]
        for start in range(0, len(admins), chunk):
            await session.execute(insert(GroupAdmin), admins[start : start + chunk])
    return [by_chat[group_chat_id(i)] for i in range(count)]


async def create_deal(
    db: Database, group_ids: Sequence[int], *, title: str = "Mangoes", **spec: Any
) -> int:
    now = utcnow()
    deal_spec = deal_service.DealSpec(
        title=title,
        currency="CNY",
        unit_price=1250,
        closes_at=now + timedelta(hours=6),
        group_ids=list(group_ids),
        description="Hainan mangoes, 5 kg box",
        pickup_note="Block 3 lobby, Saturday 10:00",
    )
    for key, value in spec.items():
        setattr(deal_spec, key, value)
    async with db.transaction() as session:
        deal = await deal_service.create(session, OWNER_ID, deal_spec, now)
        return deal.id


async def mark_posted(db: Database, deal_id: int, message_id: int = 1) -> None:
    """Record the deal as already posted in all its groups (without sending anything)."""
    from sqlalchemy import update

    async with db.transaction() as session:
        await session.execute(
            update(DealPost)
            .where(DealPost.deal_id == deal_id)
            .values(message_id=message_id, posted_at=utcnow())
        )


def mount(updates: Iterable[Update], bot: Bot) -> list[Update]:
    """Bind updates to `bot` the way getUpdates does (the Dispatcher would otherwise copy
    each one through JSON), so the timed part is the processing only."""
    return [Update.model_validate(u.model_dump(), context={"bot": bot}) for u in updates]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class ErrorCounter(logging.Handler):
    """Counts log records at ERROR or above while installed (failed updates log there)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < 3:
            self.first.append(record.getMessage()[:200])

    def __enter__(self) -> ErrorCounter:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)


CONTROL = ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK")  # transaction control


class StatementCounter:
    """What an engine sends its driver while installed (and `on`): every statement through
    the cursor (its first four words) and each transaction's BEGIN, COMMIT and ROLLBACK,
    BEGIN once per transaction on both databases (SQLite's `BEGIN IMMEDIATE` goes through
    the cursor, asyncpg's BEGIN does not: the engine's `begin` event counts it).

    `statements`: the SQL statements and the COMMITs, the issue's count of a Join tap (the
    replay record and the commit included; BEGIN, SAVEPOINT, RELEASE and ROLLBACK are not);
    `round_trips`: everything."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine.sync_engine
        self.names: list[str] = []
        self.on = True

    def _execute(self, _conn, _cursor, statement: str, *_args: Any) -> None:
        if self.on and not statement.lstrip()[:5].upper() == "BEGIN":
            self.names.append(" ".join(statement.split()[:4]))

    def _event(self, name: str) -> Any:
        def record(_conn) -> None:
            if self.on:
                self.names.append(name)

        return record

    @property
    def statements(self) -> int:
        return sum(not name.upper().startswith(CONTROL) for name in self.names)

    @property
    def round_trips(self) -> int:
        return len(self.names)

    def __enter__(self) -> StatementCounter:
        self._listeners = [("before_cursor_execute", self._execute)] + [
            (name, self._event(name.upper())) for name in ("begin", "commit", "rollback")
        ]
        for name, listener in self._listeners:
            event.listen(self.engine, name, listener)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, listener in self._listeners:
            event.remove(self.engine, name, listener)

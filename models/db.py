"""Engine, sessions and transactions for SQLite (aiosqlite) and PostgreSQL (asyncpg).

SQLite: WAL, busy_timeout and foreign keys on every connection; write transactions start with
`BEGIN IMMEDIATE` (a deferred transaction that reads and then writes fails at once with
"database is locked" when another writer is active). Writers inside one process also queue on
an asyncio lock, so they wait in the event loop rather than in SQLite's busy handler.
With the aiosqlite driver every statement is one hand-off to aiosqlite's worker thread instead
of three or four (models/sqlite_adapter.py, given to the dialect as its DBAPI module).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from models.sqlite_adapter import one_hop_dbapi
from services.events import take as take_events

SQLITE_BUSY_TIMEOUT_MS = 30_000
OWNER = "tuan_database"
log = logging.getLogger(__name__)

# Called with the domain events (services.events) of each committed transaction: the effects
# map (bot/effects.py) of the app that owns this Database.
EffectsHook = Callable[[list], None]

# The session of the update (or job) being processed, for code that cannot take it as an
# argument (the FSM storage). Set by Database.transaction().
current_session: contextvars.ContextVar[AsyncSession | None] = contextvars.ContextVar(
    "current_session", default=None
)


def _prepare_sqlite_path(url: str) -> None:
    parsed = make_url(url)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        _prepare_sqlite_path(url)
        extra = {}
        if make_url(url).get_driver_name() == "aiosqlite":
            # Same dialect and URL; the adapter only changes how statements reach the thread.
            extra["module"] = one_hop_dbapi()
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30}, **extra)
        _install_sqlite_hooks(engine)
        return engine
    return create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True
    )


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # pragma: no cover - trivial
        # Take over transaction control from the driver so BEGIN can be chosen per use.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn) -> None:
        if conn.get_execution_options().get("sqlite_immediate"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class Database:
    """The app's database: one engine, a writer and a reader session factory."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, echo=echo, pool_size=pool_size)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        write_bind = (
            self.engine.execution_options(sqlite_immediate=True) if self.is_sqlite else self.engine
        )
        self._writer = async_sessionmaker(write_bind, expire_on_commit=False)
        self._reader = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self.effects: EffectsHook | None = None  # set by bot.factory

    def current(self) -> AsyncSession | None:
        """The transaction of this database that the running task is inside, if any.
        (A transaction of another Database object — a second instance in a test — is not.)"""
        session = current_session.get()
        if session is not None and session.info.get(OWNER) is self:
            return session
        return None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: commit on success, roll back on error.

        Nested use (a job or update that is already inside a transaction) joins the outer one.
        """
        outer = self.current()
        if outer is not None:
            yield outer
            return
        if self._write_lock is not None:
            await self._write_lock.acquire()
        try:
            async with self._writer() as session, session.begin():
                session.info[OWNER] = self
                token = current_session.set(session)
                try:
                    yield session
                finally:
                    current_session.reset(token)
                    happened = take_events(session)
        finally:
            if self._write_lock is not None:
                self._write_lock.release()
        # Only reached when the transaction committed: what its events cause.
        if happened and self.effects is not None:
            try:
                self.effects(happened)
            except Exception:
                log.exception("effects of a committed transaction failed")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only session (no write lock); uses the current transaction if there is one."""
        outer = self.current()
        if outer is not None:
            yield outer
            return
        async with self._reader() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()

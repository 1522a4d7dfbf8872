"""models/sqlite_adapter.py: one hand-off to aiosqlite's worker thread per statement.

The first tests fail loudly when SQLAlchemy or aiosqlite change the names the adapter
subclasses or calls; the others check it behaves as the stock adapter does (rowcount,
RETURNING, lastrowid, executemany, error types, savepoints, concurrent writers, streaming)
and that a statement costs one hand-off.
"""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import aiosqlite.core
import pytest
import sqlalchemy.connectors.asyncio as sa_asyncio
import sqlalchemy.dialects.sqlite.aiosqlite as sa_aiosqlite
import sqlalchemy.ext.asyncio.result as sa_async_result
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

from models import Database, User
from models.db import create_engine
from models.sqlite_adapter import OneHopConnection, OneHopCursor, OneHopDBAPI
from tests.conftest import open_database

# --------------------------------------------------------------------------- what it relies on


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_sqlalchemy_adapter_has_what_the_adapter_subclasses() -> None:
    """SQLAlchemy's aiosqlite adapter: the classes, slots and hooks OneHopCursor builds on."""
    assert issubclass(sa_aiosqlite.AsyncAdapt_aiosqlite_cursor, sa_asyncio.AsyncAdapt_dbapi_cursor)
    assert issubclass(
        sa_aiosqlite.AsyncAdapt_aiosqlite_connection, sa_asyncio.AsyncAdapt_dbapi_connection
    )
    assert issubclass(sa_aiosqlite.AsyncAdapt_aiosqlite_dbapi, sa_asyncio.AsyncAdapt_dbapi_module)
    base = sa_asyncio.AsyncAdapt_dbapi_cursor
    assert set(base.__slots__) == {
        "_adapt_connection",
        "_connection",
        "_cursor",
        "_rows",
        "_soft_closed_memoized",
    }
    assert sa_aiosqlite.AsyncAdapt_aiosqlite_cursor.__slots__ == ()
    assert base.server_side is False
    # execute/executemany await these two and map errors through _handle_exception.
    assert _params(base._execute_async) == ["self", "operation", "parameters"]
    assert _params(base._executemany_async) == ["self", "operation", "seq_of_parameters"]
    for name, awaited in (("execute", "_execute_async"), ("executemany", "_executemany_async")):
        source = inspect.getsource(getattr(base, name))
        assert f"self.{awaited}(" in source, name
        assert "self._adapt_connection._handle_exception(error)" in source, name
    for name in ("fetchone", "fetchmany", "fetchall", "__iter__"):
        assert "self._rows" in inspect.getsource(getattr(base, name)), name
    # The async result calls this before handing a buffered result to sync code.
    assert "._async_soft_close()" in inspect.getsource(sa_async_result)
    assert inspect.iscoroutinefunction(base._async_soft_close)

    connection = sa_asyncio.AsyncAdapt_dbapi_connection
    assert "_execute_mutex" in connection.__slots__
    cursor_source = inspect.getsource(connection.cursor)
    assert "self._ss_cursor_cls(self)" in cursor_source
    assert "self._cursor_cls(self)" in cursor_source
    assert _params(connection.__init__) == ["self", "dbapi", "connection"]
    assert sa_aiosqlite.AsyncAdapt_aiosqlite_connection.__slots__ == ()
    for name in ("commit", "rollback"):
        source = inspect.getsource(getattr(sa_aiosqlite.AsyncAdapt_aiosqlite_connection, name))
        assert "if self._connection._connection:" in source, name
    assert _params(sa_aiosqlite.AsyncAdapt_aiosqlite_dbapi.__init__) == [
        "self",
        "aiosqlite",
        "sqlite",
    ]
    assert _params(sa_aiosqlite.AsyncAdapt_aiosqlite_dbapi.connect) == ["self", "arg", "kw"]
    # create_engine(module=...) replaces the dialect's DBAPI import.
    assert 'kwargs.pop("module", None)' in inspect.getsource(
        __import__("sqlalchemy.engine.create", fromlist=["create_engine"]).create_engine
    )


def test_every_stock_method_that_touches_the_driver_cursor_is_overridden() -> None:
    """OneHopCursor keeps no driver cursor: any stock method reading `self._cursor` (a new one
    in a later SQLAlchemy too) must be replaced, or it would fail on None."""
    stock = (sa_asyncio.AsyncAdapt_dbapi_cursor, sa_aiosqlite.AsyncAdapt_aiosqlite_cursor)
    touching = set()
    for cls in stock:
        for name, member in vars(cls).items():
            functions = [member.fget, member.fset] if isinstance(member, property) else [member]
            for fn in functions:
                if inspect.isfunction(fn) and "self._cursor" in inspect.getsource(fn):
                    touching.add(name)
    assert touching >= {"description", "rowcount", "lastrowid", "_execute_async", "close"}
    assert touching <= set(vars(OneHopCursor)), touching - set(vars(OneHopCursor))


def test_aiosqlite_has_what_the_adapter_calls() -> None:
    """aiosqlite: `Connection._execute(fn, *args)` runs fn on the worker thread; `_conn` is
    the sqlite3 connection (raises ValueError when closed)."""
    connection = aiosqlite.core.Connection
    assert inspect.iscoroutinefunction(connection._execute)
    assert _params(connection._execute) == ["self", "fn", "args", "kwargs"]
    assert isinstance(inspect.getattr_static(connection, "_conn"), property)
    init_source = inspect.getsource(connection.__init__)
    assert "self._connection: Optional[sqlite3.Connection] = None" in init_source
    assert "self._running = True" in init_source
    # OneHopConnection skips COMMIT/ROLLBACK when this is false, as sqlite3 itself does.
    assert isinstance(inspect.getattr_static(sqlite3.Connection, "in_transaction"), object)
    assert sqlite3.connect(":memory:").in_transaction is False
    assert aiosqlite.IntegrityError is sqlite3.IntegrityError
    assert aiosqlite.OperationalError is sqlite3.OperationalError


# --------------------------------------------------------------------------- behaviour


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'adapter.db'}")
    async with engine.begin() as conn:
        await conn.execute(
            text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE NOT NULL, n INTEGER)")
        )
    yield engine
    await engine.dispose()


async def test_the_engine_uses_the_adapter(engine: AsyncEngine) -> None:
    assert engine.url.drivername == "sqlite+aiosqlite"
    assert type(engine.dialect) is sa_aiosqlite.SQLiteDialect_aiosqlite
    assert isinstance(engine.dialect.dbapi, OneHopDBAPI)

    def kinds(sync_conn) -> tuple[type, type, type]:
        adapted = sync_conn.connection.dbapi_connection
        client, server = adapted.cursor(), adapted.cursor(server_side=True)
        client.close()
        server.close()
        return type(adapted), type(client), type(server)

    async with engine.connect() as conn:
        connection, client, server = await conn.run_sync(kinds)
    assert connection is OneHopConnection
    assert client is OneHopCursor
    assert server is sa_aiosqlite.AsyncAdapt_aiosqlite_ss_cursor


async def test_rowcount_lastrowid_and_returning(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        inserted = await conn.execute(text("INSERT INTO t (v, n) VALUES ('a', 1)"))
        assert inserted.rowcount == 1
        assert inserted.lastrowid == 1
        returned = await conn.execute(
            text("INSERT INTO t (v, n) VALUES ('b', 2), ('c', 3) RETURNING id, v")
        )
        assert [tuple(row) for row in returned] == [(2, "b"), (3, "c")]
        updated = await conn.execute(text("UPDATE t SET n = n + 10 WHERE n >= 2"))
        assert updated.rowcount == 2
        nothing = await conn.execute(text("UPDATE t SET n = 0 WHERE v = 'zz'"))
        assert nothing.rowcount == 0
        deleted = await conn.execute(text("DELETE FROM t WHERE v = 'a' RETURNING n"))
        assert deleted.scalars().all() == [1]
        rows = await conn.execute(text("SELECT v, n FROM t ORDER BY id"))
        assert list(rows.keys()) == ["v", "n"]
        assert [tuple(row) for row in rows] == [("b", 12), ("c", 13)]
        assert (await conn.execute(text("SELECT v FROM t WHERE 0"))).all() == []


async def test_executemany(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        result = await conn.execute(
            text("INSERT INTO t (v, n) VALUES (:v, :n)"),
            [{"v": f"x{i}", "n": i} for i in range(5)],
        )
        assert result.rowcount == 5
        total = await conn.scalar(text("SELECT sum(n) FROM t"))
    assert total == 10


async def test_errors_are_sqlalchemys_as_before(engine: AsyncEngine, tmp_path: Path) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
    async with engine.connect() as conn:
        with pytest.raises(exc.IntegrityError) as caught:
            await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert isinstance(caught.value.orig, sqlite3.IntegrityError)
        await conn.rollback()
        with pytest.raises(exc.OperationalError):
            await conn.execute(text("SELECT nope FROM t"))
        await conn.rollback()

    # "database is locked": another connection holds the write lock and this one will not wait.
    other = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'adapter.db'}")
    try:
        async with engine.connect() as holder, other.connect() as impatient:
            await impatient.exec_driver_sql("PRAGMA busy_timeout=0")
            await impatient.commit()
            await holder.execution_options(sqlite_immediate=True)
            await impatient.execution_options(sqlite_immediate=True)
            await holder.execute(text("INSERT INTO t (v) VALUES ('held')"))
            with pytest.raises(exc.OperationalError, match="database is locked"):
                await impatient.execute(text("INSERT INTO t (v) VALUES ('waits')"))
            await impatient.rollback()
            await holder.rollback()
    finally:
        await other.dispose()


async def test_a_rolled_back_savepoint_keeps_the_rest(tmp_path: Path) -> None:
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'sp.db'}")
    try:
        async with db.transaction() as session:
            session.add(User(id=1, first_name="kept"))
            await session.flush()
            with pytest.raises(exc.IntegrityError):
                async with session.begin_nested():
                    session.add(User(id=1, first_name="duplicate"))
                    await session.flush()
            session.add(User(id=2, first_name="after"))
        async with db.read() as session:
            names = (await session.execute(text("SELECT first_name FROM users"))).scalars()
            assert sorted(names) == ["after", "kept"]
    finally:
        await db.dispose()


async def test_concurrent_writers_on_one_file_serialise(tmp_path: Path) -> None:
    """Two Database objects (two write locks, two pools) on one file, many tasks each doing a
    read-then-write increment: BEGIN IMMEDIATE and busy_timeout still make them take turns."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    first = await open_database(url)
    second = Database(url)
    per_db = 25
    try:
        async with first.transaction() as session:
            await session.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)"))
            await session.execute(text("INSERT INTO counter VALUES (1, 0)"))

        async def bump(db: Database) -> None:
            async with db.transaction() as session:
                n = await session.scalar(text("SELECT n FROM counter WHERE id = 1"))
                await asyncio.sleep(0)
                await session.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})

        await asyncio.gather(*(bump(db) for db in (first, second) for _ in range(per_db)))
        async with first.read() as session:
            assert await session.scalar(text("SELECT n FROM counter")) == 2 * per_db
    finally:
        await second.dispose()
        await first.dispose()


async def test_server_side_cursors_keep_the_stock_path(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO t (v, n) VALUES (:v, :n)"),
            [{"v": f"s{i}", "n": i} for i in range(7)],
        )
    async with engine.connect() as conn:
        streamed = await conn.stream(text("SELECT n FROM t ORDER BY n"))
        assert [n async for n in streamed.scalars()] == list(range(7))


# --------------------------------------------------------------------------- hand-offs


class _Hops:
    """Counts calls of aiosqlite's Connection._execute (one per hand-off to its thread)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = aiosqlite.core.Connection._execute

        async def counted(connection, fn, *args, **kwargs):
            self.count += 1
            return await original(connection, fn, *args, **kwargs)

        monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)


async def test_one_hand_off_per_statement(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with engine.connect() as conn:
        await conn.scalar(text("SELECT 1"))  # connected, and the transaction's BEGIN issued
        hops = _Hops(monkeypatch)
        statements = [
            text("INSERT INTO t (v, n) VALUES ('a', 1)"),
            text("INSERT INTO t (v, n) VALUES ('b', 2) RETURNING id"),
            text("UPDATE t SET n = n + 1"),
            text("SELECT v, n FROM t"),
            text("DELETE FROM t WHERE v = 'a'"),
        ]
        for n, statement in enumerate(statements, start=1):
            (await conn.execute(statement)).all() if n in (2, 4) else await conn.execute(statement)
            assert hops.count == n
        # executemany: one hand-off for all its rows.
        await conn.execute(
            text("INSERT INTO t (v, n) VALUES (:v, :n)"), [{"v": f"m{i}", "n": i} for i in range(3)]
        )
        assert hops.count == len(statements) + 1
        await conn.commit()
        assert hops.count == len(statements) + 2  # COMMIT: one more
    # Giving the connection back to the pool: its ROLLBACK finds no open transaction (sqlite3
    # would do nothing) and costs no hand-off.
    assert hops.count == len(statements) + 2


async def test_rollback_of_an_open_transaction_still_reaches_sqlite(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO t (v) VALUES ('gone')"))
        hops = _Hops(monkeypatch)
        await conn.rollback()
        assert hops.count == 1
        assert await conn.scalar(text("SELECT count(*) FROM t")) == 0


async def test_a_write_transaction_costs_statements_plus_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Database.transaction(): BEGIN IMMEDIATE, the statements, COMMIT, one hand-off each."""
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
    try:
        async with db.transaction() as session:
            await session.scalar(text("SELECT 1"))
        hops = _Hops(monkeypatch)
        async with db.transaction() as session:
            session.add(User(id=7, first_name="one"))
            await session.flush()
            await session.scalar(text("SELECT first_name FROM users WHERE id = 7"))
        # BEGIN IMMEDIATE, INSERT, SELECT, COMMIT; the pool's ROLLBACK on return costs none.
        assert hops.count == 1 + 2 + 1
    finally:
        await db.dispose()

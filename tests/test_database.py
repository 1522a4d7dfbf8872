"""The database layer on SQLite and PostgreSQL: Alembic against the models, SQLite pragmas
and BEGIN IMMEDIATE under concurrency, transactions, UTC datetimes, upserts, 64-bit ids."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import StatementError

from bot.migrate import alembic_config, upgrade
from models import Base, Database, Group, GroupAdmin, User
from models.upsert import insert_ignore, upsert
from tests.conftest import open_database


def _diff(sync_conn) -> list:
    context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def _version(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        return list((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())


# --------------------------------------------------------------------------- Alembic


async def test_migrations_match_the_models(database_url: str) -> None:
    db = await open_database(database_url, create=False)
    try:
        assert await _tables(db) == set()
        await asyncio.to_thread(upgrade, database_url)

        tables = await _tables(db)
        assert set(Base.metadata.tables) | {"alembic_version"} == tables
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(_diff)
        assert diff == [], f"models and migrations differ: {diff}"

        head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
        assert await _version(db) == [head]
    finally:
        await db.dispose()


async def test_upgrading_twice_is_a_noop(database_url: str) -> None:
    db = await open_database(database_url, create=False)
    try:
        await asyncio.to_thread(upgrade, database_url)
        async with db.transaction() as session:
            session.add(User(id=1, first_name="kept"))
        before = await _version(db)

        await asyncio.to_thread(upgrade, database_url)

        assert await _version(db) == before
        async with db.read() as session:
            assert (await session.get(User, 1)).first_name == "kept"
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await db.dispose()


# --------------------------------------------------------------------------- SQLite specifics


async def test_sqlite_pragmas_on_fresh_connections(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'sub' / 'p.db'}")
    try:
        for _ in range(2):  # the first connection and one opened after the pool is emptied
            async with db.engine.connect() as conn:
                journal = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
                busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
                fks = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
            assert (journal.lower(), busy, fks) == ("wal", 30000, 1)
            await db.engine.dispose()
        assert (tmp_path / "sub" / "p.db").exists()  # the missing directory was created
    finally:
        await db.dispose()


async def test_sqlite_foreign_keys_are_enforced(tmp_path: Path) -> None:
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'fk.db'}")
    try:
        with pytest.raises(Exception, match="FOREIGN KEY"):
            async with db.transaction() as session:
                session.add(GroupAdmin(group_id=999, user_id=1, status="creator"))
    finally:
        await db.dispose()


async def _counter_table(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE test_counter (id INTEGER PRIMARY KEY, n INTEGER)"))
        await conn.execute(text("INSERT INTO test_counter (id, n) VALUES (1, 0)"))


async def test_concurrent_read_then_write_across_two_databases(database_url: str) -> None:
    """Two Database objects on one database behave like two processes. On SQLite each
    transaction reads the counter and then writes it: only BEGIN IMMEDIATE makes this safe
    (a deferred BEGIN fails with "database is locked" or loses updates)."""
    first = await open_database(database_url)
    second = Database(database_url)
    per_db = 50
    try:
        await _counter_table(first)
        sqlite = first.is_sqlite

        async def bump(db: Database) -> None:
            async with db.transaction() as session:
                if sqlite:
                    n = await session.scalar(text("SELECT n FROM test_counter WHERE id = 1"))
                    await asyncio.sleep(0)  # let the other writers run in between
                    await session.execute(
                        text("UPDATE test_counter SET n = :n WHERE id = 1"), {"n": n + 1}
                    )
                else:
                    await session.execute(text("UPDATE test_counter SET n = n + 1 WHERE id = 1"))

        tasks = [bump(db) for _ in range(per_db) for db in (first, second)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert errors == [], errors[:3]

        async with first.read() as session:
            total = await session.scalar(text("SELECT n FROM test_counter WHERE id = 1"))
        assert total == 2 * per_db
    finally:
        await second.dispose()
        await first.dispose()


async def test_sqlite_writer_waits_for_another_connection(tmp_path: Path) -> None:
    """A write transaction opened while another connection holds the write lock waits
    (busy_timeout) instead of failing, and then sees the committed row."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    first = await open_database(url)
    second = Database(url)
    try:
        started = asyncio.Event()
        release = asyncio.Event()

        async def holder() -> None:
            async with first.transaction() as session:
                session.add(User(id=1, first_name="first"))
                await session.flush()
                started.set()
                await release.wait()

        async def waiter() -> str:
            await started.wait()
            async with second.transaction() as session:
                user = await session.get(User, 1)
                user.first_name = "second"
                return "done"

        hold = asyncio.create_task(holder())
        wait = asyncio.create_task(waiter())
        await started.wait()
        await asyncio.sleep(0.3)
        assert not wait.done()  # blocked behind the first writer
        release.set()
        assert await asyncio.wait_for(wait, 10) == "done"
        await hold
        async with first.read() as session:
            assert (await session.get(User, 1)).first_name == "second"
    finally:
        await second.dispose()
        await first.dispose()


# --------------------------------------------------------------------------- transactions


async def _names(db: Database) -> set[str]:
    """Committed users, seen from a separate connection."""
    async with db.engine.connect() as conn:
        return set((await conn.execute(select(User.first_name))).scalars())


async def test_transaction_commits_on_success(db: Database) -> None:
    async with db.transaction() as session:
        session.add(User(id=1, first_name="a"))
    assert await _names(db) == {"a"}


async def test_transaction_rolls_back_on_exception(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            session.add(User(id=1, first_name="a"))
            await session.flush()
            raise RuntimeError("boom")
    assert await _names(db) == set()
    # The database is usable afterwards (lock released, no transaction left open).
    async with db.transaction() as session:
        session.add(User(id=2, first_name="b"))
    assert await _names(db) == {"b"}


async def test_nested_transaction_joins_the_outer_one(db: Database) -> None:
    async with db.transaction() as outer:
        outer.add(User(id=1, first_name="outer"))
        async with db.transaction() as inner:
            assert inner is outer
            inner.add(User(id=2, first_name="inner"))
        await outer.flush()
        assert await _names(db) == set()  # the inner block did not commit on its own
    assert await _names(db) == {"outer", "inner"}


async def test_exception_in_outer_rolls_back_the_inner_work(db: Database) -> None:
    with pytest.raises(ValueError):
        async with db.transaction() as outer:
            outer.add(User(id=1, first_name="outer"))
            async with db.transaction() as inner:
                inner.add(User(id=2, first_name="inner"))
            raise ValueError("late failure")
    assert await _names(db) == set()


async def test_read_inside_a_transaction_sees_its_uncommitted_rows(db: Database) -> None:
    async with db.transaction() as session:
        session.add(User(id=5, first_name="pending"))
        await session.flush()
        async with db.read() as reader:
            assert reader is session
            assert (await reader.get(User, 5)).first_name == "pending"
        assert await _names(db) == set()


async def test_read_outside_a_transaction_is_its_own_session(db: Database) -> None:
    async with db.transaction() as session:
        session.add(User(id=6, first_name="x"))
    async with db.read() as reader:
        assert (await reader.get(User, 6)).first_name == "x"
    # after the transaction ends, no session is left as "current"
    async with db.read() as a, db.read() as b:
        assert a is not b


async def test_sequential_transactions_in_concurrent_tasks_are_independent(db: Database) -> None:
    async def add(i: int) -> None:
        async with db.transaction() as session:
            session.add(User(id=100 + i, first_name=f"u{i}"))
            if i % 2:
                await session.flush()
                raise LookupError(i)

    results = await asyncio.gather(*(add(i) for i in range(10)), return_exceptions=True)
    assert sum(isinstance(r, LookupError) for r in results) == 5
    assert await _names(db) == {f"u{i}" for i in range(0, 10, 2)}


# --------------------------------------------------------------------------- UTCDateTime


async def test_aware_datetime_is_stored_and_returned_in_utc(db: Database) -> None:
    shanghai = datetime(2024, 3, 1, 8, 30, 15, 123456, tzinfo=ZoneInfo("Asia/Shanghai"))
    async with db.transaction() as session:
        session.add(User(id=1, first_name="t", created_at=shanghai, updated_at=shanghai))
    async with db.read() as session:
        user = await session.get(User, 1)
        assert user.created_at == shanghai  # the same instant
        assert user.created_at.tzinfo is not None
        assert user.created_at.utcoffset() == timedelta(0)
        assert user.created_at.tzinfo == UTC
        assert user.created_at.replace(tzinfo=None) == datetime(2024, 3, 1, 0, 30, 15, 123456)

        # Comparisons in SQL work with aware values in any timezone.
        new_york = shanghai.astimezone(ZoneInfo("America/New_York"))
        found = await session.scalar(select(User.id).where(User.created_at == new_york))
        assert found == 1
        later = await session.scalar(
            select(func.count()).where(User.created_at > new_york - timedelta(seconds=1))
        )
        assert later == 1


async def test_server_default_timestamp_comes_back_aware(db: Database) -> None:
    async with db.transaction() as session:
        session.add(User(id=2, first_name="d"))
    async with db.read() as session:
        created = (await session.get(User, 2)).created_at
    assert created.tzinfo is not None and created.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=5)


async def test_naive_datetime_is_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with db.transaction() as session:
            session.add(User(id=3, first_name="n", created_at=datetime(2024, 1, 1, 12, 0)))
            await session.flush()
    assert await _names(db) == set()


# --------------------------------------------------------------------------- upsert


async def test_insert_ignore(db: Database) -> None:
    async with db.transaction() as session:
        values = {"id": 10, "first_name": "first", "is_bot": False, "started": False}
        assert await insert_ignore(session, User.__table__, values, ["id"]) is True
        again = {**values, "first_name": "second"}
        assert await insert_ignore(session, User.__table__, again, ["id"]) is False
    async with db.read() as session:
        assert (await session.get(User, 10)).first_name == "first"


async def test_insert_ignore_on_a_unique_column(db: Database) -> None:
    row = {
        "chat_id": -100123,
        "title": "g",
        "type": "supergroup",
        "timezone": "UTC",
        "currency": "CNY",
        "language": "en",
        "is_active": True,
    }
    async with db.transaction() as session:
        assert await insert_ignore(session, Group.__table__, row, ["chat_id"]) is True
        assert await insert_ignore(session, Group.__table__, row, ["chat_id"]) is False
        assert await session.scalar(select(func.count()).select_from(Group)) == 1


async def test_upsert_updates_only_listed_columns(db: Database) -> None:
    base = {"id": 11, "is_bot": False, "started": False}
    async with db.transaction() as session:
        await upsert(
            session,
            User.__table__,
            {**base, "first_name": "A", "username": "a"},
            ["id"],
            ["first_name"],
        )
        await upsert(
            session,
            User.__table__,
            {**base, "first_name": "B", "username": "b"},
            ["id"],
            ["first_name"],
        )
        await upsert(
            session, User.__table__, {**base, "first_name": "C", "username": "c"}, ["id"], []
        )
    async with db.read() as session:
        user = await session.get(User, 11)
        assert (user.first_name, user.username) == ("B", "a")
        assert await session.scalar(select(func.count()).select_from(User)) == 1


async def test_upsert_on_composite_key(db: Database) -> None:
    async with db.transaction() as session:
        group = Group(chat_id=-1, title="g", timezone="UTC", currency="CNY", language="en")
        session.add(group)
        await session.flush()
        for status in ("administrator", "creator"):
            await upsert(
                session,
                GroupAdmin.__table__,
                {"group_id": group.id, "user_id": 5, "status": status, "can_invite_users": True},
                ["group_id", "user_id"],
                ["status"],
            )
        rows = (await session.execute(select(GroupAdmin.user_id, GroupAdmin.status))).all()
    assert [tuple(r) for r in rows] == [(5, "creator")]


# --------------------------------------------------------------------------- 64-bit ids


async def test_telegram_ids_beyond_32_bits(db: Database) -> None:
    user_id, chat_id = 7_000_000_000, -1009876543210
    async with db.transaction() as session:
        session.add(User(id=user_id, first_name="big"))
        group = Group(
            chat_id=chat_id,
            title="big",
            timezone="UTC",
            currency="CNY",
            language="en",
            added_by=user_id,
        )
        session.add(group)
        await session.flush()
        session.add(GroupAdmin(group_id=group.id, user_id=user_id, status="creator"))
    async with db.read() as session:
        assert (await session.get(User, user_id)).id == user_id
        g = await session.scalar(select(Group).where(Group.chat_id == chat_id))
        assert g is not None and g.chat_id == chat_id and g.added_by == user_id
        admin = await session.scalar(select(GroupAdmin).where(GroupAdmin.user_id == user_id))
        assert admin is not None and admin.group_id == g.id
        assert await session.scalar(select(User.id).where(User.id > 2**32)) == user_id

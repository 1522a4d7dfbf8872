"""`write-path`: Join taps one at a time through the full Dispatcher against the driver's floor.

N members (distinct) tap Join +1 on a group deal post with enough stock, one update after the
other, each through bot.runner.process (the real Dispatcher: admission gate, transaction
middleware, handler, order action, effects). In the same run the floor issues the same
writes through the database driver itself, one transaction per tap, for N other members on
a second deal: on SQLite the `sqlite3` module on the same file (BEGIN IMMEDIATE, the update
id, the user upsert, the deal's conditional counter UPDATE, the order INSERT, COMMIT); on
PostgreSQL `asyncpg` on the same database, the same statements.

Prints tap_ms and floor_ms (mean per tap; tap_cpu_ms: the process's CPU time per tap, both
threads, less sensitive to a busy machine than the wall clock), tap_vs_floor (target ≤ 5)
and what a SQLAlchemy `before_cursor_execute` listener (every statement sent to the driver)
and the engine's `commit` and `rollback` events count during the taps, divided by N:

- statements_per_join (target ≤ 6): the SQL statements (the update id, the user, the reads
  and writes of the join) plus the COMMIT;
- round_trips_per_join: everything, transaction control included (BEGIN, SAVEPOINT,
  RELEASE, a ROLLBACK when a read session is given back to the pool).

- hops_per_join (SQLite): hand-offs to aiosqlite's worker thread (its `_execute`: cursor,
  execute, fetch, close, commit, rollback each one) during the taps, the post refresher's
  background reads included.

`statements` lists the statements of the first tap in order (their first words; the first
tap also reads the group's language and makes the admission gate's first shared read).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta
from typing import Any

from aiogram.methods import AnswerCallbackQuery
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.common import (
    ErrorCounter,
    StatementCounter,
    add_groups,
    create_deal,
    group_chat_id,
    make_app,
    member_id,
    mount,
)
from bot.posts import publish
from bot.runner import process
from handlers.callbacks import DealCB
from models import Deal, Order
from services.timezones import utcnow
from tests.builders import Updates, group, person

TARGET_RATIO = 5.0
TARGET_STATEMENTS = 6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--taps", type=int, default=500)


class HopCounter:
    """Counts aiosqlite's hand-offs to its worker thread while installed."""

    def __init__(self) -> None:
        self.count = 0
        self.on = False

    def __enter__(self) -> HopCounter:
        import aiosqlite.core

        self.original = original = aiosqlite.core.Connection._execute
        counter = self

        async def counted(conn, fn, *args, **kwargs):
            if counter.on:
                counter.count += 1
            return await original(conn, fn, *args, **kwargs)

        aiosqlite.core.Connection._execute = counted
        return self

    def __exit__(self, *exc: object) -> None:
        import aiosqlite.core

        aiosqlite.core.Connection._execute = self.original


def floor_rows(deal_id: int, members: list[int]) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {
            "update_id": 10_000_000 + i,
            "user_id": user_id,
            "first_name": f"F{i}",
            "deal_id": deal_id,
            "pickup": f"FL{i:06d}",
            "now": now,
            "closes": now + timedelta(hours=5),
        }
        for i, user_id in enumerate(members)
    ]


SQLITE_FLOOR = [
    "INSERT INTO processed_updates (bot_id, update_id, processed_at) VALUES (1, :update_id, :now)"
    " ON CONFLICT (bot_id, update_id) DO NOTHING",
    "INSERT INTO users (id, first_name, is_bot, started, leaderboard_hidden, created_at,"
    " updated_at) VALUES (:user_id, :first_name, 0, 0, 0, :now, :now) ON CONFLICT (id) DO"
    " UPDATE SET first_name = excluded.first_name, updated_at = excluded.updated_at"
    " RETURNING id",
    "UPDATE deals SET total_qty = total_qty + 1, participants = participants + 1,"
    " stock_left = CASE WHEN stock_left IS NULL THEN NULL ELSE stock_left - 1 END,"
    " updated_at = :now WHERE id = :deal_id AND status = 'open' AND opens_at <= :now"
    " AND closes_at > :now AND (stock_left IS NULL OR stock_left >= 1)"
    " RETURNING total_qty, participants, stock_left",
    "INSERT INTO orders (deal_id, user_id, quantity, status, pickup_code, fulfilment, via,"
    " discount, created_at, updated_at) VALUES (:deal_id, :user_id, 1, 'active', :pickup,"
    " 'none', 'button', 0, :now, :now) RETURNING id",
]


def sqlite_floor(path: str, rows: list[dict[str, Any]]) -> float:
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    try:
        started = time.perf_counter()
        for row in rows:
            params = {**row, "now": row["now"].isoformat(sep=" ")}
            conn.execute("BEGIN IMMEDIATE")
            for sql in SQLITE_FLOOR:
                found = conn.execute(sql, params).fetchall()
                assert "RETURNING" not in sql or found, sql
            conn.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        conn.close()


def _numbered(sql: str) -> tuple[str, list[str]]:
    """:name placeholders → $1, $2 … (asyncpg) and the order of the names."""
    import re

    names: list[str] = []

    def sub(match) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return re.sub(r":([a-z_]+)", sub, sql), names


async def postgres_floor(url: str, rows: list[dict[str, Any]]) -> float:
    import asyncpg

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    statements = [
        _numbered(
            sql.replace(" 0, 0, 0,", " false, false, false,").replace("VALUES (1,", "VALUES (1,")
        )
        for sql in SQLITE_FLOOR
    ]
    try:
        started = time.perf_counter()
        for row in rows:
            async with conn.transaction():
                for sql, names in statements:
                    found = await conn.fetch(sql, *(row[n] for n in names))
                    assert "RETURNING" not in sql or found, sql
        return time.perf_counter() - started
    finally:
        await conn.close()


async def run(db_url: str, args: argparse.Namespace) -> dict:
    taps = args.taps
    app, api = make_app(db_url, f"{args.tmp}/data")
    try:
        [group_id] = await add_groups(app.db, 1)
        deal_id = await create_deal(app.db, [group_id], title="Tap deal", stock=taps * 2)
        floor_deal = await create_deal(app.db, [group_id], title="Floor deal", stock=taps * 2)
        assert await publish(app.bot, app.db, app.i18n, deal_id, sender=app.sender) == 1
        chat = group(group_chat_id(0), "Group 0")
        build = Updates(start=1)
        data = DealCB(action="join", deal_id=deal_id).pack()
        updates = mount(
            [build.callback(person(member_id(i)), data, chat=chat) for i in range(taps)],
            app.bot,
        )
        posts = app.dispatcher["posts"]
        await posts.flush()
        api.clear()
        with (
            ErrorCounter() as errors,
            StatementCounter(app.db.engine) as counter,
            HopCounter() as hops,
        ):
            hops.on = True
            started, cpu = time.perf_counter(), time.process_time()
            first: list[str] = []
            for n, update in enumerate(updates):
                await process(app, update)
                if n == 0:
                    first = list(counter.names)
            tap_seconds = time.perf_counter() - started
            tap_cpu = time.process_time() - cpu
            counter.on = hops.on = False
        answers = api.of(AnswerCallbackQuery)
        joined = sum((a.text or "").startswith("You're in") for a in answers)
        await posts.close(timeout=0)

        rows = floor_rows(floor_deal, [member_id(taps + i) for i in range(taps)])
        if app.db.is_sqlite:
            path = make_url(db_url).database
            floor_seconds = await asyncio.to_thread(sqlite_floor, path, rows)
        else:
            floor_seconds = await postgres_floor(db_url, rows)

        async with app.db.read() as session:
            active = await session.scalar(
                select(func.count())
                .select_from(Order)
                .where(Order.deal_id == deal_id, Order.status == "active")
            )
            deal = await session.get(Deal, deal_id)
            consistent = deal.total_qty == active == taps and deal.stock_left == taps
            floor_orders = await session.scalar(
                select(func.count()).select_from(Order).where(Order.deal_id == floor_deal)
            )
    finally:
        await app.close()

    trips = counter.round_trips / taps
    statements = counter.statements / taps
    tap_ms = tap_seconds / taps * 1000
    floor_ms = floor_seconds / taps * 1000
    ratio = tap_ms / floor_ms
    processed_ok = errors.count == 0 and joined == taps and consistent and floor_orders == taps
    return {
        "taps": taps,
        "joined": joined,
        "consistent": consistent,
        "errors": errors.count,
        "first_errors": errors.first,
        "tap_ms": round(tap_ms, 3),
        "tap_cpu_ms": round(tap_cpu / taps * 1000, 3),
        "floor_ms": round(floor_ms, 3),
        "tap_vs_floor": round(ratio, 2),
        "statements_per_join": round(statements, 2),
        "round_trips_per_join": round(trips, 2),
        "hops_per_join": round(hops.count / taps, 2) if app.db.is_sqlite else None,
        "statements": first,
        "processed_ok": processed_ok,
        "ok": processed_ok and ratio <= TARGET_RATIO and statements <= TARGET_STATEMENTS,
    }

"""Building one group's daily digest: a group with 100,000 members and 2,000,000
member-activity rows over 30 days (plus consistent group days, memberships, deals and orders)
in a fresh database; the time to build the digest of the last day (best and median of a few
runs). Target: under 1 s on SQLite and on PostgreSQL.

`python -m bench digest [--db sqlite|postgres]`; a much smaller run of the same scenario is
checked for correctness in tests/test_digest.py (`seed_scenario` + `check`).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from models import Base, Database, Group
from services import digest as digest_service
from services.digest import Period

TZ = "Asia/Shanghai"
END = date(2026, 11, 19)
BATCH = 50_000
ORDERS_PER_DEAL = 40


@dataclass
class Scenario:
    group_id: int
    members: int
    days: int
    per_day: int
    end: date
    activity_rows: int


def active_users(day_index: int, members: int, per_day: int) -> range:
    """The members active on day `day_index`: a sliding window, distinct within a day."""
    start = (day_index * 3331) % members
    return range(start, start + per_day)


def user_of(n: int, members: int) -> int:
    return 10_000_000 + n % members


def messages_of(uid: int, day_index: int) -> int:
    return (uid * 31 + day_index * 7) % 17


def orders_of(uid: int, day_index: int) -> int:
    return 1 if (uid + day_index) % 50 == 0 else 0


def local_noon_utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


async def _bulk(conn, table: str, columns: list[str], rows: list[tuple]) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(table, records=rows, columns=columns)
        return
    marks = ", ".join("?" for _ in columns)
    await conn.exec_driver_sql(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
        [tuple(_sqlite(v) for v in row) for row in rows],
    )


def _sqlite(value):
    """The text SQLAlchemy stores in SQLite for dates and (naive UTC) datetimes."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return value


async def seed_scenario(
    db: Database, *, members: int, days: int, per_day: int, end: date = END
) -> Scenario:
    """Seed one group; every figure derives from the functions above (see `check`)."""
    async with db.transaction() as s:
        group = Group(
            chat_id=-1009000000001,
            title="基准测试群 Bench",
            type="supergroup",
            timezone=TZ,
            currency="CNY",
            language="zh_Hans",
        )
        s.add(group)
        await s.flush()
        gid = group.id
    first = end - timedelta(days=days - 1)
    rows = 0
    async with db.engine.begin() as conn:
        batch: list[tuple] = []
        joined = [
            (gid, user_of(n, members), "member", local_noon_utc(first - timedelta(days=n % 90)))
            for n in range(members)
        ]
        for i in range(0, len(joined), BATCH):
            await _bulk(
                conn,
                "memberships",
                ["group_id", "user_id", "status", "joined_at"],
                joined[i : i + BATCH],
            )
        day_rows = []
        for d in range(days):
            day = first + timedelta(days=d)
            total = 0
            for n in active_users(d, members, per_day):
                uid = user_of(n, members)
                msgs = messages_of(uid, d)
                total += msgs
                batch.append((gid, day, uid, msgs, 0, orders_of(uid, d), local_noon_utc(day)))
                if len(batch) >= BATCH:
                    await _bulk(conn, "member_activity_days", ACTIVITY_COLUMNS, batch)
                    rows += len(batch)
                    batch = []
            day_rows.append((gid, day, total, 0, 0, per_day, 0, 0))
        await _bulk(conn, "member_activity_days", ACTIVITY_COLUMNS, batch)
        rows += len(batch)
        await _bulk(
            conn,
            "group_activity_days",
            [
                "group_id",
                "day",
                "messages",
                "joins",
                "leaves",
                "active_members",
                "signups",
                "orders",
            ],
            day_rows,
        )
        # One deal closed each day, ORDERS_PER_DEAL confirmed orders of 1-3 units.
        deals, posts, orders = [], [], []
        for d in range(days):
            day = first + timedelta(days=d)
            deal_id = 1_000 + d
            closed = local_noon_utc(day)
            deals.append(
                (
                    deal_id,
                    1,
                    f"Deal {d}",
                    "CNY",
                    1000,
                    "succeeded",
                    closed - timedelta(days=2),
                    closed,
                    closed,
                    "",
                    "[]",
                    "",
                    0,
                    0,
                )
            )
            posts.append((deal_id, gid))
            for k in range(ORDERS_PER_DEAL):
                uid = user_of(d * ORDERS_PER_DEAL + k, members)
                qty = 1 + k % 3
                orders.append(
                    (
                        deal_id,
                        uid,
                        gid,
                        qty,
                        "confirmed",
                        1000,
                        qty * 1000,
                        f"B{d}x{k}",
                        "none",
                        0,
                        closed,
                        closed,
                    )
                )
        await _bulk(
            conn,
            "deals",
            [
                "id",
                "owner_id",
                "title",
                "currency",
                "unit_price",
                "status",
                "opens_at",
                "closes_at",
                "closed_at",
                "description",
                "tiers",
                "pickup_note",
                "total_qty",
                "participants",
            ],
            deals,
        )
        await _bulk(conn, "deal_posts", ["deal_id", "group_id"], posts)
        await _bulk(
            conn,
            "orders",
            [
                "deal_id",
                "user_id",
                "group_id",
                "quantity",
                "status",
                "unit_price",
                "amount",
                "pickup_code",
                "fulfilment",
                "discount",
                "created_at",
                "updated_at",
            ],
            orders,
        )
        await conn.execute(text("ANALYZE"))
    return Scenario(gid, members, days, per_day, end, rows)


ACTIVITY_COLUMNS = ["group_id", "day", "user_id", "messages", "signups", "orders", "last_active_at"]


async def check(db: Database, sc: Scenario) -> None:
    """The digest of the last day against sums computed here from the generator."""
    last = sc.days - 1
    users = [user_of(n, sc.members) for n in active_users(last, sc.members, sc.per_day)]
    messages = sum(messages_of(u, last) for u in users)
    ranked = sorted(users, key=lambda u: (-messages_of(u, last), -orders_of(u, last), u))[:5]
    before = [
        sum(messages_of(user_of(n, sc.members), d) for n in active_users(d, sc.members, sc.per_day))
        for d in range(last - 7, last)
    ]
    units = sum(1 + k % 3 for k in range(ORDERS_PER_DEAL))
    async with db.read() as s:
        group = await s.get(Group, sc.group_id)
        d = await digest_service.build(s, group, Period(sc.end, sc.end), _now(sc))
    assert d.messages.value == messages, (d.messages, messages)
    assert d.messages.baseline == sum(before) / 7
    assert d.active.value == sc.per_day
    assert [t.user_id for t in d.top] == ranked
    assert d.orders.value == ORDERS_PER_DEAL and d.units.value == units
    assert d.revenue["CNY"].value == units * 1000
    assert d.buyers == ORDERS_PER_DEAL
    assert d.chart_messages[-1] == messages and len(d.chart_days) == 30


def _now(sc: Scenario) -> datetime:
    return datetime(sc.end.year, sc.end.month, sc.end.day, tzinfo=UTC) + timedelta(days=1, hours=2)


async def _fresh(db: Database) -> None:
    async with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await conn.run_sync(Base.metadata.create_all)


async def run(db_url: str, args) -> dict:
    members, per_day, days = 100_000, 66_667, 30
    db = Database(db_url)
    try:
        await _fresh(db)
        started = time.perf_counter()
        sc = await seed_scenario(db, members=members, days=days, per_day=per_day)
        seeded = time.perf_counter() - started
        await check(db, sc)  # warm-up, and the figures are right
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            async with db.read() as s:
                group = await s.get(Group, sc.group_id)
                await digest_service.build(s, group, Period(sc.end, sc.end), _now(sc))
            times.append(time.perf_counter() - t0)
        week = Period(sc.end - timedelta(days=6), sc.end)  # on demand: /digest 7d
        t0 = time.perf_counter()
        async with db.read() as s:
            group = await s.get(Group, sc.group_id)
            await digest_service.build(s, group, week, _now(sc))
        week_seconds = time.perf_counter() - t0
        return {
            "bench": "digest",
            "db": db.dialect,
            "members": members,
            "activity_rows": sc.activity_rows,
            "days": days,
            "digest_seconds": round(min(times), 4),
            "digest_seconds_median": round(statistics.median(times), 4),
            "digest_7d_seconds": round(week_seconds, 4),
            "seed_seconds": round(seeded, 1),
        }
    finally:
        await db.dispose()

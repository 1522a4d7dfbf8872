"""Activity counting (services/activity.py): the in-memory buffer and its flush into the
day tables, local days, concurrent flushes, failed flushes, orders at closing, and the
flush on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.factory import create_app
from bot.runner import serve
from models import Database, Group, GroupActivityDay, MemberActivityDay, Membership, User
from services import activity
from services.activity import ActivityBuffer, local_day_of_slot, slot_of
from services.people import Person
from tests.builders import Updates, group, person
from tests.fake_api import FakeTelegram

SH = "Asia/Shanghai"  # UTC+8, no DST


async def make_group(db: Database, chat_id: int, timezone: str = SH, title: str = "G") -> int:
    async with db.transaction() as s:
        g = Group(chat_id=chat_id, title=title, timezone=timezone, currency="CNY", language="en")
        s.add(g)
        await s.flush()
        return g.id


async def member_rows(db: Database, group_id: int) -> dict[tuple[date, int], tuple]:
    async with db.read() as s:
        rows = await s.scalars(
            select(MemberActivityDay).where(MemberActivityDay.group_id == group_id)
        )
        return {(r.day, r.user_id): (r.messages, r.signups, r.orders) for r in rows}


async def group_rows(db: Database, group_id: int) -> dict[date, dict]:
    async with db.read() as s:
        rows = await s.scalars(
            select(GroupActivityDay).where(GroupActivityDay.group_id == group_id)
        )
        return {
            r.day: {
                "messages": r.messages,
                "joins": r.joins,
                "leaves": r.leaves,
                "active": r.active_members,
                "signups": r.signups,
                "orders": r.orders,
            }
            for r in rows
        }


async def distinct_members(db: Database, group_id: int, day: date) -> int:
    async with db.read() as s:
        return await s.scalar(
            select(func.count()).where(
                MemberActivityDay.group_id == group_id, MemberActivityDay.day == day
            )
        )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


NOON = at("2024-05-10T04:00:00")  # 12:00 in Shanghai
DAY = date(2024, 5, 10)


# ---------------------------------------------------------------- the buffer


def test_slots_fall_on_one_local_day_in_every_offset() -> None:
    # Kathmandu is UTC+5:45: 18:15 UTC is 00:00 the next day there.
    slot = slot_of(at("2024-05-10T18:15:00"))
    assert local_day_of_slot(slot, "Asia/Kathmandu") == date(2024, 5, 11)
    assert local_day_of_slot(slot - 1, "Asia/Kathmandu") == date(2024, 5, 10)
    assert local_day_of_slot(slot, "UTC") == date(2024, 5, 10)


async def test_flush_merges_counts_and_counts_distinct_active_members(db: Database) -> None:
    gid = await make_group(db, -1001)
    other = await make_group(db, -1002, timezone="UTC")
    buf = ActivityBuffer()
    alice = Person(1, "Alice")
    for i in range(3):
        buf.record_message(-1001, 1, NOON + timedelta(minutes=i * 20), person=alice)
    buf.record_message(-1001, 2, NOON, person=Person(2, "Bob"))
    buf.record_signup(-1001, 2, NOON + timedelta(minutes=1))
    buf.record_join(-1001, 3, NOON)
    buf.record_join(-1001, 4, NOON)
    buf.record_leave(-1001, 5, NOON)
    buf.record_message(-1002, 1, NOON, person=alice)
    buf.record_message(-9999, 1, NOON, person=alice)  # not a registered group
    buf.record_message(-1001, 7, NOON, person=Person(7, "Bot", is_bot=True))  # a bot
    assert buf.pending > 0

    result = await buf.flush_to(db)
    assert buf.pending == 0
    assert result.dropped == 1
    assert await member_rows(db, gid) == {(DAY, 1): (3, 0, 0), (DAY, 2): (1, 1, 0)}
    assert await group_rows(db, gid) == {
        DAY: {"messages": 4, "joins": 2, "leaves": 1, "active": 2, "signups": 1, "orders": 0}
    }
    assert (await group_rows(db, other))[DAY]["messages"] == 1

    # a second flush adds to the same rows; a new member raises active_members by one
    buf.record_message(-1001, 1, NOON + timedelta(hours=1), person=alice)
    buf.record_message(-1001, 6, NOON + timedelta(hours=1), person=Person(6, "Dan"))
    await buf.flush_to(db)
    rows = await member_rows(db, gid)
    assert rows[(DAY, 1)] == (4, 0, 0) and rows[(DAY, 6)] == (1, 0, 0)
    day = (await group_rows(db, gid))[DAY]
    assert day["messages"] == 6 and day["active"] == 3 == await distinct_members(db, gid, DAY)

    # last active time on the member's day and on the membership; names kept for /top
    async with db.read() as s:
        m = await s.get(Membership, (gid, 1))
        row = await s.get(MemberActivityDay, (gid, DAY, 1))
        names = {u.id: u.first_name for u in await s.scalars(select(User))}
    assert m.last_active_at == NOON + timedelta(hours=1) and m.status == "member"
    assert row.last_active_at == NOON + timedelta(hours=1)
    assert names == {1: "Alice", 2: "Bob", 6: "Dan"}  # no bot, nobody of unknown chats only


async def test_an_older_event_never_moves_last_active_back(db: Database) -> None:
    gid = await make_group(db, -1001)
    buf = ActivityBuffer()
    buf.record_message(-1001, 1, NOON)
    await buf.flush_to(db)
    buf.record_message(-1001, 1, NOON - timedelta(hours=2))  # a late, replayed message
    await buf.flush_to(db)
    async with db.read() as s:
        assert (await s.get(Membership, (gid, 1))).last_active_at == NOON
        assert (await s.get(MemberActivityDay, (gid, DAY, 1))).last_active_at == NOON
    assert (await member_rows(db, gid))[(DAY, 1)] == (2, 0, 0)


async def test_local_day_boundary_in_shanghai(db: Database) -> None:
    sh = await make_group(db, -1001, timezone=SH)
    utc = await make_group(db, -1002, timezone="UTC")
    buf = ActivityBuffer()
    before = at("2024-05-10T15:50:00")  # 23:50 on the 10th in Shanghai
    after = at("2024-05-10T16:10:00")  # 00:10 on the 11th in Shanghai
    for chat in (-1001, -1002):
        buf.record_message(chat, 1, before)
        buf.record_message(chat, 1, after)
        buf.record_message(chat, 2, after)
    await buf.flush_to(db)

    assert await member_rows(db, sh) == {
        (date(2024, 5, 10), 1): (1, 0, 0),
        (date(2024, 5, 11), 1): (1, 0, 0),
        (date(2024, 5, 11), 2): (1, 0, 0),
    }
    days = await group_rows(db, sh)
    assert days[date(2024, 5, 10)]["active"] == 1 and days[date(2024, 5, 11)]["active"] == 2
    # the same instants are one day in UTC
    assert await member_rows(db, utc) == {
        (date(2024, 5, 10), 1): (2, 0, 0),
        (date(2024, 5, 10), 2): (1, 0, 0),
    }


async def test_a_failed_flush_loses_nothing_and_doubles_nothing(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    gid = await make_group(db, -1001)
    buf = ActivityBuffer()
    buf.record_message(-1001, 1, NOON)
    buf.record_signup(-1001, 1, NOON)
    buf.record_join(-1001, 1, NOON)

    real_recount = activity._recount

    async def broken(session, keys):  # after the counts were written: they must roll back
        await real_recount(session, keys)
        raise RuntimeError("database went away")

    monkeypatch.setattr(activity, "_recount", broken)
    with pytest.raises(RuntimeError):
        await buf.flush_to(db)
    assert buf.pending == 2
    assert await member_rows(db, gid) == {} and await group_rows(db, gid) == {}

    buf.record_message(-1001, 1, NOON + timedelta(minutes=1))  # counted meanwhile
    monkeypatch.setattr(activity, "_recount", real_recount)
    await buf.flush_to(db)
    assert await member_rows(db, gid) == {(DAY, 1): (2, 1, 0)}
    day = (await group_rows(db, gid))[DAY]
    assert (day["messages"], day["signups"], day["joins"], day["active"]) == (2, 1, 1, 1)


async def test_flush_in_the_callers_transaction_puts_counts_back_on_error(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    gid = await make_group(db, -1001)
    buf = ActivityBuffer()
    buf.record_message(-1001, 1, NOON)

    async def broken(*_args, **_kwargs):
        raise RuntimeError("statement failed")

    monkeypatch.setattr(activity, "_write", broken)
    with pytest.raises(RuntimeError):
        async with db.transaction() as s:
            await buf.flush(s)
    assert buf.pending == 1
    monkeypatch.undo()
    async with db.transaction() as s:
        result = await buf.flush(s)
    assert (result.members, result.groups) == (1, 1)
    assert (await member_rows(db, gid))[(DAY, 1)] == (1, 0, 0)


async def test_two_instances_flushing_at_once_add_up(db: Database, database_url: str) -> None:
    """Two buffers (two instances, each with its own engine) flush the same group-days at
    the same time, many rounds: no count is lost or doubled, active_members stays exact."""
    gid = await make_group(db, -1001)
    second = Database(database_url)
    try:
        buffers = [ActivityBuffer(), ActivityBuffer()]
        dbs = [db, second]
        rounds, expected = 6, {}
        for r in range(rounds):
            for i, buf in enumerate(buffers):
                for user in range(1, 9):
                    if (user + r + i) % 3:  # overlapping and distinct members
                        buf.record_message(-1001, user, NOON + timedelta(minutes=r))
                        expected[user] = expected.get(user, 0) + 1
                buf.record_join(-1001, 100 + r, NOON)
            await asyncio.gather(*(b.flush_to(d) for b, d in zip(buffers, dbs, strict=True)))
        rows = await member_rows(db, gid)
        assert {uid: c[0] for (_d, uid), c in rows.items()} == expected
        day = (await group_rows(db, gid))[DAY]
        assert day["messages"] == sum(expected.values())
        assert day["joins"] == 2 * rounds
        assert day["active"] == len(expected) == await distinct_members(db, gid, DAY)
    finally:
        await second.dispose()


# ---------------------------------------------------------------- orders at closing


async def test_count_orders_by_the_local_day_of_the_closing(db: Database) -> None:
    from models import Order

    gid = await make_group(db, -1001)
    closing = at("2024-05-10T16:30:00")  # 00:30 on the 11th in Shanghai
    orders = [
        Order(deal_id=1, user_id=1, quantity=2, status="confirmed", group_id=gid),
        Order(deal_id=1, user_id=2, quantity=1, status="confirmed", group_id=gid),
        Order(deal_id=1, user_id=3, quantity=1, status="cancelled", group_id=gid),
        Order(deal_id=1, user_id=4, quantity=1, status="confirmed", group_id=None),
    ]
    async with db.transaction() as s:
        assert await activity.count_orders(s, orders, closing) == 2
    the_11th = date(2024, 5, 11)
    assert await member_rows(db, gid) == {(the_11th, 1): (0, 0, 1), (the_11th, 2): (0, 0, 1)}
    day = (await group_rows(db, gid))[the_11th]
    assert day["orders"] == 2 and day["active"] == 2 and day["messages"] == 0
    async with db.read() as s:  # a confirmation is not the member's own activity
        assert await s.get(Membership, (gid, 1)) is None


# ---------------------------------------------------------------- shutdown


async def test_counters_are_flushed_when_the_app_closes(settings, db: Database) -> None:
    api = FakeTelegram()
    app = create_app(settings, session=api, db=db)
    gid = await make_group(db, -1001000000777)
    chat = group(-1001000000777, "G")
    updates = Updates()
    for i in range(3):
        await app.dispatcher.feed_update(app.bot, updates.message(chat, person(11), f"hi {i}"))
    assert await member_rows(db, gid) == {}  # still in memory
    await app.close()  # disposes the engine; a new connection is opened below
    [(day, uid)] = (await member_rows(db, gid)).keys()
    assert uid == 11 and (await member_rows(db, gid))[(day, uid)] == (3, 0, 0)


async def test_counters_are_flushed_when_the_runner_stops(settings, db: Database) -> None:
    """serve() flushes every ACTIVITY_FLUSH_SECONDS and once more when it stops."""
    settings = settings.model_copy(update={"activity_flush_seconds": 3600.0})
    api = FakeTelegram()
    app = create_app(settings, session=api, db=db)
    gid = await make_group(db, -1001000000778)
    chat = group(-1001000000778, "G")
    updates = Updates()
    api.push_update(*(updates.message(chat, person(12), f"hi {i}") for i in range(4)))
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, stop))
    for _ in range(200):
        if app.activity.pending:
            break
        await asyncio.sleep(0.02)
    assert await member_rows(db, gid) == {}  # the hour-long interval has not passed
    stop.set()
    await asyncio.wait_for(task, 10)
    assert list((await member_rows(db, gid)).values()) == [(4, 0, 0)]
    await app.close()


async def test_the_flush_loop_writes_while_running(settings, db: Database) -> None:
    settings = settings.model_copy(update={"activity_flush_seconds": 0.05})
    api = FakeTelegram()
    app = create_app(settings, session=api, db=db)
    gid = await make_group(db, -1001000000779)
    chat = group(-1001000000779, "G")
    api.push_update(Updates().message(chat, person(13), "hello"))
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, stop))
    try:
        for _ in range(250):
            if await member_rows(db, gid):
                break
            await asyncio.sleep(0.02)
        assert list((await member_rows(db, gid)).values()) == [(1, 0, 0)]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await app.close()


async def test_a_flush_waiting_for_the_database_does_not_write_back_a_forgotten_person(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/forgetme commits while a flush that already took its snapshot waits for the write
    lock: the forgotten person's counts are dropped, the others are written."""
    gid = await make_group(db, -1001)
    buf = ActivityBuffer()
    buf.record_message(-1001, 1, NOON)
    buf.record_message(-1001, 2, NOON)
    gate = asyncio.Event()
    real_transaction = Database.transaction

    @contextlib.asynccontextmanager
    async def waiting(self):  # the write lock is held by the /forgetme transaction
        await gate.wait()
        async with real_transaction(self) as session:
            yield session

    monkeypatch.setattr(Database, "transaction", waiting)
    flush = asyncio.ensure_future(buf.flush_to(db))
    await asyncio.sleep(0.01)
    assert not flush.done()
    buf.forget_user(1, at=NOON + timedelta(seconds=1))  # /forgetme committed meanwhile
    gate.set()
    await flush
    assert await member_rows(db, gid) == {(DAY, 2): (1, 0, 0)}
    monkeypatch.setattr(Database, "transaction", real_transaction)
    buf.record_message(-1001, 1, NOON + timedelta(minutes=1))  # writes again later: counted
    await buf.flush_to(db)
    assert await member_rows(db, gid) == {(DAY, 2): (1, 0, 0), (DAY, 1): (1, 0, 0)}

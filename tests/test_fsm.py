"""Conversation state: SQL storage (private chats only, transactional, survives restarts,
free for group chatter) and Redis storage with cross-instance event isolation."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiogram import methods as m
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import event, func, select

from bot.factory import App, create_app
from bot.runner import process
from bot.storage import SQLStorage
from handlers.callbacks import SettingsCB
from handlers.settings import SettingsForm
from models import Database, FsmState, Group, MemberActivityDay
from tests.builders import Updates, group, person, private
from tests.conftest import IN_CI, make_settings
from tests.fake_api import BOT_ID, FakeTelegram

TIMEZONE_STATE = "SettingsForm:timezone"


def key(chat_id: int, user_id: int, *, bot_id: int = BOT_ID, **extra) -> StorageKey:
    return StorageKey(bot_id=bot_id, chat_id=chat_id, user_id=user_id, **extra)


@contextmanager
def sql_statements(db: Database) -> Iterator[list[str]]:
    """Every statement the engine sends to the database while the block runs."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def fsm_rows(db: Database) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(FsmState))


# ---------------------------------------------------------------------------- SQLStorage
async def test_round_trip_in_private_chat(db: Database) -> None:
    storage = SQLStorage(db)
    alice = key(501, 501)
    assert await storage.get_state(alice) is None
    assert await storage.get_data(alice) == {}

    await storage.set_state(alice, SettingsForm.timezone)
    assert await storage.get_state(alice) == TIMEZONE_STATE
    assert await storage.get_data(alice) == {}

    await storage.set_data(alice, {"group_id": 3, "title": "小王的团 <b>"})
    assert await storage.get_state(alice) == TIMEZONE_STATE  # data did not wipe the state
    assert await storage.get_data(alice) == {"group_id": 3, "title": "小王的团 <b>"}

    merged = await storage.update_data(alice, {"step": 2, "group_id": 4})
    assert merged == {"group_id": 4, "title": "小王的团 <b>", "step": 2}
    assert await storage.get_data(alice) == merged

    await storage.set_state(alice, "SettingsForm:currency")
    assert await storage.get_state(alice) == "SettingsForm:currency"
    assert await storage.get_data(alice) == merged  # state did not wipe the data
    assert await fsm_rows(db) == 1

    # other users, and the same user with another bot, are separate conversations
    assert await storage.get_state(key(502, 502)) is None
    assert await storage.get_state(key(501, 501, bot_id=BOT_ID + 1)) is None
    await storage.set_state(key(502, 502), "Other:state")
    assert await storage.get_state(alice) == "SettingsForm:currency"
    assert await fsm_rows(db) == 2


@pytest.mark.parametrize("state_first", [True, False])
async def test_clearing_deletes_the_row(db: Database, state_first: bool) -> None:
    storage = SQLStorage(db)
    alice, bob = key(511, 511), key(512, 512)
    for k in (alice, bob):
        await storage.set_state(k, TIMEZONE_STATE)
        await storage.set_data(k, {"group_id": 1})
    assert await fsm_rows(db) == 2

    if state_first:
        await storage.set_state(alice, None)
        assert await fsm_rows(db) == 2  # the data is still there
        assert await storage.get_data(alice) == {"group_id": 1}
        await storage.set_data(alice, {})
    else:
        await storage.set_data(alice, {})
        assert await fsm_rows(db) == 2  # the state is still there
        assert await storage.get_state(alice) == TIMEZONE_STATE
        await storage.set_state(alice, None)
    assert await fsm_rows(db) == 1
    assert await storage.get_state(alice) is None
    assert await storage.get_data(alice) == {}
    assert await storage.get_state(bob) == TIMEZONE_STATE  # untouched

    await storage.set_state(bob, None)
    await storage.set_data(bob, {})
    assert await fsm_rows(db) == 0
    await storage.set_state(bob, None)  # clearing what is not there is fine
    await storage.set_data(bob, {})
    assert await fsm_rows(db) == 0


async def test_state_survives_a_restart(db: Database, database_url: str) -> None:
    await SQLStorage(db).set_state(key(521, 521), TIMEZONE_STATE)
    await SQLStorage(db).set_data(key(521, 521), {"group_id": 9})
    await db.dispose()

    restarted = Database(database_url)
    try:
        storage = SQLStorage(restarted)
        assert await storage.get_state(key(521, 521)) == TIMEZONE_STATE
        assert await storage.get_data(key(521, 521)) == {"group_id": 9}
    finally:
        await restarted.dispose()


async def test_group_keys_cost_no_query_and_hold_no_state(db: Database) -> None:
    storage = SQLStorage(db)
    in_groups = [key(-1001000000531, 531), key(-531, 531), key(-1001000000531, 532)]
    with sql_statements(db) as seen:
        for k in in_groups:
            assert await storage.get_state(k) is None
            assert await storage.get_data(k) == {}
            await storage.set_state(k, None)
            await storage.set_data(k, {})
            with pytest.raises(ValueError, match="private"):
                await storage.set_state(k, "X")
            with pytest.raises(ValueError, match="private"):
                await storage.set_state(k, SettingsForm.timezone)
            with pytest.raises(ValueError, match="private"):
                await storage.set_data(k, {"a": 1})
    assert seen == []

    with sql_statements(db) as seen:  # the counter does see private reads
        assert await storage.get_state(key(531, 531)) is None
    assert len(seen) >= 1
    assert await fsm_rows(db) == 0


async def test_writes_join_the_update_transaction(db: Database, database_url: str) -> None:
    storage = SQLStorage(db)
    alice = key(541, 541)

    async def failing_update() -> None:
        async with db.transaction():
            await storage.set_state(alice, TIMEZONE_STATE)
            await storage.set_data(alice, {"group_id": 5})
            assert await storage.get_state(alice) == TIMEZONE_STATE  # seen inside
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError):
        await asyncio.wait_for(failing_update(), 5)
    assert await storage.get_state(alice) is None
    assert await storage.get_data(alice) == {}
    assert await fsm_rows(db) == 0

    observer = Database(database_url)  # another process looking at the database
    try:

        async def committing_update() -> None:
            async with db.transaction():
                await storage.set_state(alice, TIMEZONE_STATE)
                # (a plain connection: read() would join this task's transaction)
                async with observer.engine.connect() as conn:
                    assert await conn.scalar(select(func.count()).select_from(FsmState)) == 0

        await asyncio.wait_for(committing_update(), 5)
        async with observer.read() as session:
            row = await session.get(FsmState, storage.keys.build(alice))
        assert row is not None and row.state == TIMEZONE_STATE
    finally:
        await observer.dispose()


# ---------------------------------------------------------------------------- through updates
async def add_group(harness, owner, chat) -> int:
    harness.api.set_admins(chat.id, owner)
    await harness.feed(harness.updates.my_chat_member(chat, owner, "left", "administrator"))
    async with harness.db.read() as session:
        return await session.scalar(select(Group.id).where(Group.chat_id == chat.id))


def context_key(app: App, user_id: int) -> StorageKey:
    return key(user_id, user_id, bot_id=app.bot.id)


async def test_wizard_state_rolls_back_with_a_failed_update(harness) -> None:
    owner = person(551, "Alice")
    group_id = await add_group(harness, owner, group(-1001000000551, "Fruit"))
    storage = harness.app.dispatcher.storage
    button = SettingsCB(action="tz", group_id=group_id).pack()

    harness.api.fail_next("bad_request", m.AnswerCallbackQuery)  # fails after set_state
    await harness.feed(harness.updates.callback(owner, button))  # the errors router answers
    assert harness.api.answers()[-1].text == "Something went wrong. Please try again."
    assert await storage.get_state(context_key(harness.app, owner.id)) is None
    assert await fsm_rows(harness.db) == 0

    await harness.feed(harness.updates.callback(owner, button))
    assert await storage.get_state(context_key(harness.app, owner.id)) == TIMEZONE_STATE
    assert await storage.get_data(context_key(harness.app, owner.id)) == {"group_id": group_id}


async def test_wizard_survives_a_restart(harness, settings) -> None:
    owner = person(561, "Alice")
    chat = group(-1001000000561, "Fruit")
    group_id = await add_group(harness, owner, chat)
    await harness.feed(
        harness.updates.callback(owner, SettingsCB(action="tz", group_id=group_id).pack())
    )
    await harness.app.close()  # the process stops mid-wizard

    api = FakeTelegram()
    api.set_admins(chat.id, owner)
    restarted = create_app(settings, session=api)  # new engine, same database
    try:
        await process(restarted, harness.updates.message(private(owner), owner, "Europe/Berlin"))
        assert api.texts(owner.id)[-1].startswith("Saved.")
        async with restarted.db.read() as session:
            assert (await session.get(Group, group_id)).timezone == "Europe/Berlin"
            assert await session.scalar(select(func.count()).select_from(FsmState)) == 0
    finally:
        await restarted.close()


async def test_group_chatter_runs_no_sql(harness) -> None:
    owner = person(571, "Alice")
    known = group(-1001000000571, "Known")
    unknown = group(-1001000000572, "Not registered")
    known_id = await add_group(harness, owner, known)
    members = [person(580 + i, f"M{i}") for i in range(5)]
    for chat in (known, unknown):  # warm the language cache (one read per group a minute)
        await harness.send(members[0], "hello", chat)
    harness.api.clear()

    with sql_statements(harness.db) as seen:
        for i in range(50):
            chat = known if i % 2 else unknown
            text = f"message {i}" if i % 3 else "anyone going to the market?"
            await harness.send(members[i % 5], text, chat)
    assert seen == []
    assert harness.api.requests == []  # and no call to Telegram either
    # yet every message was counted (in memory), and one flush writes them in a few statements
    assert harness.app.activity.pending > 0
    with sql_statements(harness.db) as seen:
        await harness.app.activity.flush_to(harness.db)
    assert 0 < len(seen) <= 10
    async with harness.db.read() as session:
        counted = await session.scalar(
            select(func.sum(MemberActivityDay.messages)).where(
                MemberActivityDay.group_id == known_id
            )
        )
        total = await session.scalar(select(func.sum(MemberActivityDay.messages)))
    assert counted == total == 1 + 25  # the warm-up and the odd ones; unknown chats: none

    with sql_statements(harness.db) as seen:  # while a group command does use the database
        await harness.send(owner, "/help", known)
    assert len(seen) >= 1


# ---------------------------------------------------------------------------- Redis
@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        if IN_CI:
            pytest.fail("CI=true but TEST_REDIS_URL is not set: Redis must be tested")
        pytest.skip("Redis not tested: set TEST_REDIS_URL to run these tests on it")
    client = Redis.from_url(url)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        message = f"Redis at TEST_REDIS_URL is unreachable: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    await client.flushdb()
    yield url
    await client.flushdb()
    await client.aclose()


async def test_redis_storage_and_isolation_survive_a_restart(
    redis_url: str, database_url: str, tmp_path: Path, db: Database
) -> None:
    settings = make_settings(database_url, tmp_path, redis_url=redis_url)
    first = create_app(settings, session=FakeTelegram(), db=db)
    try:
        assert isinstance(first.dispatcher.storage, RedisStorage)
        assert isinstance(first.dispatcher.fsm.events_isolation, RedisEventIsolation)
        context = first.dispatcher.fsm.get_context(first.bot, chat_id=591, user_id=591)
        await context.set_state(SettingsForm.timezone)
        await context.set_data({"group_id": 7, "title": "小王"})
    finally:
        await first.close()

    second = create_app(settings, session=FakeTelegram())
    try:
        context = second.dispatcher.fsm.get_context(second.bot, chat_id=591, user_id=591)
        assert await context.get_state() == TIMEZONE_STATE
        assert await context.get_data() == {"group_id": 7, "title": "小王"}
        async with second.db.read() as session:  # kept in Redis, not in the database
            assert await session.scalar(select(func.count()).select_from(FsmState)) == 0
        raw = Redis.from_url(redis_url)
        try:
            assert [k async for k in raw.scan_iter("tuan:*")]
        finally:
            await raw.aclose()
        await context.clear()
        assert await context.get_state() is None
    finally:
        await second.close()


async def test_redis_isolation_spans_instances(
    redis_url: str, database_url: str, tmp_path: Path, db: Database
) -> None:
    settings = make_settings(database_url, tmp_path, redis_url=redis_url)
    one = create_app(settings, session=FakeTelegram(), db=db)
    two = create_app(settings, session=FakeTelegram())
    try:
        k = context_key(one, 592)
        taken = asyncio.Event()

        async def second_instance() -> None:
            async with two.dispatcher.fsm.events_isolation.lock(k):
                taken.set()

        async with one.dispatcher.fsm.events_isolation.lock(k):
            waiter = asyncio.create_task(second_instance())
            await asyncio.sleep(0.3)  # Redis locks poll every 0.1 s
            assert not taken.is_set()  # the other instance waits for this conversation
        await asyncio.wait_for(waiter, 5)
        assert taken.is_set()
    finally:
        await one.close()
        await two.close()


async def test_redis_wizard_continues_on_another_instance(
    redis_url: str, database_url: str, tmp_path: Path, db: Database
) -> None:
    settings = make_settings(database_url, tmp_path, redis_url=redis_url)
    owner = person(593, "Alice")
    chat = group(-1001000000593, "Fruit")
    api = FakeTelegram()
    api.set_admins(chat.id, owner)
    first = create_app(settings, session=api, db=db)
    updates = Updates()
    try:
        await process(first, updates.my_chat_member(chat, owner, "left", "administrator"))
        async with first.db.read() as session:
            group_id = await session.scalar(select(Group.id).where(Group.chat_id == chat.id))
        await process(
            first, updates.callback(owner, SettingsCB(action="tz", group_id=group_id).pack())
        )
    finally:
        await first.close()

    api2 = FakeTelegram()
    api2.set_admins(chat.id, owner)
    second = create_app(settings, session=api2)
    try:
        await process(second, updates.message(private(owner), owner, "Asia/Tokyo"))
        assert api2.texts(owner.id)[-1].startswith("Saved.")
        async with second.db.read() as session:
            assert (await session.get(Group, group_id)).timezone == "Asia/Tokyo"
        context = second.dispatcher.fsm.get_context(second.bot, chat_id=owner.id, user_id=owner.id)
        assert await context.get_state() is None
    finally:
        await second.close()

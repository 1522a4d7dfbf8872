"""The locale cache (bot.i18n.LocaleCache) fills once for a burst: concurrent misses of one
group's or user's language share one read; a change made meanwhile wins over it."""

from __future__ import annotations

import asyncio

from bot.i18n import LocaleCache
from models import Group, User
from services.timezones import utcnow

CHAT = -1001_234_000_001


async def _seed(db) -> None:
    async with db.transaction() as s:
        s.add(
            Group(
                chat_id=CHAT,
                title="G",
                type="supergroup",
                timezone="Asia/Shanghai",
                currency="CNY",
                language="zh_Hans",
                is_active=True,
                admins_refreshed_at=utcnow(),
            )
        )
        s.add(User(id=36_001, first_name="U", language="en"))


async def test_a_burst_of_misses_reads_the_groups_language_once(db) -> None:
    await _seed(db)
    cache = LocaleCache(db)
    found = await asyncio.gather(*(cache.group_language(CHAT) for _ in range(200)))
    assert found == ["zh_Hans"] * 200
    assert cache.reads == 1
    assert await cache.group_language(CHAT) == "zh_Hans" and cache.reads == 1  # cached


async def test_a_burst_of_misses_reads_a_users_language_once(db) -> None:
    await _seed(db)
    cache = LocaleCache(db)
    found = await asyncio.gather(*(cache.user_language(36_001) for _ in range(50)))
    assert found == ["en"] * 50 and cache.reads == 1
    assert await cache.user_language(36_002) is None and cache.reads == 2  # another key


async def test_a_change_while_the_read_is_in_flight_wins(db) -> None:
    await _seed(db)
    cache = LocaleCache(db)
    waiting = [asyncio.ensure_future(cache.group_language(CHAT)) for _ in range(10)]
    await asyncio.sleep(0)  # the read has started
    cache.set_group(CHAT, "en")  # /lang in the group, committed meanwhile
    assert all(v == "zh_Hans" for v in await asyncio.gather(*waiting))  # asked before it
    assert await cache.group_language(CHAT) == "en"  # the read did not overwrite it
    assert cache.reads == 1


async def test_a_cancelled_waiter_does_not_cancel_the_others(db) -> None:
    await _seed(db)
    cache = LocaleCache(db)
    first = asyncio.ensure_future(cache.group_language(CHAT))
    others = [asyncio.ensure_future(cache.group_language(CHAT)) for _ in range(5)]
    await asyncio.sleep(0)
    first.cancel()
    assert await asyncio.gather(*others) == ["zh_Hans"] * 5
    assert cache.reads == 1


async def test_a_failed_read_fails_its_waiters_and_the_next_miss_reads_again(db) -> None:
    await _seed(db)
    cache = LocaleCache(db)

    class Broken:
        def read(self):
            raise ConnectionError("database down")

        def current(self):
            return None

    cache.db = Broken()
    results = await asyncio.gather(
        *(cache.group_language(CHAT) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)
    cache.db = db
    assert await cache.group_language(CHAT) == "zh_Hans"
    assert cache.reads == 2

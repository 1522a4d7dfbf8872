"""The one sender (bot/sender.py) against the fake Bot API: limits over sliding windows, 429
waits, 403 stops work for a chat, network retries, recorded failures, supergroup migrations;
and the deal posts and closing notices that now go through it."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from aiogram import Bot
from aiogram.methods import SendMessage
from sqlalchemy import select, update

from bot.sender import Sender
from models import Database, Group, SendFailure, User
from services.timezones import utcnow
from tests.conftest import TOKEN
from tests.fake_api import FakeTelegram
from tests.test_deal_closing import due, started
from tests.test_deal_post import (
    ALICE,
    GROUP,
    OWNER,
    add_group,
    create_deal,
    press,
    publish_deal,
    ready,
)

SMALL = {"chat_interval": 0.05, "group_limit": 5, "group_window": 0.5, "global_limit": 20}
SMALL_GLOBAL_WINDOW = 0.25


def make_sender(db: Database, **limits) -> tuple[Sender, FakeTelegram]:
    api = FakeTelegram()
    bot = Bot(TOKEN, session=api)
    values = {**SMALL, "global_window": SMALL_GLOBAL_WINDOW, "backoff": 0.01}
    values.update(limits)
    return Sender(bot, db, **values), api


def message(chat_id: int, text: str = "hi") -> SendMessage:
    return SendMessage(chat_id=chat_id, text=text)


def max_in_window(times: list[float], length: float) -> int:
    """The most requests in any window [t, t + length) (the worst window starts at a request)."""
    times = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + length:
            j += 1
        best = max(best, j - i)
    return best


def by_chat(api: FakeTelegram) -> dict[int, list[float]]:
    chats: dict[int, list[float]] = defaultdict(list)
    for request, at in zip(api.requests, api.times, strict=True):
        chat_id = getattr(request, "chat_id", None)  # getMe (a renderer's link) has none
        if chat_id is not None:
            chats[chat_id].append(at)
    return chats


async def add_group_row(db: Database, chat_id: int) -> None:
    async with db.transaction() as s:
        s.add(
            Group(
                chat_id=chat_id,
                title=f"g{chat_id}",
                type="supergroup",
                timezone="Asia/Shanghai",
                currency="CNY",
                language="en",
                is_active=True,
            )
        )


async def failures(db: Database) -> list[SendFailure]:
    async with db.read() as s:
        return list(await s.scalars(select(SendFailure).order_by(SendFailure.id)))


# ---------------------------------------------------------------- limits


async def test_no_sliding_window_exceeds_the_limits_in_a_burst(db: Database) -> None:
    sender, api = make_sender(db)
    groups = [-1001000000100 - i for i in range(8)]
    people = [9000 + i for i in range(40)]
    sends = [message(g, f"g{n}") for g in groups for n in range(8)]
    sends += [message(p, f"p{n}") for p in people for n in range(2)]
    started_at = time.monotonic()
    results = await asyncio.gather(*(sender.send(m, chat_id=m.chat_id) for m in sends))
    duration = time.monotonic() - started_at
    assert all(r is not None for r in results) and len(api.requests) == len(sends) == 144

    chats = by_chat(api)
    for chat_id, times in chats.items():
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert min(gaps) >= SMALL["chat_interval"], (chat_id, min(gaps))
        if chat_id < 0:
            assert max_in_window(times, SMALL["group_window"]) <= SMALL["group_limit"]
    overall = max_in_window(api.times, SMALL_GLOBAL_WINDOW)
    assert overall <= SMALL["global_limit"]
    # 144 sends at 20 per 0.25 s need at least 7 full windows
    assert duration >= (len(sends) // SMALL["global_limit"] - 1) * SMALL_GLOBAL_WINDOW
    assert sender.stats().sent == 144 and sender.stats().pending == 0
    print(f"\n144 sends in {duration:.2f} s; max {overall} in any {SMALL_GLOBAL_WINDOW} s window")


async def test_default_limits_hold_30_per_second(db: Database) -> None:
    api = FakeTelegram()
    sender = Sender(Bot(TOKEN, session=api), db)  # 1/s per chat, 20/min per group, 30/s
    sends = [message(9000 + i) for i in range(75)] + [message(GROUP.id, str(n)) for n in range(3)]
    await asyncio.gather(*(sender.send(m, chat_id=m.chat_id) for m in sends))
    overall = max_in_window(api.times, 1.0)
    group_times = by_chat(api)[GROUP.id]
    gaps = [b - a for a, b in zip(group_times, group_times[1:], strict=False)]
    assert overall <= 30 and min(gaps) >= 1.0
    print(f"\nmax {overall} requests in any 1 s window; group gaps {min(gaps):.3f} s")


# ---------------------------------------------------------------- 429


async def test_retry_after_is_waited_out_for_that_chat_only(db: Database) -> None:
    sender, api = make_sender(db)
    api.fail_next("retry_after", SendMessage, chat_id=GROUP.id, retry_after=1)
    other = -1001000000999
    results = await asyncio.gather(
        *(sender.send(message(GROUP.id, f"m{n}"), chat_id=GROUP.id) for n in range(3)),
        *(sender.send(message(other, f"o{n}"), chat_id=other) for n in range(3)),
    )
    assert all(r is not None for r in results)
    times = by_chat(api)
    refused_at = times[GROUP.id][0]
    assert len(times[GROUP.id]) == 4  # the 429 and the three messages
    assert min(times[GROUP.id][1:]) >= refused_at + 1.0  # nothing before retry_after passed
    assert [r.text for r in api.sent(GROUP.id)] == ["m0", "m0", "m1", "m2"]  # in order
    assert max(times[other]) < refused_at + 1.0  # another chat is not held up
    assert sender.stats().failed == 0


# ---------------------------------------------------------------- 403


async def test_forbidden_marks_the_group_inactive_and_stops_sending(db: Database) -> None:
    sender, api = make_sender(db)
    await add_group_row(db, GROUP.id)
    api.fail_next("forbidden", SendMessage, chat_id=GROUP.id)
    assert await sender.send(message(GROUP.id), chat_id=GROUP.id) is None
    async with db.read() as s:
        group = await s.scalar(select(Group).where(Group.chat_id == GROUP.id))
        assert group is not None and group.is_active is False
    assert sender.is_inactive(GROUP.id)

    assert await sender.send(message(GROUP.id), chat_id=GROUP.id) is None
    assert len(api.requests) == 1  # refused without a request
    rows = await failures(db)
    assert [(r.chat_id, r.method) for r in rows] == [(GROUP.id, "SendMessage")] * 2
    assert "403" in rows[0].reason and "kicked" in rows[0].reason
    assert "inactive" in rows[1].reason
    stats = sender.stats()
    assert stats.failed == 2 and stats.last_failures[0].chat_id == GROUP.id

    async with db.transaction() as s:  # the bot is added again
        await s.execute(update(Group).where(Group.chat_id == GROUP.id).values(is_active=True))
    assert await sender.send(message(GROUP.id), chat_id=GROUP.id) is not None


async def test_a_person_who_blocked_the_bot_is_marked_not_started(db: Database) -> None:
    sender, api = make_sender(db)
    async with db.transaction() as s:
        s.add(User(id=ALICE.id, first_name="Alice", started=True))
    api.fail_next("forbidden", SendMessage, chat_id=ALICE.id, message="Forbidden: bot was blocked")
    assert await sender.send(message(ALICE.id), chat_id=ALICE.id) is None
    async with db.read() as s:
        assert await s.scalar(select(User.started).where(User.id == ALICE.id)) is False
    [row] = await failures(db)
    assert row.chat_id == ALICE.id and "blocked" in row.reason
    assert row.created_at <= utcnow()


# ---------------------------------------------------------------- network, permanent errors


async def test_network_errors_are_retried_with_backoff(db: Database) -> None:
    sender, api = make_sender(db, backoff=0.05)
    api.fail_next("network", SendMessage, chat_id=ALICE.id, times=2)
    result = await sender.send(message(ALICE.id), chat_id=ALICE.id)
    assert result is not None and len(api.requests) == 3
    first, second, third = api.times
    assert second - first >= 0.05 and third - second >= 0.1  # exponential
    assert await failures(db) == [] and sender.stats().sent == 1


async def test_permanent_failures_are_recorded(db: Database) -> None:
    sender, api = make_sender(db)
    api.fail_next("network", SendMessage, chat_id=ALICE.id, times=sender.network_attempts)
    assert await sender.send(message(ALICE.id), chat_id=ALICE.id) is None
    api.fail_next("bad_request", SendMessage, chat_id=GROUP.id, message="Bad Request: no rights")
    assert await sender.send(message(GROUP.id), chat_id=GROUP.id) is None
    rows = await failures(db)
    assert [r.chat_id for r in rows] == [ALICE.id, GROUP.id]
    assert "Network" in rows[0].reason and "no rights" in rows[1].reason
    assert len(api.requests) == sender.network_attempts + 1
    stats = sender.stats()
    assert stats.failed == 2 and {f.chat_id for f in stats.last_failures} == {ALICE.id, GROUP.id}


# ---------------------------------------------------------------- migration


async def test_migration_to_a_supergroup_is_followed(db: Database) -> None:
    sender, api = make_sender(db)
    old, new = -555, -1001000000555
    await add_group_row(db, old)
    api.fail_next("migrate", SendMessage, chat_id=old, migrate_to=new)
    result = await sender.send(message(old), chat_id=old)
    assert result is not None and result.chat.id == new
    assert [r.chat_id for r in api.requests] == [old, new]
    async with db.read() as s:
        group = await s.scalar(select(Group))
        assert group is not None and group.chat_id == new and group.type == "supergroup"
    assert await sender.send(message(old), chat_id=old) is not None  # later sends follow
    assert api.requests[-1].chat_id == new
    assert await failures(db) == []


async def test_close_waits_for_pending_sends(db: Database) -> None:
    sender, api = make_sender(db, chat_interval=0.2)
    tasks = [
        asyncio.create_task(sender.send(message(ALICE.id), chat_id=ALICE.id)) for _ in range(3)
    ]
    await asyncio.sleep(0.01)  # one sent, two waiting for the chat's interval
    stats = sender.stats()
    assert (stats.pending, stats.waiting, stats.sent) == (2, 2, 1)
    await sender.close()
    assert all(t.done() for t in tasks) and len(api.requests) == 3


# ---------------------------------------------------------------- the bot's paths


async def test_a_429_while_publishing_is_waited_out_and_the_post_appears(harness) -> None:
    group_id = await add_group(harness)
    deal_id = await create_deal(harness, [group_id])
    harness.api.fail_next("retry_after", SendMessage, chat_id=GROUP.id, retry_after=1)
    assert await publish_deal(harness, deal_id) == 1
    refused, posted = harness.api.times
    assert posted - refused >= 1.0
    assert len(harness.api.sent(GROUP.id)) == 2
    assert harness.app.sender.stats().sent >= 1


async def test_closing_notices_go_through_the_sender(harness) -> None:
    _group_id, deal_id = await ready(harness)
    await press(harness, ALICE, deal_id, "join")
    await started(harness, ALICE)
    await harness.app.settle()
    harness.api.clear()
    harness.api.fail_next("forbidden", SendMessage, chat_id=ALICE.id, message="Forbidden: blocked")
    harness.api.fail_next("retry_after", SendMessage, chat_id=OWNER.id, retry_after=1)

    result = await due(harness)
    await harness.app.settle()
    assert result.closed == [deal_id]
    owner_times = by_chat(harness.api)[OWNER.id]
    assert len(owner_times) == 2 and owner_times[1] - owner_times[0] >= 1.0  # summary delivered
    async with harness.db.read() as s:
        assert await s.scalar(select(User.started).where(User.id == ALICE.id)) is False
    [row] = await failures(harness.db)
    assert row.chat_id == ALICE.id and "403" in row.reason


# ---------------------------------------------------------------- limits from the settings


async def test_settings_set_the_apps_sender_limits(db: Database, tmp_path) -> None:
    """SEND_CHAT_INTERVAL / SEND_GROUP_PER_MINUTE / SEND_GLOBAL_PER_SECOND reach the app's
    sender, and the limits it then keeps are measurably those."""
    from bot.factory import create_app
    from tests.conftest import make_settings

    url = db.engine.url.render_as_string(hide_password=False)
    settings = make_settings(
        url,
        tmp_path,
        send_chat_interval=0.3,
        send_group_per_minute=7,
        send_global_per_second=2,
    )
    api = FakeTelegram()
    app = create_app(settings, session=api, db=db)
    try:
        sender = app.sender
        assert (sender.chat_interval, sender.group_limit, sender.group_window) == (0.3, 7, 60.0)
        assert (sender.global_limit, sender.global_window) == (2, 1.0)
        chat = 9100
        people = [9200 + i for i in range(3)]
        sends = [message(chat, str(n)) for n in range(3)] + [message(p) for p in people]
        results = await asyncio.gather(*(sender.send(m, chat_id=m.chat_id) for m in sends))
        assert all(r is not None for r in results)
        times = by_chat(api)[chat]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert len(times) == 3 and min(gaps) >= 0.3
        assert max_in_window(api.times, 1.0) <= 2  # 6 sends at 2 per second
    finally:
        await app.close()

"""The scheduler (scheduler/jobs.py): reminders before closing (once, with the right text,
stale ones skipped), content posts in each group's timezone through DST, a restart with items
due in the past (each handled once), two app instances on one database running at the same
time (no double runs, SQLite and PostgreSQL), and the APScheduler job that serve() starts and
stops."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from aiogram.methods import SendMessage
from sqlalchemy import select, update

from bot.factory import create_app
from bot.runner import serve, start_jobs
from models import Database, Deal, DealPost, DealReminderSent, ScheduledTarget
from scheduler import jobs
from services import calendar
from services.calendar import PostSpec
from services.timezones import utcnow
from tests.fake_api import FakeTelegram
from tests.test_deal_post import (
    ALICE,
    GROUP,
    OTHER,
    OWNER,
    add_group,
    create_deal,
    deal_row,
    press,
    publish_deal,
    ready,
)


async def tick(app, now=None, **options):
    """The scheduler's tick, then what it promised (the outbox sends reminders)."""
    result = await jobs.tick(app, now, **options)
    await app.settle()
    return result


def group_texts(api: FakeTelegram, chat=GROUP) -> list[str]:
    return [m.text for m in api.sent(chat.id)]


async def reminders(harness) -> dict[tuple[int, str], str]:
    async with harness.db.read() as s:
        rows = await s.scalars(select(DealReminderSent))
        return {(r.deal_id, r.kind): r.outcome for r in rows}


async def schedule(harness, group_ids, *, now: datetime, **values) -> int:
    spec = PostSpec(text=values.pop("text", "Hello group"), group_ids=list(group_ids), **values)
    async with harness.db.transaction() as s:
        post = await calendar.create(s, OWNER.id, spec, now)
        return post.id


async def targets(harness) -> list[ScheduledTarget]:
    async with harness.db.read() as s:
        return list(await s.scalars(select(ScheduledTarget).order_by(ScheduledTarget.id)))


# ---------------------------------------------------------------- reminders


async def test_reminders_are_sent_once_with_the_right_text(harness) -> None:
    start = utcnow()
    _group_id, deal_id = await ready(harness, tiers=[(3, 1100), (5, 990)])
    await press(harness, ALICE, deal_id, "join")
    await harness.app.settle()
    post_id = (await deal_post(harness, deal_id)).message_id
    harness.api.clear()

    at_2h = start + timedelta(minutes=15, seconds=40)  # closes at start + 2:15:30
    first = await tick(harness.app, at_2h)
    again = await tick(harness.app, at_2h + timedelta(seconds=10))
    assert first.reminders_sent == [(deal_id, "m120")] and again.reminders_sent == []
    [reminder] = [m for m in harness.api.of(SendMessage) if m.chat_id == GROUP.id]
    assert (
        reminder.text == f"⏰ <b>Mangoes</b> (D{deal_id}): 2 hours left · 2 more to unlock CN¥11.00"
    )
    assert reminder.reply_parameters.message_id == post_id

    at_15m = start + timedelta(hours=2, seconds=40)
    await tick(harness.app, at_15m)
    await tick(harness.app, at_15m + timedelta(seconds=5))
    texts = [m.text for m in harness.api.of(SendMessage) if m.chat_id == GROUP.id]
    assert len(texts) == 2 and "15 minutes left · 2 more to unlock CN¥11.00" in texts[1]
    assert await reminders(harness) == {(deal_id, "m120"): "sent", (deal_id, "m15"): "sent"}


async def test_reminder_in_the_groups_language_and_minimum(harness) -> None:
    start = utcnow()
    group_id = await add_group(harness, language="zh_Hans")
    tiered = await create_deal(harness, [group_id], tiers=[(3, 1100)])
    minimum = await create_deal(harness, [group_id], min_kind="participants", min_value=3)
    await publish_deal(harness, tiered)
    await publish_deal(harness, minimum)
    harness.api.clear()
    await tick(harness.app, start + timedelta(minutes=15, seconds=40))
    texts = group_texts(harness.api)
    [tier_text] = [t for t in texts if f"(D{tiered})" in t]
    [min_text] = [t for t in texts if f"(D{minimum})" in t]
    # Money in the group's locale (msgids are translated by the catalogs later).
    assert "¥11.00" in tier_text and "CN¥" not in tier_text
    assert "3 more people needed for the deal to go ahead" in min_text or "3" in min_text


async def test_stale_reminders_after_a_restart_are_skipped_not_sent(harness) -> None:
    start = utcnow()
    _group_id, deal_id = await ready(harness)
    harness.api.clear()
    # The bot was down from before the 2 h mark until 10 min after the 15 min mark.
    result = await tick(harness.app, start + timedelta(hours=2, minutes=10, seconds=30))
    assert set(result.reminders_skipped) == {(deal_id, "m15"), (deal_id, "m120")}
    assert group_texts(harness.api) == []
    assert await reminders(harness) == {(deal_id, "m120"): "skipped", (deal_id, "m15"): "skipped"}
    await tick(harness.app, start + timedelta(hours=2, minutes=11))
    assert group_texts(harness.api) == []


async def test_only_the_reminder_that_still_matters_is_sent_after_downtime(harness) -> None:
    start = utcnow()
    _group_id, deal_id = await ready(harness)
    harness.api.clear()
    await tick(harness.app, start + timedelta(hours=2, minutes=1))  # 15 min mark passed 30 s ago
    [text] = group_texts(harness.api)
    assert "15 minutes left" in text or "14 minutes left" in text
    assert await reminders(harness) == {(deal_id, "m120"): "skipped", (deal_id, "m15"): "sent"}


async def deal_post(harness, deal_id: int) -> DealPost:
    async with harness.db.read() as s:
        return await s.scalar(select(DealPost).where(DealPost.deal_id == deal_id))


# ---------------------------------------------------------------- content posts and DST


async def test_daily_post_in_berlin_runs_at_0800_utc_then_0700_after_dst(harness) -> None:
    group_id = await add_group(harness, timezone="Europe/Berlin")
    created = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    await schedule(harness, [group_id], now=created, kind="daily", at_time="09:00")
    await schedule(harness, [group_id], now=created, kind="weekly", at_time="09:00", weekdays="5")
    daily, weekly = await targets(harness)
    assert daily.next_run_at == datetime(2026, 3, 28, 8, 0, tzinfo=UTC)
    assert weekly.next_run_at == datetime(2026, 3, 28, 8, 0, tzinfo=UTC)

    assert (await tick(harness.app, datetime(2026, 3, 28, 7, 59, tzinfo=UTC))).posts_sent == []
    sent = await tick(harness.app, datetime(2026, 3, 28, 8, 0, 5, tzinfo=UTC))
    assert len(sent.posts_sent) == 2
    daily, weekly = await targets(harness)
    assert daily.next_run_at == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # 09:00 CEST
    assert weekly.next_run_at == datetime(2026, 4, 4, 7, 0, tzinfo=UTC)
    assert daily.last_run_at == datetime(2026, 3, 28, 8, 0, 5, tzinfo=UTC)
    await tick(harness.app, datetime(2026, 3, 29, 7, 0, 3, tzinfo=UTC))
    daily, _weekly = await targets(harness)
    assert daily.next_run_at == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert group_texts(harness.api) == ["Hello group"] * 3


async def test_each_group_keeps_its_own_timezone(harness) -> None:
    berlin = await add_group(harness, timezone="Europe/Berlin")
    shanghai = await add_group(harness, OTHER, timezone="Asia/Shanghai")
    created = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    await schedule(harness, [berlin, shanghai], now=created, kind="daily", at_time="09:00")
    runs = {t.group_id: t.next_run_at for t in await targets(harness)}
    assert runs == {
        berlin: datetime(2026, 3, 28, 8, 0, tzinfo=UTC),
        shanghai: datetime(2026, 3, 28, 1, 0, tzinfo=UTC),
    }


async def test_post_with_html_characters_and_a_paused_post(harness) -> None:
    group_id = await add_group(harness)
    now = utcnow()
    await schedule(
        harness,
        [group_id],
        now=now,
        kind="once",
        run_at=now + timedelta(minutes=1),
        text="1 < 2 & <b>",
    )
    paused = await schedule(
        harness, [group_id], now=now, kind="once", run_at=now + timedelta(minutes=1)
    )
    async with harness.db.transaction() as s:
        await calendar.set_paused(s, paused, OWNER.id, True, now)
    await tick(harness.app, now + timedelta(minutes=2))
    assert group_texts(harness.api) == ["1 &lt; 2 &amp; &lt;b&gt;"]


async def test_a_group_that_removed_the_bot_gets_nothing_and_the_post_moves_on(harness) -> None:
    group_id = await add_group(harness)
    now = utcnow()
    await schedule(harness, [group_id], now=now, kind="daily", at_time="09:00")
    harness.api.fail_next("forbidden", SendMessage)
    [target] = await targets(harness)
    result = await tick(harness.app, target.next_run_at + timedelta(seconds=1))
    assert result.posts_failed and result.posts_sent == []
    [target] = await targets(harness)
    assert target.next_run_at > now and target.last_error


# ---------------------------------------------------------------- restart and two instances


def steady_now() -> datetime:
    """A "now" one minute past a 5-minute boundary, so the ticks a few seconds later cannot
    legitimately reach the next run of the */5 cron or the daily 09:00 post."""
    real = utcnow()
    return real.replace(minute=real.minute - real.minute % 5, second=0, microsecond=0) + timedelta(
        minutes=1
    )


async def past_items(harness, now: datetime) -> dict[str, int]:
    """Everything that fell due while the bot was down."""
    group_id = await add_group(harness, timezone="Europe/Berlin")
    opening = await create_deal(
        harness, [group_id], opens_at=now + timedelta(minutes=5), closes_at=now + timedelta(days=1)
    )
    closing = await create_deal(harness, [group_id])
    await publish_deal(harness, closing)
    once = await schedule(
        harness, [group_id], now=now, kind="once", run_at=now + timedelta(minutes=1)
    )
    daily = await schedule(harness, [group_id], now=now, kind="daily", at_time="09:00")
    cron = await schedule(harness, [group_id], now=now, kind="cron", cron="*/5 * * * *")
    async with harness.db.transaction() as s:  # three days have passed
        await s.execute(
            update(Deal).where(Deal.id == opening).values(opens_at=now - timedelta(days=3))
        )
        await s.execute(
            update(Deal).where(Deal.id == closing).values(closes_at=now - timedelta(days=2))
        )
        await s.execute(update(ScheduledTarget).values(next_run_at=now - timedelta(days=3)))
    return {"opening": opening, "closing": closing, "once": once, "daily": daily, "cron": cron}


async def check_once(harness, apis: list[FakeTelegram], items: dict[str, int], now) -> None:
    texts = [m.text for api in apis for m in api.sent(GROUP.id)]
    assert texts.count("Hello group") == 3, texts  # once, daily and cron: one run each
    cards = [t for t in texts if t.startswith("🛒")]
    assert len(cards) == 1  # the opened deal posted once
    assert (await deal_row(harness, items["opening"])).status == "open"
    assert (await deal_row(harness, items["closing"])).status == "succeeded"
    runs = {t.post_id: t for t in await targets(harness)}
    assert runs[items["once"]].next_run_at is None
    assert runs[items["daily"]].next_run_at > now  # the next FUTURE run, not a backlog
    assert runs[items["cron"]].next_run_at > now
    assert all(t.claimed_by is None for t in runs.values())


async def test_restart_with_due_items_handles_each_once(harness) -> None:
    now = steady_now()
    items = await past_items(harness, now)
    harness.api.clear()
    await tick(harness.app, now)
    await tick(harness.app, now + timedelta(seconds=10))
    await harness.app.settle()
    await check_once(harness, [harness.api], items, now)


async def test_two_instances_on_one_database_never_double_run(harness, settings) -> None:
    now = steady_now()
    items = await past_items(harness, now)
    harness.api.clear()
    api2 = FakeTelegram()
    second = create_app(settings, session=api2, db=Database(settings.database_url))
    try:
        for delta in (0, 1, 2):
            moment = now + timedelta(seconds=delta)
            await asyncio.gather(tick(harness.app, moment), tick(second, moment))
        await harness.app.settle()
        await second.settle()
        await check_once(harness, [harness.api, api2], items, now)
    finally:
        await second.close()


async def test_two_instances_many_posts_each_sent_once(harness, settings) -> None:
    now = utcnow()
    group_a = await add_group(harness)
    group_b = await add_group(harness, OTHER)
    for i in range(12):
        await schedule(
            harness,
            [group_a, group_b],
            now=now,
            kind="once",
            run_at=now + timedelta(minutes=1),
            text=f"post {i}",
        )
    api2 = FakeTelegram()
    second = create_app(settings, session=api2, db=Database(settings.database_url))
    try:
        later = now + timedelta(minutes=2)
        await asyncio.gather(*(tick(app, later) for app in (harness.app, second) * 3))
    finally:
        await second.close()
    for chat in (GROUP, OTHER):
        texts = group_texts(harness.api, chat) + group_texts(api2, chat)
        assert sorted(texts) == sorted(f"post {i}" for i in range(12))


# ---------------------------------------------------------------- the job in serve()


async def test_start_jobs_ticks_and_stops_cleanly(harness) -> None:
    group_id = await add_group(harness)
    now = utcnow()
    await schedule(harness, [group_id], now=now, kind="once", run_at=now + timedelta(seconds=1))
    async with harness.db.transaction() as s:
        await s.execute(update(ScheduledTarget).values(next_run_at=now - timedelta(seconds=1)))
    jobs = start_jobs(harness.app, every=0.05)
    try:
        assert jobs.running
        for _ in range(200):
            if group_texts(harness.api):
                break
            await asyncio.sleep(0.02)
    finally:
        await jobs.stop()
    assert not jobs.running and jobs.ticks >= 1
    assert group_texts(harness.api) == ["Hello group"]


async def test_serve_runs_the_scheduler_and_stops_it(harness) -> None:
    group_id = await add_group(harness)
    _closing = await create_deal(harness, [group_id])
    now = utcnow()
    await schedule(harness, [group_id], now=now, kind="once", run_at=now + timedelta(seconds=1))
    async with harness.db.transaction() as s:
        await s.execute(update(ScheduledTarget).values(next_run_at=now - timedelta(seconds=1)))
    stop = asyncio.Event()
    task = asyncio.create_task(serve(harness.app, stop))
    try:
        for _ in range(250):
            if "Hello group" in group_texts(harness.api):
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert "Hello group" in group_texts(harness.api)
    assert [t for t in asyncio.all_tasks() if "Jobs._tick" in repr(t.get_coro())] == []

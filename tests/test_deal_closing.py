"""Deals that are due (scheduler/deals.py): opening and posting, closing exactly once at the
tier price reached, the final post, private messages to members and the owner's summary,
the owner's close-now/cancel, and times in the group's timezone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiogram.methods import EditMessageText, SendMessage
from sqlalchemy import select, update

from bot.factory import create_app
from bot.posts import render_card
from models import Database, Deal, DealPost, Order, User
from scheduler.deals import run_due
from services import deals
from services.timezones import utcnow
from tests.builders import person
from tests.fake_api import FakeTelegram
from tests.test_deal_post import (
    ALICE,
    BOB,
    CAROL,
    GROUP,
    OTHER,
    OWNER,
    add_group,
    create_deal,
    deal_row,
    press,
    publish_deal,
    ready,
    refresher,
)

LATER = timedelta(hours=3)  # past the closing time of create_deal's deals


async def due(harness, now=None):
    """What the scheduler's tick does with deals, then what that set going (posts, outbox)."""
    app = harness.app
    result = await run_due(app.bot, app.db, app.i18n, app.sender, now or utcnow() + LATER)
    await harness.settle()
    return result


async def close_now(harness, deal_id: int, owner_id: int, *, cancel: bool = False):
    """The owner's close-now / cancel button: services.deals.close_owned in a transaction."""
    async with harness.db.transaction() as s:
        closing = await deals.close_owned(s, deal_id, owner_id, utcnow(), cancel=cancel)
    await harness.settle()
    return closing


async def started(harness, *users, language: str | None = None) -> None:
    """These members have started the bot in private chat (and chose a language)."""
    async with harness.db.transaction() as s:
        for u in users:
            values = {"started": True}
            if language:
                values["language"] = language
            await s.execute(update(User).where(User.id == u.id).values(**values))


async def orders_of(harness, deal_id: int) -> dict[int, tuple]:
    async with harness.db.read() as s:
        rows = await s.scalars(select(Order).where(Order.deal_id == deal_id))
        return {o.user_id: (o.quantity, o.status, o.unit_price, o.amount) for o in rows}


# ---------------------------------------------------------------- closing


async def test_deal_succeeds_at_the_tier_reached_and_everyone_is_told(harness) -> None:
    _group_id, deal_id = await ready(
        harness, tiers=[(3, 1100), (5, 990)], min_kind="units", min_value=3, stock=50
    )
    chinese = person(604, "小王", language="zh-hans")
    await press(harness, ALICE, deal_id, "qty", 2)
    await press(harness, chinese, deal_id, "qty", 3)
    await press(harness, CAROL, deal_id, "join")  # has not started the bot
    await started(harness, ALICE)
    await started(harness, chinese, language="zh_Hans")
    await harness.app.settle()
    harness.api.clear()

    result = await due(harness)
    await harness.app.settle()

    assert result.closed == [deal_id] and result.failed == []
    deal = await deal_row(harness, deal_id)
    assert (deal.status, deal.final_price) == ("succeeded", 990)
    assert await orders_of(harness, deal_id) == {
        ALICE.id: (2, "confirmed", 990, 1980),
        chinese.id: (3, "confirmed", 990, 2970),
        CAROL.id: (1, "confirmed", 990, 990),
    }
    [alice] = harness.api.texts(ALICE.id)
    assert "succeeded" in alice and "2 × CN¥9.90 = <b>CN¥19.80</b>" in alice
    assert "Pickup code: <code>" in alice and "Block 3 lobby" in alice
    [wang] = harness.api.texts(chinese.id)  # formatted for Chinese readers
    assert "3 × ¥9.90 = <b>¥29.70</b>" in wang and "CN¥" not in wang
    assert harness.api.texts(CAROL.id) == []  # never started the bot: no message
    [summary] = harness.api.texts(OWNER.id)
    assert f"D{deal_id} «Mangoes» closed: it succeeded at CN¥9.90 per unit." in summary
    assert "Participants: 3 · units: 6" in summary
    assert "Revenue: <b>CN¥59.40</b> (CNY)" in summary

    final = [e for e in harness.api.of(EditMessageText) if e.chat_id == GROUP.id][-1]
    assert final.reply_markup is None
    assert "Closed: the deal succeeded at CN¥9.90 per unit" in final.text
    assert "1. Alice ×2\n2. 小王 ×3\n3. Carol ×1" in final.text
    assert "/buy" not in final.text and "Closes in" not in final.text


async def test_deal_fails_below_its_minimum(harness) -> None:
    _group_id, deal_id = await ready(harness, min_kind="participants", min_value=3)
    await press(harness, ALICE, deal_id, "qty", 4)
    await press(harness, BOB, deal_id, "join")
    await started(harness, ALICE, BOB)
    harness.api.clear()

    await due(harness)
    await harness.app.settle()

    deal = await deal_row(harness, deal_id)
    assert (deal.status, deal.final_price) == ("failed", None)
    assert await orders_of(harness, deal_id) == {
        ALICE.id: (4, "failed", None, None),
        BOB.id: (1, "failed", None, None),
    }
    [alice] = harness.api.texts(ALICE.id)
    assert "did not reach its minimum; your order (×4) is cancelled" in alice
    [summary] = harness.api.texts(OWNER.id)
    assert "did not reach its minimum (2/3)" in summary and "CN¥0.00" in summary
    final = [e for e in harness.api.of(EditMessageText) if e.chat_id == GROUP.id][-1]
    assert final.reply_markup is None
    assert "did not reach its minimum (2/3); orders are cancelled" in final.text


async def test_closing_happens_once_when_run_due_runs_twice_at_the_same_time(harness) -> None:
    _group_id, deal_id = await ready(harness, tiers=[(2, 1000)])
    await press(harness, ALICE, deal_id, "join")
    await press(harness, BOB, deal_id, "join")
    await started(harness, ALICE, BOB)
    harness.api.clear()

    results = await asyncio.gather(due(harness), due(harness), due(harness))
    await harness.app.settle()

    assert sorted(len(r.closed) for r in results) == [0, 0, 1]
    assert len(harness.api.texts(ALICE.id)) == 1 and len(harness.api.texts(BOB.id)) == 1
    assert len(harness.api.texts(OWNER.id)) == 1
    assert (await deal_row(harness, deal_id)).final_price == 1000
    # and again later: nothing more happens
    assert (await due(harness)).closed == []
    assert len(harness.api.of(SendMessage)) == 4  # three private notices, one group reply
    assert len(harness.api.sent(GROUP.id)) == 1


async def test_joins_after_closing_are_refused_by_the_deal_state(harness) -> None:
    _group_id, deal_id = await ready(harness)
    await press(harness, ALICE, deal_id, "join")
    await due(harness)
    for action, qty in (("join", 0), ("qty", 2), ("cancel", 0)):
        answer = await press(harness, BOB if action == "join" else ALICE, deal_id, action, qty)
        assert answer.text == "This deal is closed.", action
    assert await orders_of(harness, deal_id) == {ALICE.id: (1, "confirmed", 1250, 1250)}


async def test_a_blocked_member_is_skipped_and_the_others_are_told(harness) -> None:
    _group_id, deal_id = await ready(harness)
    await press(harness, ALICE, deal_id, "join")
    await press(harness, BOB, deal_id, "join")
    await started(harness, ALICE, BOB)
    blocked = "Forbidden: bot was blocked by the user"
    harness.api.fail_next("forbidden", SendMessage, chat_id=ALICE.id, message=blocked)
    result = await due(harness)
    assert result.closed == [deal_id] and result.failed == []
    assert len(harness.api.texts(ALICE.id)) == 1  # tried once (refused with 403), not retried
    assert len(harness.api.texts(BOB.id)) == 1 and len(harness.api.texts(OWNER.id)) == 1


# ---------------------------------------------------------------- the owner closes


async def test_owner_cancels_now_and_members_are_told(harness) -> None:
    _group_id, deal_id = await ready(harness)
    await press(harness, ALICE, deal_id, "qty", 2)
    await started(harness, ALICE)
    with pytest.raises(deals.NotDealOwner):
        await close_now(harness, deal_id, ALICE.id, cancel=True)
    assert (await deal_row(harness, deal_id)).status == "open"

    closing = await close_now(harness, deal_id, OWNER.id, cancel=True)
    assert closing is not None and closing.outcome == "cancelled"
    assert await orders_of(harness, deal_id) == {ALICE.id: (2, "cancelled", None, None)}
    [alice] = harness.api.texts(ALICE.id)
    assert "was cancelled by the organiser; your order (×2) is cancelled" in alice
    assert "was cancelled; all orders are cancelled" in harness.api.texts(OWNER.id)[-1]
    final = [e for e in harness.api.of(EditMessageText) if e.chat_id == GROUP.id][-1]
    assert final.reply_markup is None and "Cancelled by the organiser" in final.text

    # a second close changes nothing and tells nobody again
    sent = len(harness.api.of(SendMessage))
    assert await close_now(harness, deal_id, OWNER.id) is None
    assert len(harness.api.of(SendMessage)) == sent


async def test_close_now_inside_a_transaction_announces_only_after_commit(harness) -> None:
    _group_id, deal_id = await ready(harness)
    await press(harness, ALICE, deal_id, "join")
    await started(harness, ALICE)
    app = harness.app
    async with app.db.transaction() as s:  # like an owner's button handler
        closing = await deals.close_owned(s, deal_id, OWNER.id, utcnow())
        assert closing is not None and closing.outcome == "succeeded"
        await asyncio.sleep(0.05)
        assert harness.api.texts(ALICE.id) == []  # not committed yet: nobody is told
    await harness.settle()
    assert len(harness.api.texts(ALICE.id)) == 1 and len(harness.api.texts(OWNER.id)) == 1

    # rolled back: nothing is announced
    other = await create_deal(harness, [_group_id])
    await publish_deal(harness, other)
    sent = len(harness.api.of(SendMessage))
    with pytest.raises(RuntimeError):
        async with app.db.transaction() as s:
            await deals.close_owned(s, other, OWNER.id, utcnow())
            raise RuntimeError("handler failed")
    await harness.settle()
    assert len(harness.api.of(SendMessage)) == sent
    assert (await deal_row(harness, other)).status == "open"


# ---------------------------------------------------------------- opening


async def test_scheduled_deal_opens_and_is_posted_once(harness) -> None:
    refresher(harness).interval = 0.05
    first = await add_group(harness, GROUP)
    second = await add_group(harness, OTHER, language="zh_Hans")
    opens = utcnow() + timedelta(hours=1)
    deal_id = await create_deal(
        harness, [first, second], opens_at=opens, closes_at=opens + timedelta(hours=5)
    )
    assert (await deal_row(harness, deal_id)).status == "scheduled"
    assert (await due(harness, utcnow())).opened == []  # not yet
    assert harness.api.of(SendMessage) == []

    at = opens + timedelta(minutes=1)
    results = await asyncio.gather(due(harness, at), due(harness, at))
    assert sorted(len(r.opened) for r in results) == [0, 1]
    assert sum(r.posted for r in results) == 2
    assert len(harness.api.sent(GROUP.id)) == 1 and len(harness.api.sent(OTHER.id)) == 1
    assert (await deal_row(harness, deal_id)).status == "open"
    assert (await due(harness, at)).posted == 0


async def test_a_post_that_failed_to_send_is_retried_by_the_next_run(harness) -> None:
    group_id = await add_group(harness)
    deal_id = await create_deal(harness, [group_id])
    sender = harness.app.sender  # retries network errors: make every attempt fail
    sender.backoff = 0.01
    attempts = sender.network_attempts
    harness.api.fail_next("network", SendMessage, chat_id=GROUP.id, times=attempts)
    assert await publish_deal(harness, deal_id) == 0
    async with harness.db.read() as s:
        [post] = await s.scalars(select(DealPost))
    assert post.message_id is None and post.posted_at is None  # the claim was given back

    result = await due(harness, utcnow())
    # the failed tries + this one
    assert result.posted == 1 and len(harness.api.sent(GROUP.id)) == attempts + 1
    assert (await due(harness, utcnow())).posted == 0


# ---------------------------------------------------------------- timezones


async def test_closing_time_is_shown_in_the_groups_timezone(harness) -> None:
    shanghai = await add_group(harness, GROUP, timezone="Asia/Shanghai")
    new_york = await add_group(harness, OTHER, timezone="America/New_York")
    tomorrow = (utcnow() + timedelta(days=1)).date()
    closes = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 12, 0, tzinfo=UTC)
    deal_id = await create_deal(harness, [shanghai, new_york], closes_at=closes)
    assert await publish_deal(harness, deal_id) == 2

    [sh] = harness.api.sent(GROUP.id)
    [ny] = harness.api.sent(OTHER.id)
    assert " 20:00\n" in sh.text  # 12:00 UTC is 20:00 in Shanghai
    expected = closes.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M")
    assert expected in ("07:00", "08:00") and f" {expected}\n" in ny.text


def test_render_shows_the_local_date_across_midnight() -> None:
    from aiogram.utils.i18n import I18n

    from bot.i18n import LOCALES_DIR
    from models import Group

    closes = datetime(2030, 3, 1, 18, 30, tzinfo=UTC)  # 02:30 on 2 March in Shanghai
    deal = Deal(
        id=3, owner_id=1, title="T", description="", photo_file_id=None, currency="CNY",
        unit_price=100, tiers="[]", min_kind=None, min_value=None, stock_total=None,
        stock_left=None, per_person_limit=None, status="open", opens_at=closes - LATER,
        closes_at=closes, pickup_note="", total_qty=0, participants=0,
    )  # fmt: skip
    grp = Group(chat_id=-1, title="G", timezone="Asia/Shanghai", currency="CNY", language="en")
    i18n = I18n(path=LOCALES_DIR, default_locale="en", domain="messages")
    with i18n.context(), i18n.use_locale("en"):
        text, _markup = render_card(deal, [], grp, closes - timedelta(hours=26, minutes=5))
    assert "Closes in 1 d 2 h · Sat, Mar 2 02:30" in text
    with i18n.context(), i18n.use_locale("zh_Hans"):
        grp.language = "zh_Hans"
        text, _markup = render_card(deal, [], grp, closes - timedelta(minutes=42))
    assert "3月2日周六 02:30" in text and "42" in text


async def test_a_closing_whose_process_died_before_telling_anyone_is_told_once_after_restart(
    harness, settings
) -> None:
    """The closing committed, with its notices in the outbox, and the process stopped before
    sending any of them (or editing the post): a restarted bot sends each once and shows
    the final state on the post."""
    _group_id, deal_id = await ready(harness, tiers=[(2, 1000)])
    await press(harness, ALICE, deal_id, "join")
    await press(harness, BOB, deal_id, "join")
    await started(harness, ALICE, BOB)
    await harness.settle()
    harness.api.clear()
    async with harness.db.transaction() as s:
        s.info.pop("tuan_events", None)  # the process dies before any effect runs
        assert await deals.close(s, deal_id, utcnow()) is not None
        s.info.pop("tuan_events", None)
    assert harness.api.requests == []

    api = FakeTelegram()
    restarted = create_app(settings, session=api, db=Database(settings.database_url))
    try:
        assert await restarted.posts.catch_up() == 1  # the post shows an older state
        await restarted.settle()
        await restarted.settle()
        private = [r for r in api.of(SendMessage) if r.chat_id > 0]
        assert sorted(r.chat_id for r in private) == sorted([ALICE.id, BOB.id, OWNER.id])
        [final] = [e for e in api.of(EditMessageText) if e.chat_id == GROUP.id]
        assert final.reply_markup is None
        assert await restarted.posts.catch_up() == 0
    finally:
        await restarted.close()


async def test_a_normal_closing_is_recorded_as_announced(harness) -> None:
    _group_id, deal_id = await ready(harness)
    await press(harness, ALICE, deal_id, "join")
    await due(harness)
    assert (await deal_row(harness, deal_id)).announced_at is not None
    harness.api.clear()
    await due(harness, utcnow() + timedelta(days=1))
    assert harness.api.of(SendMessage) == []


async def test_the_running_bot_closes_deals_when_their_time_comes(harness) -> None:
    """The scheduler's job (what `python -m bot` runs) closes a due deal by itself."""
    from bot.runner import start_jobs

    _group_id, deal_id = await ready(harness)
    await press(harness, ALICE, deal_id, "join")
    async with harness.db.transaction() as s:  # its closing time has just passed
        await s.execute(
            update(Deal).where(Deal.id == deal_id).values(closes_at=utcnow() - timedelta(seconds=1))
        )
    jobs = start_jobs(harness.app, every=0.05)
    try:
        for _ in range(200):
            if (await deal_row(harness, deal_id)).status == "succeeded":
                break
            await asyncio.sleep(0.02)
    finally:
        await jobs.stop()
    assert (await deal_row(harness, deal_id)).status == "succeeded"

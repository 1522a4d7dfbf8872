"""At closing the bot replies once to the deal's post in its group (an edit notifies nobody):
the outcome in the group's language and, for a success, the deep link that opens each
member's pickup code in private chat (`/start orders_D<deal>`). The reply is an outbox row
promised with the closing, so it survives a crash and is never posted twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiogram.methods import SendMessage
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from bot.factory import create_app
from models import Database, Deal, DealPost, Order, OutboxMessage
from scheduler.deals import run_due
from services import deals
from services.timezones import utcnow
from tests.fake_api import BOT_USERNAME, FakeTelegram
from tests.test_deal_closing import close_now, due, started
from tests.test_deal_post import (
    ALICE,
    BOB,
    CAROL,
    GROUP,
    OWNER,
    add_group,
    create_deal,
    press,
    publish_deal,
    ready,
)


def link(deal_id: int) -> str:
    return f"https://t.me/{BOT_USERNAME}?start=orders_D{deal_id}"


def replies(api: FakeTelegram, chat_id: int = GROUP.id) -> list[SendMessage]:
    """What the bot sent to the group as a reply (the post itself is not a reply)."""
    return [r for r in api.sent(chat_id) if r.reply_parameters is not None]


async def post_id(harness, deal_id: int) -> int:
    async with harness.db.read() as s:
        return await s.scalar(select(DealPost.message_id).where(DealPost.deal_id == deal_id))


async def pickup_code(harness, deal_id: int, user_id: int) -> str:
    async with harness.db.read() as s:
        return await s.scalar(
            select(Order.pickup_code).where(Order.deal_id == deal_id, Order.user_id == user_id)
        )


async def test_a_success_replies_to_the_post_once_with_the_link_to_the_pickup_code(
    harness,
) -> None:
    _group_id, deal_id = await ready(harness, min_kind="units", min_value=2)
    await press(harness, ALICE, deal_id, "qty", 2)
    await press(harness, CAROL, deal_id, "join")  # never started the bot
    await started(harness, ALICE)
    harness.api.clear()

    await due(harness)
    await due(harness, utcnow() + timedelta(days=1))  # a later run: nothing more

    [reply] = replies(harness.api)
    assert reply.reply_parameters.message_id == await post_id(harness, deal_id)
    assert reply.reply_parameters.allow_sending_without_reply is True
    assert f"<b>Mangoes</b> (D{deal_id}) succeeded: 3 of the 2 needed." in reply.text
    assert link(deal_id) in reply.text and "pickup code" in reply.text
    assert harness.api.texts(CAROL.id) == []  # nobody wrote to her: she learns it in the group

    # Carol follows the link: her pickup code in private chat
    code = await pickup_code(harness, deal_id, CAROL.id)
    answer = await harness.say(CAROL, f"/start orders_D{deal_id}", expect=1)
    assert f"Pickup code: <code>{code}</code>" in answer.text and "succeeded" in answer.text
    # someone without an order learns nothing of anyone's
    answer = await harness.say(BOB, f"/start orders_D{deal_id}", expect=1)
    assert answer.text == "You have no order in this deal. Send /myorders to see your orders."
    assert len(replies(harness.api)) == 1


async def test_a_failure_says_why_without_a_link(harness) -> None:
    _group_id, deal_id = await ready(harness, min_kind="participants", min_value=3)
    await press(harness, ALICE, deal_id, "qty", 4)
    harness.api.clear()
    await due(harness)
    [reply] = replies(harness.api)
    assert f"(D{deal_id}) did not go ahead: 1 of the 3 needed." in reply.text
    assert "nobody pays" in reply.text and "start=" not in reply.text
    answer = await harness.say(ALICE, f"/start orders_D{deal_id}", expect=1)
    assert "did not reach its minimum" in answer.text and "Pickup code" not in answer.text


async def test_the_owners_cancel_is_said_once(harness) -> None:
    _group_id, deal_id = await ready(harness)
    await press(harness, ALICE, deal_id, "join")
    harness.api.clear()
    await close_now(harness, deal_id, OWNER.id, cancel=True)
    assert await close_now(harness, deal_id, OWNER.id, cancel=True) is None
    [reply] = replies(harness.api)
    assert f"(D{deal_id}) was cancelled by the organiser." in reply.text
    assert "start=" not in reply.text


async def test_the_reply_speaks_the_groups_language(harness) -> None:
    group_id = await add_group(harness, language="zh_Hans")
    deal_id = await create_deal(harness, [group_id])
    await publish_deal(harness, deal_id)
    await press(harness, ALICE, deal_id, "join")  # Alice reads English: the group does not
    await started(harness, ALICE)
    harness.api.clear()
    await due(harness)
    [reply] = replies(harness.api)
    assert f"<b>Mangoes</b> (D{deal_id}) 成团了。" in reply.text
    assert "取货码" in reply.text and link(deal_id) in reply.text
    [alice] = harness.api.texts(ALICE.id)
    assert "Pickup code" in alice  # her own notice in her language


async def test_a_deal_without_a_post_gets_no_reply(harness) -> None:
    group_id = await add_group(harness)
    deal_id = await create_deal(harness, [group_id])  # never published
    await started(harness, ALICE)
    async with harness.db.transaction() as s:
        await deals.close(s, deal_id, utcnow(), cancel=True)
    await harness.settle()
    assert replies(harness.api) == []


async def test_a_crash_between_the_closing_and_the_send_still_replies_once_after_restart(
    harness, settings
) -> None:
    _group_id, deal_id = await ready(harness, tiers=[(2, 1000)])
    await press(harness, ALICE, deal_id, "join")
    await press(harness, BOB, deal_id, "join")
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
        await restarted.settle()
        await run_due(restarted.bot, restarted.db, restarted.i18n, restarted.sender, utcnow())
        await restarted.settle()
        [reply] = replies(api)
        assert reply.reply_parameters.message_id == await post_id(harness, deal_id)
        assert link(deal_id) in reply.text
    finally:
        await restarted.close()


async def test_an_old_unannounced_closing_replies_once_however_often_run_due_runs(
    harness,
) -> None:
    _group_id, deal_id = await ready(harness)
    await press(harness, ALICE, deal_id, "join")
    async with harness.db.transaction() as s:  # closed by an older version: nothing promised
        s.info.pop("tuan_events", None)
        await deals.close(s, deal_id, utcnow())
        s.info.pop("tuan_events", None)
        await s.execute(update(Deal).values(announced_at=None))
        await s.execute(OutboxMessage.__table__.delete())
    harness.api.clear()
    app = harness.app
    for _ in range(3):
        await run_due(app.bot, app.db, app.i18n, app.sender, utcnow())
        await harness.settle()
    [reply] = replies(harness.api)
    assert "succeeded" in reply.text and link(deal_id) in reply.text


async def test_the_link_of_a_deal_still_open_says_so(harness) -> None:
    _group_id, deal_id = await ready(harness)
    await press(harness, ALICE, deal_id, "join")
    answer = await harness.say(ALICE, f"/start orders_D{deal_id}", expect=1)
    assert answer.text == f"D{deal_id} is still open: your pickup code comes here if it succeeds."


@pytest.mark.parametrize(
    "payload",
    [
        "orders_D0",
        "orders_D99999999999",
        "orders_D4294967296",
        "orders_D²",
        "orders_D",
        "orders_D-1",
    ],
)
async def test_a_forged_pickup_link_is_answered_and_changes_nothing(harness, payload) -> None:
    answer = await harness.say(ALICE, f"/start {payload}", expect=1)
    assert "no order in this deal" in answer.text or "unknown or no longer valid" in answer.text


@given(st.text(max_size=80))
def test_the_pickup_link_parser_takes_only_ascii_digits(payload: str) -> None:
    """Whatever follows /start: a match is `orders_D` and 1-10 ASCII digits, so int() never
    fails and valid_id bounds it; anything else is not taken for a pickup link."""
    from handlers.share import PICKUP_LINK

    for candidate in (payload, "orders_D" + payload):
        found = PICKUP_LINK.fullmatch(candidate)
        if found is not None:
            digits = found.group(1)
            assert digits.isascii() and 1 <= len(digits) <= 10
            assert int(digits) < 10**10

"""Who is speaking (issue 12, class 4), through the real Dispatcher on both databases:
orders, sign-ups, activity counts, leaderboard choices, credit and invites come only from a
person's own account. Anonymous administrators (GroupAnonymousBot on behalf of the group),
posts on behalf of a channel, Telegram's automatic forwards (777000), bots and messages
without `from` are answered with what to do instead and change nothing; none crashes."""

from __future__ import annotations

import pytest
from aiogram import methods as m
from aiogram.types import Chat, User
from sqlalchemy import func, select

from models import MemberActivityDay, Order, ProcessedUpdate
from models import User as UserRow
from tests.builders import person, private
from tests.test_deal_post import GROUP, press, ready

APOLOGY = "Something went wrong. Please try again."
ADVICE = (
    "Please write from your own account: orders, sign-ups, credit and invites belong to "
    "a person, so messages sent anonymously, on behalf of a channel or the group, or by "
    "a bot change nothing."
)
CHANNEL = Chat(id=-1001000000999, type="channel", title="Fruit News")
ANONYMOUS = User(id=1087968824, is_bot=True, first_name="Group", username="GroupAnonymousBot")
CHANNEL_BOT = User(id=136817688, is_bot=True, first_name="Channel", username="Channel_Bot")
TELEGRAM = User(id=777000, is_bot=False, first_name="Telegram")
OTHER_BOT = User(id=700_000_999, is_bot=True, first_name="Spam", username="spam_bot")
MEMBER = person(621, "Mia")

# (from, fields of the message): who wrote it, and on whose behalf
NOT_PEOPLE = {
    "anonymous admin": (ANONYMOUS, {"sender_chat": GROUP}),
    "on behalf of a channel": (CHANNEL_BOT, {"sender_chat": CHANNEL}),
    "on behalf of the group": (MEMBER, {"sender_chat": GROUP}),
    "automatic forward": (TELEGRAM, {"sender_chat": CHANNEL, "is_automatic_forward": True}),
    "a bot": (OTHER_BOT, {}),
    "no from at all": (None, {}),
}


async def counts(harness) -> tuple[int, int, int]:
    """(orders, activity day rows, people stored)"""
    await harness.app.flush_activity()
    async with harness.db.read() as s:
        orders = await s.scalar(select(func.count()).select_from(Order))
        days = await s.scalar(select(func.count()).select_from(MemberActivityDay))
        people = await s.scalar(
            select(func.count()).select_from(UserRow).where(UserRow.id != MEMBER.id)
        )
    return orders, days, people


@pytest.mark.parametrize("who", list(NOT_PEOPLE))
async def test_orders_from_no_person_change_nothing(harness, who: str) -> None:
    _group_id, deal_id = await ready(harness)
    sender, fields = NOT_PEOPLE[who]
    harness.api.clear()
    before = await counts(harness)
    for text in (f"/buy D{deal_id} 2", f"/cancel D{deal_id}", "/hideme", "/showme"):
        reply = await harness.say(sender, text, GROUP, expect=1, **fields)
        assert reply.text == ADVICE, (who, text)
        assert reply.reply_parameters.message_id  # a reply to the command
    top = await harness.say(sender, "/top", GROUP, expect=1, **fields)  # only shows: answered
    assert "Most active" in top.text
    await harness.send(sender, "I want two!", GROUP, **fields)  # chatter: no answer, no count
    await harness.send(sender, f"/buy@tuan_test_bot D{deal_id}", GROUP, **fields)
    await harness.settle()
    assert await counts(harness) == before
    async with harness.db.read() as s:  # refused before any transaction: no update recorded
        assert await s.scalar(select(func.count()).select_from(ProcessedUpdate)) == 0
    assert all(r.text != APOLOGY for r in harness.api.sent(GROUP.id))
    # the same commands from the member's own account work
    reply = await harness.say(MEMBER, f"/buy D{deal_id} 2", GROUP)
    assert "You're in" in reply.text
    async with harness.db.read() as s:
        assert [(o.user_id, o.quantity) for o in await s.scalars(select(Order))] == [(MEMBER.id, 2)]


async def test_group_chatter_counts_only_people(harness) -> None:
    await ready(harness)
    for sender, fields in NOT_PEOPLE.values():
        await harness.send(sender, "hello", GROUP, **fields)
    await harness.send(MEMBER, "hello", GROUP)
    await harness.app.flush_activity()
    async with harness.db.read() as s:
        rows = list(await s.scalars(select(MemberActivityDay)))
    assert [(r.user_id, r.messages) for r in rows] == [(MEMBER.id, 1)]


async def test_a_bots_button_press_changes_nothing(harness) -> None:
    _group_id, deal_id = await ready(harness)
    answer = await press(harness, OTHER_BOT, deal_id, "join")
    assert answer.show_alert and answer.text == ADVICE
    answer = await press(harness, MEMBER, deal_id, "join")
    assert "You're in" in answer.text
    async with harness.db.read() as s:
        assert [o.user_id for o in await s.scalars(select(Order))] == [MEMBER.id]


@pytest.mark.parametrize("text", ["/start inv_{gid}", "/invite", "/mycredit", "/start"])
async def test_a_bot_account_in_private_gets_nothing(harness, text: str) -> None:
    group_id, _deal_id = await ready(harness)
    harness.api.clear()
    reply = await harness.say(OTHER_BOT, text.format(gid=group_id), private(OTHER_BOT), expect=1)
    assert reply.text == ADVICE
    assert harness.api.of(m.CreateChatInviteLink) == []
    async with harness.db.read() as s:
        assert await s.get(UserRow, OTHER_BOT.id) is None


async def test_service_messages_from_an_anonymous_admin_still_pass(harness) -> None:
    """A member added by an anonymous administrator: the service message is not refused
    (its handlers read the chat, not the speaker) and nothing is answered to it."""
    await ready(harness)
    harness.api.clear()
    await harness.send(ANONYMOUS, None, GROUP, sender_chat=GROUP, new_chat_members=[MEMBER])
    assert ADVICE not in [r.text for r in harness.api.sent(GROUP.id)]

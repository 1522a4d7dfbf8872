"""Leaderboards and members (handlers/activity.py): /top in a group over 7 or 30 local days,
/hideme and /showme, the owner's /members (core and dormant members, the core threshold),
and counting through the real Dispatcher (messages, sign-ups, joins and leaves)."""

from __future__ import annotations

from datetime import timedelta

from aiogram.methods import EditMessageText
from sqlalchemy import select

from handlers.callbacks import MembersCB
from models import (
    Group,
    GroupActivityDay,
    MemberActivityDay,
    Membership,
    Referral,
    User,
)
from services.activity import local_today
from services.timezones import utcnow
from tests.builders import group, person, private
from tests.test_deal_post import ALICE, BOB, CAROL, GROUP, OWNER, press, ready
from views.activity import LIST_BUDGET

TZ = "Asia/Shanghai"
DAN = person(604, "Dan")
EVE = person(605, "<Eve & co>")


async def register(harness, chat=GROUP, owner=OWNER) -> int:
    """The bot is added to the group by its owner (an admin list from the fake API)."""
    harness.api.set_admins(chat.id, owner)
    await harness.feed(harness.updates.my_chat_member(chat, owner, "left", "administrator"))
    harness.api.clear()
    async with harness.db.read() as s:
        return await s.scalar(select(Group.id).where(Group.chat_id == chat.id))


async def users(harness, *people, hidden=()) -> None:
    async with harness.db.transaction() as s:
        for p in people:
            s.add(User(id=p.id, first_name=p.first_name, leaderboard_hidden=p in hidden))


async def activity_rows(harness, group_id: int, rows: list[tuple[int, int, int, int]]) -> None:
    """(user id, days ago, messages, sign-ups)."""
    today = local_today(TZ)
    async with harness.db.transaction() as s:
        for uid, ago, messages, signups in rows:
            s.add(
                MemberActivityDay(
                    group_id=group_id,
                    day=today - timedelta(days=ago),
                    user_id=uid,
                    messages=messages,
                    signups=signups,
                    orders=0,
                )
            )


async def referrals(harness, group_id: int, rows: list[tuple[int, int, float]]) -> None:
    """(member, inviter, days ago)."""
    async with harness.db.transaction() as s:
        for uid, inviter, ago in rows:
            s.add(
                Referral(
                    group_id=group_id,
                    user_id=uid,
                    inviter_id=inviter,
                    joined_at=utcnow() - timedelta(days=ago),
                )
            )


def section(text: str, title: str) -> list[str]:
    """The numbered lines under a bold title."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if title in line)
    out = []
    for line in lines[start + 1 :]:
        if not line or line.startswith("<b>"):
            break
        out.append(line)
    return out


# ---------------------------------------------------------------- /top


async def test_top_ranks_members_and_inviters_in_7_and_30_day_windows(harness) -> None:
    gid = await register(harness)
    await users(harness, ALICE, BOB, CAROL, DAN, EVE, hidden=(DAN,))
    await activity_rows(
        harness,
        gid,
        [
            (ALICE.id, 0, 10, 0),
            (BOB.id, 3, 5, 2),
            (BOB.id, 6, 1, 0),  # the 7th day back: inside the 7-day window
            (CAROL.id, 7, 50, 0),  # the 8th day back: outside it, inside 30
            (DAN.id, 0, 100, 0),  # hidden
            (EVE.id, 29, 3, 0),
            (EVE.id, 30, 40, 0),  # outside 30 too
        ],
    )
    await referrals(
        harness,
        gid,
        [(701, BOB.id, 1), (702, BOB.id, 2), (703, CAROL.id, 10), (704, DAN.id, 1)]
        + [(710 + i, DAN.id, 2) for i in range(4)],
    )

    week = (await harness.say(ALICE, "/top", GROUP, expect=1)).text
    assert section(week, "Most active in the last 7 days") == ["1. Alice · 10", "2. Bob · 8"]
    assert section(week, "Top inviters in the last 7 days") == ["1. Bob · 2"]
    assert "Dan" not in week and "Carol" not in week
    assert "/hideme" in week

    month = (await harness.say(ALICE, "/top 30", GROUP, expect=1)).text
    assert section(month, "Most active in the last 30 days") == [
        "1. Carol · 50",
        "2. Alice · 10",
        "3. Bob · 8",
        "4. &lt;Eve &amp; co&gt; · 3",  # escaped, and only the day inside the window
    ]
    assert section(month, "Top inviters in the last 30 days") == ["1. Bob · 2", "2. Carol · 1"]
    assert "Dan" not in month


async def test_top_shows_at_most_ten_and_says_when_nobody_is_there(harness) -> None:
    gid = await register(harness)
    empty = (await harness.say(ALICE, "/top", GROUP, expect=1)).text
    assert section(empty, "Most active") == ["Nobody yet."]
    assert section(empty, "Top inviters") == ["Nobody yet."]

    people = [person(800 + i, f"P{i}") for i in range(12)]
    await users(harness, *people)
    await activity_rows(harness, gid, [(p.id, 0, 20 - i, 0) for i, p in enumerate(people)])
    ranked = section((await harness.say(ALICE, "/top", GROUP, expect=1)).text, "Most active")
    assert ranked[0] == "1. P0 · 20" and ranked[-1] == "10. P9 · 11" and len(ranked) == 10


async def test_bad_top_arguments_get_an_example_and_change_nothing(harness) -> None:
    gid = await register(harness)
    await users(harness, ALICE)
    await activity_rows(harness, gid, [(ALICE.id, 0, 3, 0)])
    for bad in ("/top 14", "/top abc", "/top 7 30", "/top -7"):
        text = (await harness.say(ALICE, bad, GROUP, expect=1)).text
        assert "Usage:" in text and "<code>/top 30</code>" in text, bad
        assert "Alice" not in text
    assert "7 days" in (await harness.say(ALICE, "/top 7d", GROUP, expect=1)).text


async def test_hideme_and_showme_in_group_and_private(harness) -> None:
    gid = await register(harness)
    await users(harness, ALICE, BOB)
    await activity_rows(harness, gid, [(ALICE.id, 0, 3, 0), (BOB.id, 0, 2, 0)])

    answer = (await harness.say(ALICE, "/hideme", GROUP, expect=1)).text
    assert "will not appear" in answer and "/showme" in answer
    assert section((await harness.say(BOB, "/top", GROUP, expect=1)).text, "Most active") == [
        "1. Bob · 2"
    ]
    async with harness.db.read() as s:
        assert (await s.get(User, ALICE.id)).leaderboard_hidden is True

    answer = (await harness.say(ALICE, "/showme", private(ALICE), expect=1)).text
    assert "again" in answer
    assert section((await harness.say(BOB, "/top", GROUP, expect=1)).text, "Most active") == [
        "1. Alice · 3",
        "2. Bob · 2",
    ]
    # a private /hideme works as well, and for every group
    await harness.say(BOB, "/hideme", private(BOB), expect=1)
    assert section((await harness.say(ALICE, "/top", GROUP, expect=1)).text, "Most active") == [
        "1. Alice · 3"
    ]


# ---------------------------------------------------------------- counting end to end


async def test_messages_signups_joins_and_leaves_are_counted(harness) -> None:
    gid, deal_id = await ready(harness)
    for text in ("hi", "anyone?", "/deals"):  # commands are messages too
        await harness.send(ALICE, text, GROUP)
    await harness.send(BOB, "hello", GROUP)
    await press(harness, ALICE, deal_id, "join")  # a sign-up
    await press(harness, ALICE, deal_id, "qty", 3)  # a change of quantity: not another one
    await press(harness, BOB, deal_id, "qty", 2)  # a sign-up with ×N
    await press(harness, CAROL, deal_id, "cancel")  # refused: nothing to count
    await harness.send(CAROL, f"/buy D{deal_id} 1", GROUP)
    await harness.feed(harness.updates.chat_member(GROUP, DAN, "left", "member"))
    await harness.feed(harness.updates.chat_member(GROUP, EVE, "left", "member"))
    await harness.feed(harness.updates.chat_member(GROUP, EVE, "member", "left"))
    await harness.feed(harness.updates.chat_member(GROUP, DAN, "member", "member"))  # no change
    await harness.app.settle()

    await harness.app.activity.flush_to(harness.db)
    today = local_today(TZ)
    async with harness.db.read() as s:
        rows = {
            r.user_id: (r.messages, r.signups)
            for r in await s.scalars(
                select(MemberActivityDay).where(MemberActivityDay.group_id == gid)
            )
        }
        day = await s.get(GroupActivityDay, (gid, today))
    assert rows == {ALICE.id: (3, 1), BOB.id: (1, 1), CAROL.id: (1, 1)}
    assert (day.messages, day.signups, day.joins, day.leaves, day.active_members) == (
        5,
        3,
        2,
        1,
        3,
    )
    # and the leaderboard reads them
    ranked = section((await harness.say(BOB, "/top", GROUP, expect=1)).text, "Most active")
    assert ranked == ["1. Alice · 4", "2. Bob · 2", "3. Carol · 2"]


# ---------------------------------------------------------------- /members (owners)


async def memberships(harness, gid: int, rows: list[tuple[int, str, int | None]]) -> None:
    """(user id, status, joined days ago or None)."""
    async with harness.db.transaction() as s:
        for uid, status, ago in rows:
            await s.merge(
                Membership(
                    group_id=gid,
                    user_id=uid,
                    status=status,
                    joined_at=None if ago is None else utcnow() - timedelta(days=ago),
                )
            )


async def test_members_shows_core_and_dormant_members(harness) -> None:
    gid = await register(harness)
    await users(harness, ALICE, BOB, CAROL, DAN, EVE)
    rows = [(ALICE.id, ago, 1, 0) for ago in range(5)]  # 5 of the last 14 days: core
    rows += [(BOB.id, ago, 1, 0) for ago in (0, 2, 4, 6)]  # 4: not core at N = 5
    rows += [(CAROL.id, ago, 1, 0) for ago in (9, 10, 11, 12, 13, 14)]  # 5 inside + 1 outside
    rows += [(DAN.id, 30, 5, 0)]  # last active 31 days ago: dormant
    await activity_rows(harness, gid, rows)
    await memberships(
        harness,
        gid,
        [
            (ALICE.id, "member", 100),
            (BOB.id, "member", None),
            (CAROL.id, "member", 100),
            (DAN.id, "member", 100),
            (EVE.id, "member", 40),  # never active, here 40 days: dormant
            (606, "member", 3),  # joined 3 days ago: not dormant yet
            (607, "left", 100),  # gone: not dormant
        ],
    )

    text = (await harness.say(OWNER, "/members", expect=1)).text
    assert "Members of Fruit Lovers" in text
    assert "at least 5 of the last 14 days): 2" in text
    assert "Alice (5), Carol (5)" in text and "Bob" not in text
    assert "no activity in the last 30 days): 2" in text
    assert "&lt;Eve &amp; co&gt;, Dan" in text  # by name

    text = (await harness.say(OWNER, "/members core 4", expect=1)).text
    assert text.startswith("Core threshold set to 4 days.")
    assert "at least 4 of the last 14 days): 3" in text and "Bob (4)" in text
    async with harness.db.read() as s:
        assert (await s.get(Group, gid)).core_min_days == 4


async def test_bad_core_threshold_is_refused_with_the_reason(harness) -> None:
    gid = await register(harness)
    for bad in ("/members core 0", "/members core 15", "/members core abc", "/members core 2.5"):
        text = (await harness.say(OWNER, bad, expect=1)).text
        assert "from 1 to 14" in text and "/members core 5" in text, bad
    assert "Usage:" in (await harness.say(OWNER, "/members everyone", expect=1)).text
    # a forged button with a bad number changes nothing either (it does not even unpack)
    for forged in (f"mem:core:{gid}:99", f"mem:core:{gid}:15", f"mem:core:{gid}:-1"):
        await harness.feed(harness.updates.callback(OWNER, forged, chat=private(OWNER)))
        assert "out of date" in harness.api.answers()[-1].text
    async with harness.db.read() as s:
        assert (await s.get(Group, gid)).core_min_days == 5


async def test_threshold_buttons_and_the_group_picker(harness) -> None:
    gid = await register(harness)
    other_chat = group(-1001000000999, "Veggie Club")
    other = await register(harness, other_chat)

    text = (await harness.say(OWNER, "/members", expect=1)).text
    assert text == "Choose a group:"
    markup = harness.last(OWNER).reply_markup
    assert [b.callback_data for row in markup.inline_keyboard for b in row] == [
        MembersCB(action="open", group_id=gid).pack(),
        MembersCB(action="open", group_id=other).pack(),
    ]
    assert "for which group" in (await harness.say(OWNER, "/members core 7", expect=1)).text

    chat = private(OWNER)
    await harness.feed(
        harness.updates.callback(OWNER, MembersCB(action="core", group_id=other).pack(), chat=chat)
    )
    edit = harness.api.of(EditMessageText)[-1]
    assert "how many of the last 14 days" in edit.text
    labels = [b.text for row in edit.reply_markup.inline_keyboard for b in row]
    assert "✓ 5" in labels and "14" in labels
    await harness.feed(
        harness.updates.callback(
            OWNER, MembersCB(action="core", group_id=other, n=9).pack(), chat=chat
        )
    )
    assert harness.api.answers()[-1].text == "Core threshold set to 9 days."
    assert "Members of Veggie Club" in harness.api.of(EditMessageText)[-1].text
    async with harness.db.read() as s:
        assert (await s.get(Group, other)).core_min_days == 9
        assert (await s.get(Group, gid)).core_min_days == 5

    # someone who does not run the group cannot see or change it
    await harness.feed(
        harness.updates.callback(
            ALICE, MembersCB(action="core", group_id=other, n=2).pack(), chat=private(ALICE)
        )
    )
    assert "Only the owner" in harness.api.answers()[-1].text
    async with harness.db.read() as s:
        assert (await s.get(Group, other)).core_min_days == 9
    assert "don't run any group" in (await harness.say(ALICE, "/members", expect=1)).text


async def test_long_member_lists_stay_within_the_message_limit(harness) -> None:
    gid = await register(harness)
    many = [person(2000 + i, "Ｗ" * 60) for i in range(300)]
    await users(harness, *many)
    await memberships(harness, gid, [(p.id, "member", 100) for p in many])
    await activity_rows(harness, gid, [(p.id, ago, 1, 0) for p in many[:150] for ago in range(5)])
    text = (await harness.say(OWNER, "/members", expect=1)).text
    assert len(text) <= 4096
    assert "more" in text and ": 150" in text
    assert all(len(line) <= LIST_BUDGET + 40 for line in text.split("\n"))

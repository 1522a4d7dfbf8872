"""Personal invite links: /invite (private and from a group), Telegram refusing for lack of
rights (member and owner told, once), crediting joins from chat_member updates exactly once
(replays, duplicates, concurrency, re-joins, bots, self-invites, foreign or dead links), and
/invites for owners."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiogram.methods import CreateChatInviteLink, GetChatMember
from aiogram.types import ChatInviteLink, ChatMemberLeft
from aiogram.types import User as TgUser
from sqlalchemy import func, select

from bot.posts import PostRefresher
from handlers.callbacks import InviteCB, InvitesCB
from models import Group, GroupAdmin, InviteLink, Membership, Referral, User
from services import referrals
from services.timezones import utcnow
from tests.builders import BOT_USER, group, person
from tests.fake_api import admin_member
from views.format import tg_len

GROUP = group(-1001000000777, "Fruit Lovers")
OTHER = group(-1001000000888, "Veggie Club")
OWNER = person(501, "Owen")
ALICE = person(601, "Alice", last_name="Smith")
BOB = person(602, "Bob")
CAROL = person(603, "Carol")
DAVE = person(604, "Dave")
A_BOT = TgUser(id=900_000_001, is_bot=True, first_name="Spam Bot")


# ---------------------------------------------------------------- helpers


async def add_group(harness, chat=GROUP, *, owner=OWNER, bot_is_admin=True) -> int:
    """A registered group with its owner stored as an administrator who started the bot."""
    harness.api.set_admins(chat.id, owner, bot_is_admin=bot_is_admin)
    async with harness.db.transaction() as s:
        row = Group(
            chat_id=chat.id,
            title=chat.title,
            type=chat.type,
            timezone="Asia/Shanghai",
            currency="CNY",
            language="en",
            is_active=True,
            admins_refreshed_at=utcnow(),
        )
        s.add(row)
        await s.flush()
        s.add(GroupAdmin(group_id=row.id, user_id=owner.id, status="creator"))
        if await s.get(User, owner.id) is None:
            s.add(User(id=owner.id, first_name=owner.first_name, started=True))
        return row.id


async def add_member(harness, group_id: int, user, status: str = "member") -> None:
    async with harness.db.transaction() as s:
        s.add(Membership(group_id=group_id, user_id=user.id, status=status, joined_at=utcnow()))


async def stored_link(harness, group_id: int, user, link: str | None = None) -> str:
    link = link or f"https://t.me/+stored{group_id}x{user.id}"
    async with harness.db.transaction() as s:
        await referrals.save_invite(s, group_id, user.id, link, user.first_name, utcnow())
    return link


def via(link: str) -> ChatInviteLink:
    return ChatInviteLink(
        invite_link=link,
        creator=BOT_USER,
        creates_join_request=False,
        is_primary=False,
        is_revoked=False,
    )


def join(harness, user, link: str | None, chat=GROUP, old="left"):
    return harness.updates.chat_member(
        chat, user, old, "member", invite_link=via(link) if link else None
    )


async def credits(harness, group_id: int | None = None) -> dict[int, int]:
    """member → inviter."""
    async with harness.db.read() as s:
        stmt = select(Referral)
        if group_id is not None:
            stmt = stmt.where(Referral.group_id == group_id)
        return {r.user_id: r.inviter_id for r in await s.scalars(stmt)}


def refresher(harness) -> PostRefresher:
    return harness.app.dispatcher["posts"]


# ---------------------------------------------------------------- /invite


async def test_invite_creates_a_link_named_after_the_member_and_reuses_it(harness) -> None:
    group_id = await add_group(harness)
    await add_member(harness, group_id, ALICE)

    reply = await harness.say(ALICE, "/invite", expect=1)
    [call] = harness.api.of(CreateChatInviteLink)
    assert call.chat_id == GROUP.id and call.name == "Alice Smith"
    async with harness.db.read() as s:
        [row] = (await s.scalars(select(InviteLink))).all()
    assert (row.group_id, row.user_id, row.name) == (group_id, ALICE.id, "Alice Smith")
    assert "Your personal invite link to Fruit Lovers:" in reply.text and row.link in reply.text

    again = await harness.say(ALICE, "/invite", expect=1)
    assert row.link in again.text
    assert len(harness.api.of(CreateChatInviteLink)) == 1  # reused, not created again


async def test_long_names_are_cut_to_32_characters(harness) -> None:
    group_id = await add_group(harness)
    long = person(610, "Bartholomew-Alexander", last_name="Montgomery-Featherstonehaugh 王小明")
    await add_member(harness, group_id, long)
    await harness.say(long, "/invite", expect=1)
    [call] = harness.api.of(CreateChatInviteLink)
    assert 0 < len(call.name.encode("utf-16-le")) // 2 <= 32
    assert call.name.startswith("Bartholomew-Alexander Montgomery")


async def test_member_of_two_groups_picks_one_and_forged_choices_are_refused(harness) -> None:
    first = await add_group(harness, GROUP)
    second = await add_group(harness, OTHER)
    await add_member(harness, first, BOB)
    await add_member(harness, second, BOB)

    picker = await harness.say(BOB, "/invite", expect=1)
    data = [b.callback_data for row in picker.reply_markup.inline_keyboard for b in row]
    assert data == [InviteCB(group_id=first).pack(), InviteCB(group_id=second).pack()]
    assert harness.api.of(CreateChatInviteLink) == []

    answer = await harness.tap(BOB, InviteCB(group_id=second).pack())
    assert not answer.show_alert
    [call] = harness.api.of(CreateChatInviteLink)
    assert call.chat_id == OTHER.id
    assert "Veggie Club" in harness.last(BOB).text

    # a group Carol is not in (Telegram says she left), and a group that does not exist
    harness.api.members[(GROUP.id, CAROL.id)] = ChatMemberLeft(user=CAROL)
    for forged in (first, 999_999):
        data = InviteCB(group_id=forged).pack()
        refused = await harness.tap(CAROL, data)
        assert refused.show_alert and "not in that group" in refused.text
    for data in (f"inv:{2**40}", "inv:0", "inv:-1"):  # out of range: answered, not unpacked
        refused = await harness.tap(CAROL, data)
        assert refused.show_alert and "out of date" in refused.text
    assert len(harness.api.of(CreateChatInviteLink)) == 1
    async with harness.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(InviteLink)) == 1


async def test_invite_from_a_group_button_checks_membership_with_telegram(harness) -> None:
    group_id = await add_group(harness)
    # Dave is unknown to the bot: /invite in private cannot guess his groups
    unknown = await harness.say(DAVE, "/invite", expect=1)
    assert "Send /invite in your group" in unknown.text

    await harness.send(DAVE, "/invite", GROUP)
    [reply] = harness.api.sent(GROUP.id)
    [[button]] = reply.reply_markup.inline_keyboard
    assert button.url == f"https://t.me/tuan_test_bot?start=inv_{group_id}"

    link = await harness.say(DAVE, f"/start inv_{group_id}", expect=1)
    assert any(isinstance(r, GetChatMember) and r.user_id == DAVE.id for r in harness.api.requests)
    [call] = harness.api.of(CreateChatInviteLink)
    assert call.chat_id == GROUP.id and "Your personal invite link" in link.text
    async with harness.db.read() as s:
        member = await s.get(Membership, (group_id, DAVE.id))
        started = (await s.get(User, DAVE.id)).started
    assert member is not None and member.status == "member" and started

    # someone who is not in the group, and forged payloads
    harness.api.members[(GROUP.id, CAROL.id)] = ChatMemberLeft(user=CAROL)
    for payload in (f"inv_{group_id}", "inv_999999", "inv_x", "inv_99999999999999"):
        refused = await harness.say(CAROL, f"/start {payload}", expect=1)
        assert "not in that group" in refused.text
    assert len(harness.api.of(CreateChatInviteLink)) == 1


async def test_bot_not_admin_tells_member_and_owner_once(harness) -> None:
    group_id = await add_group(harness, bot_is_admin=False)
    await add_member(harness, group_id, ALICE)
    await add_member(harness, group_id, BOB)
    harness.api.fail_next(
        "bad_request", CreateChatInviteLink, message="Bad Request: CHAT_ADMIN_REQUIRED", times=2
    )

    reply = await harness.say(ALICE, "/invite", expect=1)
    assert "I am not an administrator of Fruit Lovers" in reply.text
    assert (
        "make @tuan_test_bot an administrator of Fruit Lovers with the “Invite users via link” "
        "right" in reply.text
    )
    assert "I have told the group's admins." in reply.text
    await harness.app.settle()
    [notice] = harness.api.texts(OWNER.id)
    assert "asked me for a personal invite link" in notice and "Fruit Lovers" in notice
    assert "make @tuan_test_bot an administrator of Fruit Lovers" in notice

    second = await harness.say(BOB, "/invite", expect=1)  # not spammed: the owner was told today
    assert "I am not an administrator" in second.text
    await harness.app.settle()
    assert len(harness.api.texts(OWNER.id)) == 1
    async with harness.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(InviteLink)) == 0


async def test_bot_without_invite_right_says_which_right_to_turn_on(harness) -> None:
    group_id = await add_group(harness)
    harness.api.admins[GROUP.id][-1] = admin_member(harness.api.me, can_invite=False)
    await add_member(harness, group_id, ALICE)
    harness.api.fail_next(
        "bad_request", CreateChatInviteLink, message="Bad Request: not enough rights"
    )

    reply = await harness.say(ALICE, "/invite", expect=1)
    assert "without the “Invite users via link” right" in reply.text
    assert "turn on “Invite users via link”" in reply.text
    await harness.app.settle()
    [notice] = harness.api.texts(OWNER.id)
    assert "without the “Invite users via link” right" in notice

    # once the owner fixed it, the next /invite works
    link = await harness.say(ALICE, "/invite", expect=1)
    assert "Your personal invite link" in link.text


async def test_bot_removed_from_group_and_owner_never_started(harness) -> None:
    group_id = await add_group(harness)
    async with harness.db.transaction() as s:
        (await s.get(User, OWNER.id)).started = False
    await add_member(harness, group_id, ALICE)
    harness.api.fail_next(
        "forbidden", CreateChatInviteLink, message="Forbidden: bot was kicked from the chat"
    )
    reply = await harness.say(ALICE, "/invite", expect=1)
    assert "I am not an administrator of Fruit Lovers" in reply.text
    assert "Please pass this on to the group's owner." in reply.text
    await harness.app.settle()
    assert harness.api.texts(OWNER.id) == []


# ---------------------------------------------------------------- crediting joins


async def test_join_through_a_link_credits_the_inviter_exactly_once(harness) -> None:
    group_id = await add_group(harness)
    alice_link = await stored_link(harness, group_id, ALICE)
    bob_link = await stored_link(harness, group_id, BOB)

    update = join(harness, CAROL, alice_link)
    await harness.feed(update)
    await harness.feed(update)  # the same update delivered again: skipped
    await harness.feed(join(harness, CAROL, alice_link, old="member"))  # a duplicate event
    await harness.feed(join(harness, CAROL, alice_link))  # same join, another update id
    assert await credits(harness) == {CAROL.id: ALICE.id}

    # Carol leaves and comes back through Bob's link: still Alice's, once
    await harness.feed(harness.updates.chat_member(GROUP, CAROL, "member", "left"))
    await harness.feed(join(harness, CAROL, bob_link))
    assert await credits(harness) == {CAROL.id: ALICE.id}
    async with harness.db.read() as s:
        [row] = (await s.scalars(select(Referral))).all()
        link_row = await s.get(InviteLink, row.invite_link_id)
    assert link_row.link == alice_link and row.joined_at is not None


async def test_joins_that_credit_nobody(harness) -> None:
    group_id = await add_group(harness)
    other_id = await add_group(harness, OTHER)
    alice_link = await stored_link(harness, group_id, ALICE)
    foreign = await stored_link(harness, other_id, BOB)
    revoked = await stored_link(harness, group_id, DAVE)
    async with harness.db.transaction() as s:
        row = await s.scalar(select(InviteLink).where(InviteLink.link == revoked))
        await referrals.revoke_invite(s, row.id, utcnow())
    old_timer = person(620, "Olga")
    await add_member(harness, group_id, old_timer, status="left")  # seen here before

    await harness.feed(join(harness, A_BOT, alice_link))  # bots
    await harness.feed(join(harness, ALICE, alice_link))  # her own link
    await harness.feed(join(harness, person(621), "https://t.me/+nobodyknows"))  # unknown
    await harness.feed(join(harness, person(622), foreign))  # a link of another group
    await harness.feed(join(harness, person(623), revoked))  # revoked
    await harness.feed(join(harness, person(624), None))  # no link at all
    await harness.feed(join(harness, old_timer, alice_link))  # a re-join
    # a promotion (not a join) through the link's update shape
    await add_member(harness, group_id, CAROL)
    await harness.feed(
        harness.updates.chat_member(
            GROUP, CAROL, "member", "administrator", actor=OWNER, invite_link=via(alice_link)
        )
    )
    assert await credits(harness) == {}
    # the members were still recorded (as before), bots not
    async with harness.db.read() as s:
        members = set(await s.scalars(select(Membership.user_id)))
    assert {ALICE.id, 621, 622, 623, 624, old_timer.id} <= members and A_BOT.id not in members


async def test_concurrent_joins_count_exactly(harness) -> None:
    group_id = await add_group(harness)
    inviters = [person(700 + i) for i in range(3)]
    links = [await stored_link(harness, group_id, p) for p in inviters]
    newcomers = [person(800 + i) for i in range(40)]
    updates = []
    for i, member in enumerate(newcomers):
        first = join(harness, member, links[i % 3])
        updates += [first, first]  # each update delivered twice, at the same time
        if i % 4 == 0:  # and some joins reported again in another update
            updates.append(join(harness, member, links[(i + 1) % 3]))
    results = await asyncio.gather(*(harness.feed(u) for u in updates), return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)]

    got = await credits(harness, group_id)
    assert len(got) == len(newcomers)
    per_inviter = {p.id: sum(1 for v in got.values() if v == p.id) for p in inviters}
    assert per_inviter == {p.id: len(range(i, 40, 3)) for i, p in enumerate(inviters)}


# ---------------------------------------------------------------- /invites


async def test_owner_sees_who_invited_whom(harness) -> None:
    group_id = await add_group(harness)
    alice_link = await stored_link(harness, group_id, ALICE)
    bob_link = await stored_link(harness, group_id, BOB)
    for user, link in ((CAROL, alice_link), (DAVE, alice_link), (person(630, "Erin"), bob_link)):
        await harness.feed(join(harness, user, link))
    # names known to the bot (the inviters used /invite; here they are remembered directly)
    async with harness.db.transaction() as s:
        s.add_all([User(id=ALICE.id, first_name="Alice"), User(id=BOB.id, first_name="Bob")])

    report = await harness.say(OWNER, "/invites", expect=1)
    text = report.text
    assert "<b>Invites to Fruit Lovers</b>" in text
    assert "3 members joined through personal invite links." in text
    assert text.index("1. Alice · 2") < text.index("2. Bob · 1")
    assert "Carol ← Alice (" in text and "Erin ← Bob (" in text and "Dave ← Alice (" in text

    # not an owner: refused, also with a forged button
    assert "Only owners and administrators" in (await harness.say(CAROL, "/invites", expect=1)).text
    refused = await harness.tap(CAROL, InvitesCB(group_id=group_id).pack())
    assert refused.show_alert and "Only owners and administrators" in refused.text
    stale = await harness.tap(OWNER, f"ivs:{2**40}")
    assert stale.show_alert and "out of date" in stale.text


async def test_invites_report_fits_telegram_and_picks_a_group(harness) -> None:
    group_id = await add_group(harness)
    other_id = await add_group(harness, OTHER)
    now = utcnow()
    async with harness.db.transaction() as s:
        link = await referrals.save_invite(s, group_id, ALICE.id, "https://t.me/+a", "A", now)
        for i in range(300):
            s.add(User(id=10_000 + i, first_name="名" * 28 + f"<{i}>"))
            s.add(
                Referral(
                    group_id=group_id,
                    user_id=10_000 + i,
                    inviter_id=10_000 + (i % 20),
                    invite_link_id=link.id,
                    joined_at=now - timedelta(minutes=i),
                )
            )
    picker = await harness.say(OWNER, "/invites", expect=1)
    data = [b.callback_data for row in picker.reply_markup.inline_keyboard for b in row]
    assert data == [InvitesCB(group_id=group_id).pack(), InvitesCB(group_id=other_id).pack()]

    await harness.tap(OWNER, InvitesCB(group_id=group_id).pack())
    text = harness.last(OWNER).text
    assert tg_len(text) <= 4096 and "300 members joined" in text
    assert "&lt;0&gt;" in text and "<0>" not in text  # names escaped
    await harness.tap(OWNER, InvitesCB(group_id=other_id).pack())
    assert "Nobody has joined Veggie Club" in harness.last(OWNER).text

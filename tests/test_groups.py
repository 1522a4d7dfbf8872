"""The bot's life in groups: added and removed, administrators and members changing,
supergroup upgrades, and what /help and /settings say in a group."""

from __future__ import annotations

import pytest
from aiogram.methods import GetChatAdministrators, SendMessage
from aiogram.types import User as TgUser
from sqlalchemy import select, update

from models import Group, GroupAdmin, Membership, User
from tests.builders import group, person, private

OWNER = person(501, "Alice")
HELPER = person(502, "Bob")
MEMBER = person(503, "Carol")
OTHER_BOT = TgUser(id=900_000_001, is_bot=True, first_name="Helper Bot")
BASIC = group(-4001, "Fruit Lovers")  # a basic group: upgrades to a supergroup
SUPER = group(-1001000000555, "Fruit Lovers")  # what BASIC becomes


async def add_bot(harness, chat=BASIC, actor=OWNER, new="administrator", admins=(HELPER,)):
    harness.api.set_admins(chat.id, OWNER, *admins)
    await harness.feed(harness.updates.my_chat_member(chat, actor, "left", new))
    await harness.settle()  # the note to the adder goes through the outbox


async def group_rows(harness) -> list[Group]:
    async with harness.db.read() as s:
        return list((await s.scalars(select(Group).order_by(Group.id))).all())


async def admins_of(harness, group_id: int) -> dict[int, str]:
    async with harness.db.read() as s:
        rows = await s.scalars(select(GroupAdmin).where(GroupAdmin.group_id == group_id))
        return {a.user_id: a.status for a in rows}


async def membership(harness, group_id: int, user_id: int) -> Membership | None:
    async with harness.db.read() as s:
        return await s.get(Membership, (group_id, user_id))


async def set_column(harness, group_id: int, **values) -> None:
    async with harness.db.transaction() as s:
        await s.execute(update(Group).where(Group.id == group_id).values(**values))


# ---------------------------------------------------------------- added


@pytest.mark.parametrize("new", ["member", "administrator"])
async def test_bot_added_registers_group_admins_and_greets(harness, new) -> None:
    await add_bot(harness, new=new, admins=(HELPER, OTHER_BOT))

    [g] = await group_rows(harness)
    assert (g.chat_id, g.title, g.type, g.is_active) == (BASIC.id, "Fruit Lovers", "group", True)
    assert (g.timezone, g.currency, g.language) == ("Asia/Shanghai", "CNY", "en")
    assert g.added_by == OWNER.id and g.admins_refreshed_at is not None
    assert [r.chat_id for r in harness.api.of(GetChatAdministrators)] == [BASIC.id]
    # the bot itself and other bots are not stored as administrators
    assert await admins_of(harness, g.id) == {OWNER.id: "creator", HELPER.id: "administrator"}

    [greeting] = harness.api.texts(BASIC.id)
    assert "Hello, Fruit Lovers!" in greeting and "/settings" in greeting
    assert ("make me an administrator" in greeting) is (new == "member")
    [note] = harness.api.texts(OWNER.id)
    assert note.startswith("You added me to Fruit Lovers.")


async def test_chinese_adder_sets_group_language_and_is_greeted_in_chinese(harness) -> None:
    adder = person(OWNER.id, "小王", language="zh-hans")
    await add_bot(harness, actor=adder, new="member")

    [g] = await group_rows(harness)
    assert g.language == "zh_Hans" and g.timezone == "Asia/Shanghai" and g.currency == "CNY"
    [greeting] = harness.api.texts(BASIC.id)
    assert greeting.startswith("大家好，Fruit Lovers！") and "请把我设为管理员" in greeting
    assert harness.api.texts(OWNER.id)[0].startswith("你把我加进了 Fruit Lovers。")


async def test_title_is_escaped_in_greeting(harness) -> None:
    await add_bot(harness, chat=group(-4002, "<b>Fish & Chips</b>"))
    greeting = harness.api.texts(-4002)[0]
    assert "&lt;b&gt;Fish &amp; Chips&lt;/b&gt;" in greeting and "<b>" not in greeting


async def test_adder_who_blocked_the_bot_still_gets_group_registered(harness) -> None:
    harness.api.fail_next("forbidden", SendMessage, chat_id=OWNER.id, message="Forbidden: blocked")
    await add_bot(harness)

    [g] = await group_rows(harness)
    assert g.is_active and await admins_of(harness, g.id) == {
        OWNER.id: "creator",
        HELPER.id: "administrator",
    }
    assert len(harness.api.texts(BASIC.id)) == 1  # the group was greeted anyway
    assert len(harness.api.sent(OWNER.id)) == 1  # the attempt that failed (now parked)


async def test_promoting_the_bot_does_not_greet_again(harness) -> None:
    await add_bot(harness, new="member")
    harness.api.clear()
    await harness.feed(harness.updates.my_chat_member(BASIC, OWNER, "member", "administrator"))
    assert harness.api.sent() == []
    assert len(harness.api.of(GetChatAdministrators)) == 1  # admins re-read on the change
    assert len(await group_rows(harness)) == 1


async def test_group_that_refuses_the_greeting_is_still_registered(harness) -> None:
    harness.api.fail_next("bad_request", SendMessage, chat_id=BASIC.id, message="not enough rights")
    await add_bot(harness, new="member")
    [g] = await group_rows(harness)
    assert g.is_active and len(await admins_of(harness, g.id)) == 2
    assert len(harness.api.texts(OWNER.id)) == 1  # the adder was still told


async def test_admin_list_that_could_not_be_fetched_is_fetched_later(harness) -> None:
    harness.api.fail_next("network", GetChatAdministrators)
    await add_bot(harness)
    [g] = await group_rows(harness)
    assert g.is_active and g.admins_refreshed_at is None
    assert await admins_of(harness, g.id) == {}

    await harness.send(HELPER, "/settings", BASIC)
    assert "start=settings" in harness.last(BASIC).text
    assert len(harness.api.of(GetChatAdministrators)) == 2
    assert set(await admins_of(harness, g.id)) == {OWNER.id, HELPER.id}


# ---------------------------------------------------------------- removed and re-added


@pytest.mark.parametrize("gone", ["left", "kicked"])
async def test_removed_then_readded_keeps_group_and_settings(harness, gone) -> None:
    await add_bot(harness)
    [g] = await group_rows(harness)
    await set_column(harness, g.id, timezone="Europe/Berlin", currency="EUR")

    await harness.feed(harness.updates.my_chat_member(BASIC, OWNER, "administrator", gone))
    [removed] = await group_rows(harness)
    assert removed.id == g.id and removed.is_active is False
    assert set(await admins_of(harness, g.id)) == {OWNER.id, HELPER.id}

    renamed = group(BASIC.id, "Fruit Lovers 2")
    await harness.feed(harness.updates.my_chat_member(renamed, OWNER, gone, "administrator"))
    [back] = await group_rows(harness)
    assert (back.id, back.is_active, back.title) == (g.id, True, "Fruit Lovers 2")
    assert (back.timezone, back.currency) == ("Europe/Berlin", "EUR")


# ---------------------------------------------------------------- supergroup upgrade


async def _upgrade(harness, order: str) -> None:
    to_msg = harness.updates.message(BASIC, OWNER, None, migrate_to_chat_id=SUPER.id)
    from_msg = harness.updates.message(SUPER, OWNER, None, migrate_from_chat_id=BASIC.id)
    for update_ in (to_msg, from_msg) if order == "to_first" else (from_msg, to_msg):
        await harness.feed(update_)


@pytest.mark.parametrize("order", ["to_first", "from_first"])
async def test_supergroup_upgrade_keeps_group_settings_admins_members(harness, order) -> None:
    await add_bot(harness)
    [g] = await group_rows(harness)
    await set_column(harness, g.id, timezone="Europe/Berlin")
    await harness.feed(harness.updates.chat_member(BASIC, MEMBER, "left", "member"))

    await _upgrade(harness, order)

    [after] = await group_rows(harness)
    assert (after.id, after.chat_id, after.type) == (g.id, SUPER.id, "supergroup")
    assert after.timezone == "Europe/Berlin" and after.is_active
    assert set(await admins_of(harness, g.id)) == {OWNER.id, HELPER.id}
    assert (await membership(harness, g.id, MEMBER.id)).status == "member"

    # the group now answers under its new id, and admins are recognised there
    harness.api.clear()
    await harness.send(HELPER, "/settings", SUPER)
    assert "start=settings" in harness.api.texts(SUPER.id)[0]
    assert harness.api.of(GetChatAdministrators) == []


async def test_upgrade_merges_a_supergroup_row_registered_first(harness) -> None:
    await add_bot(harness, admins=(HELPER,))
    [original] = await group_rows(harness)
    await set_column(harness, original.id, timezone="Europe/Berlin", language="zh_Hans")
    await harness.feed(harness.updates.chat_member(BASIC, MEMBER, "left", "member"))

    # Telegram shows the bot in the new supergroup before the migration message arrives
    newcomer = person(504, "Dan")
    await add_bot(harness, chat=SUPER, admins=(HELPER, newcomer))
    assert len(await group_rows(harness)) == 2
    await harness.feed(harness.updates.chat_member(SUPER, MEMBER, "member", "left"))
    await harness.feed(harness.updates.chat_member(SUPER, newcomer, "left", "member"))

    await _upgrade(harness, "to_first")

    [merged] = await group_rows(harness)
    assert (merged.id, merged.chat_id) == (original.id, SUPER.id)
    assert (merged.timezone, merged.language) == ("Europe/Berlin", "zh_Hans")  # original wins
    admins = await admins_of(harness, original.id)
    assert admins == {OWNER.id: "creator", HELPER.id: "administrator", newcomer.id: "administrator"}
    assert (await membership(harness, original.id, MEMBER.id)).status == "member"
    assert (await membership(harness, original.id, newcomer.id)).status == "member"

    # the group's language (not the duplicate's) is used in the new chat at once
    harness.api.clear()
    await harness.send(MEMBER, "/help", SUPER)
    assert "查看帮助" in harness.api.texts(SUPER.id)[0]


async def test_migration_message_caches_the_group_language_for_the_new_chat(harness) -> None:
    await add_bot(harness)
    [g] = await group_rows(harness)
    await set_column(harness, g.id, language="zh_Hans")
    await _upgrade(harness, "from_first")  # the new chat is looked up before it has a row
    await harness.send(MEMBER, "/help", SUPER)
    assert "查看帮助" in harness.last(SUPER).text


async def test_replaying_the_migration_is_harmless(harness) -> None:
    await add_bot(harness)
    [g] = await group_rows(harness)
    to_msg = harness.updates.message(BASIC, OWNER, None, migrate_to_chat_id=SUPER.id)
    await harness.feed(to_msg)
    await harness.feed(to_msg)  # the same update delivered twice
    await _upgrade(harness, "to_first")  # and the pair once more
    [after] = await group_rows(harness)
    assert (after.id, after.chat_id, after.is_active) == (g.id, SUPER.id, True)
    assert set(await admins_of(harness, g.id)) == {OWNER.id, HELPER.id}


async def test_migration_of_an_unknown_chat_creates_nothing(harness) -> None:
    await _upgrade(harness, "to_first")
    assert await group_rows(harness) == []


# ---------------------------------------------------------------- chat_member


async def test_promoted_member_is_admin_at_once(harness) -> None:
    await add_bot(harness, admins=())
    [g] = await group_rows(harness)
    await harness.send(MEMBER, "/settings", BASIC)
    assert "Only the owner" in harness.last(BASIC).text

    await harness.feed(harness.updates.promoted(BASIC, MEMBER, OWNER))
    assert await admins_of(harness, g.id) == {OWNER.id: "creator", MEMBER.id: "administrator"}
    await harness.send(MEMBER, "/settings", BASIC)
    assert harness.last(BASIC).text.endswith("https://t.me/tuan_test_bot?start=settings")
    assert len(harness.api.of(GetChatAdministrators)) == 1  # the stored row was enough


@pytest.mark.parametrize("new", ["member", "left", "kicked"])
async def test_demoted_or_departed_admin_loses_rights_at_once(harness, new) -> None:
    await add_bot(harness)  # Telegram (the fake) keeps listing HELPER: no refetch must happen
    [g] = await group_rows(harness)
    await harness.feed(
        harness.updates.chat_member(BASIC, HELPER, "administrator", new, actor=OWNER)
    )
    assert await admins_of(harness, g.id) == {OWNER.id: "creator"}
    assert (await membership(harness, g.id, HELPER.id)).status == new

    await harness.send(HELPER, "/settings", BASIC)
    assert "Only the owner" in harness.last(BASIC).text
    assert len(harness.api.of(GetChatAdministrators)) == 1


async def test_joins_and_leaves_are_recorded(harness) -> None:
    await add_bot(harness)
    [g] = await group_rows(harness)

    await harness.feed(harness.updates.chat_member(BASIC, MEMBER, "left", "member"))
    joined = await membership(harness, g.id, MEMBER.id)
    assert (joined.status, joined.left_at) == ("member", None) and joined.joined_at is not None

    await harness.feed(harness.updates.chat_member(BASIC, MEMBER, "member", "left"))
    left = await membership(harness, g.id, MEMBER.id)
    assert left.status == "left" and left.joined_at == joined.joined_at
    assert left.left_at is not None and left.left_at >= left.joined_at

    await harness.feed(harness.updates.chat_member(BASIC, MEMBER, "left", "member"))
    back = await membership(harness, g.id, MEMBER.id)
    assert (back.status, back.left_at) == ("member", None) and back.joined_at >= left.left_at
    assert await admins_of(harness, g.id) == {OWNER.id: "creator", HELPER.id: "administrator"}


async def test_bots_are_not_recorded_as_members_or_admins(harness) -> None:
    await add_bot(harness)
    [g] = await group_rows(harness)
    await harness.feed(harness.updates.chat_member(BASIC, OTHER_BOT, "left", "member"))
    await harness.feed(harness.updates.promoted(BASIC, OTHER_BOT, OWNER))
    async with harness.db.read() as s:
        assert (await s.scalars(select(Membership))).all() == []
    assert set(await admins_of(harness, g.id)) == {OWNER.id, HELPER.id}


async def test_chat_member_in_an_unknown_group_is_ignored(harness) -> None:
    await harness.feed(harness.updates.chat_member(BASIC, MEMBER, "left", "member"))
    async with harness.db.read() as s:
        assert (await s.scalars(select(Membership))).all() == []
    assert await group_rows(harness) == []


# ---------------------------------------------------------------- /help and /settings in a group


async def test_help_in_group_fits_role(harness) -> None:
    await add_bot(harness)
    await harness.send(HELPER, "/help", BASIC)
    await harness.send(MEMBER, "/help", BASIC)
    admin_help, member_help = harness.api.texts(BASIC.id)[-2:]
    assert "You administer this group" in admin_help
    assert "You administer this group" not in member_help
    assert "Open a private chat with me" in member_help


async def test_settings_in_group_refuses_members_and_links_admins(harness) -> None:
    await add_bot(harness)
    await harness.send(MEMBER, "/settings", BASIC)
    await harness.send(OWNER, "/settings", BASIC)
    refusal, link = harness.api.texts(BASIC.id)[-2:]
    assert refusal == "Only the owner and administrators of this group can change its settings."
    assert "https://t.me/tuan_test_bot?start=settings" in link


async def test_group_speaks_its_language_whatever_the_reader_speaks(harness) -> None:
    await add_bot(harness)
    await harness.send(person(505, "小李", language="zh"), "/help", BASIC)
    assert "/help: this help" in harness.last(BASIC).text


async def test_commands_addressed_to_another_bot_are_ignored(harness) -> None:
    await add_bot(harness)
    harness.api.clear()
    await harness.send(OWNER, "/settings@other_bot", BASIC)
    await harness.send(OWNER, "/help@other_bot", BASIC)
    assert harness.api.sent() == []
    await harness.send(OWNER, "/help@tuan_test_bot", BASIC)
    assert "You administer this group" in harness.last(BASIC).text


async def test_settings_in_unknown_group_is_refused(harness) -> None:
    await harness.send(OWNER, "/settings", BASIC)
    assert "Only the owner" in harness.api.texts(BASIC.id)[0]


# ---------------------------------------------------------------- private chat status


async def test_blocking_and_unblocking_the_bot_in_private(harness) -> None:
    await harness.send(MEMBER, "/start")
    chat = private(MEMBER)
    await harness.feed(harness.updates.my_chat_member(chat, MEMBER, "member", "kicked"))
    async with harness.db.read() as s:
        assert (await s.get(User, MEMBER.id)).started is False
    await harness.feed(harness.updates.my_chat_member(chat, MEMBER, "kicked", "member"))
    async with harness.db.read() as s:
        assert (await s.get(User, MEMBER.id)).started is True
    assert await group_rows(harness) == []  # a private chat is never taken for a group

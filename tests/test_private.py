"""Private chat: /start, the language choice, /help fitted to the reader, and the hints."""

from __future__ import annotations

import pytest
from aiogram.types import Location
from sqlalchemy import select

from models import Group, User
from tests.builders import group, person

ALICE = person(501, "Alice")
BOB = person(502, "Bob")
OPERATOR = person(42, "Olga")  # ADMIN_IDS=42 in the settings fixture


async def add_bot(harness, chat, owner, *admins) -> None:
    harness.api.set_admins(chat.id, owner, *admins)
    await harness.feed(harness.updates.my_chat_member(chat, owner, "left", "administrator"))


async def stored_user(harness, user_id: int) -> User:
    async with harness.db.read() as s:
        return await s.get(User, user_id)


async def _groups(harness) -> list[Group]:
    async with harness.db.read() as s:
        return list((await s.scalars(select(Group).order_by(Group.id))).all())


# ---------------------------------------------------------------- /start


async def test_start_without_groups_invites_to_add_the_bot(harness) -> None:
    await harness.send(ALICE, "/start")
    [reply] = harness.api.sent(ALICE.id)
    assert reply.text.startswith("Hello, Alice! I am Tuan")
    assert "add me to your group and make me an admin" in reply.text
    assert "Groups you run with me" not in reply.text
    assert harness.callbacks(reply) == ["lang:en", "lang:zh_Hans"]
    assert (await stored_user(harness, ALICE.id)).started is True


async def test_start_lists_groups_with_role(harness) -> None:
    await add_bot(harness, group(-4001, "Apples"), ALICE)
    await add_bot(harness, group(-4002, "Bananas"), BOB, ALICE)
    await add_bot(harness, group(-4003, "Cherries"), ALICE)
    await add_bot(harness, group(-4004, "Dates"), BOB)  # Alice is not an admin there
    await harness.feed(harness.updates.my_chat_member(group(-4003), ALICE, "administrator", "left"))
    harness.api.clear()

    reply = (await harness.say(ALICE, "/start")).text
    assert "Groups you run with me:\n• Apples (owner)\n• Bananas (admin)\n" in reply
    assert "Cherries" not in reply and "Dates" not in reply  # inactive, not hers
    assert "add me to your group" not in reply and "/settings" in reply


async def test_start_escapes_names(harness) -> None:
    mallory = person(503, "<i>Mal</i>")
    await add_bot(harness, group(-4005, "A & B"), mallory)
    reply = (await harness.say(mallory, "/start")).text
    assert "Hello, &lt;i&gt;Mal&lt;/i&gt;!" in reply and "• A &amp; B (owner)" in reply


async def test_start_settings_deep_link_opens_the_group_list(harness) -> None:
    await add_bot(harness, group(-4001, "Apples"), ALICE)
    [g] = await _groups(harness)
    await harness.send(ALICE, "/start settings")
    [reply] = harness.api.sent(ALICE.id)[-1:]
    assert reply.text == "Choose a group:" and harness.callbacks(reply) == [f"set:open:{g.id}"]
    assert (await stored_user(harness, ALICE.id)).started is True


# ---------------------------------------------------------------- language


async def test_choosing_chinese_is_stored_and_used_from_then_on(harness) -> None:
    assert "this help" in (await harness.say(ALICE, "/help")).text
    await harness.feed(harness.updates.callback(ALICE, "lang:zh_Hans"))

    assert (await stored_user(harness, ALICE.id)).language == "zh_Hans"
    [answer] = harness.api.answers()
    assert answer.text == "语言已设为简体中文。" and not answer.show_alert
    assert harness.last(ALICE).text.startswith("语言已设为简体中文。")

    assert "查看帮助" in (await harness.say(ALICE, "/help")).text
    assert "我不认识这个命令" in (await harness.say(ALICE, "/foo")).text
    assert ((await harness.say(ALICE, "/start")).text).startswith("你好，Alice！")


async def test_lang_command_offers_the_keyboard(harness) -> None:
    await harness.send(ALICE, "/lang")
    [reply] = harness.api.sent(ALICE.id)
    assert reply.text == "Choose your language:" and harness.callbacks(reply) == [
        "lang:en",
        "lang:zh_Hans",
    ]


@pytest.mark.parametrize(
    ("code", "expected"),
    [("zh-hans", "查看帮助"), ("zh", "查看帮助"), ("de", "/help: this help"), (None, "this help")],
)
async def test_telegram_language_code_without_a_choice(harness, code, expected) -> None:
    user = person(510, "Li", language=code)
    assert expected in (await harness.say(user, "/help")).text
    assert (await stored_user(harness, user.id)).language is None


async def test_choice_overrides_telegram_language_code(harness) -> None:
    wang = person(511, "小王", language="zh-hans")
    assert "查看帮助" in (await harness.say(wang, "/help")).text
    await harness.feed(harness.updates.callback(wang, "lang:en"))
    assert harness.api.answers()[-1].text == "Language set to English."
    assert "/help: this help" in (await harness.say(wang, "/help")).text
    assert (await stored_user(harness, wang.id)).language == "en"


async def test_forged_language_is_refused_with_an_alert(harness) -> None:
    await harness.feed(harness.updates.callback(ALICE, "lang:xx"))
    [answer] = harness.api.answers()
    assert answer.show_alert is True and "out of date" in answer.text
    assert (await stored_user(harness, ALICE.id)).language is None
    assert harness.api.sent(ALICE.id) == []
    assert "this help" in (await harness.say(ALICE, "/help")).text


# ---------------------------------------------------------------- /help


async def test_help_for_a_plain_member(harness) -> None:
    reply = (await harness.say(BOB, "/help")).text
    assert "/start: welcome and your groups" in reply and "/lang: choose your language" in reply
    assert "/settings:" not in reply and "Run a community?" in reply
    assert "Bot operators" not in reply


async def test_help_for_an_owner(harness) -> None:
    await add_bot(harness, group(-4001, "Apples"), ALICE)
    reply = (await harness.say(ALICE, "/help")).text
    assert "For group owners and admins" in reply
    assert "/settings: timezone, currency and language of your groups" in reply
    assert "Run a community?" not in reply and "Bot operators" not in reply


async def test_help_for_an_owner_of_a_group_the_bot_left(harness) -> None:
    await add_bot(harness, group(-4001, "Apples"), ALICE)
    await harness.feed(harness.updates.my_chat_member(group(-4001), ALICE, "administrator", "left"))
    reply = (await harness.say(ALICE, "/help")).text
    assert "/settings:" not in reply and "Run a community?" in reply


async def test_help_for_an_operator(harness) -> None:
    reply = (await harness.say(OPERATOR, "/help")).text
    assert "<b>Bot operators</b>" in reply and "/status:" in reply
    assert "/settings:" not in reply  # runs no group


async def test_help_for_an_operator_in_chinese(harness) -> None:
    operator = person(42, "Olga", language="zh-hans")
    reply = (await harness.say(operator, "/help")).text
    assert "机器人运营者" in reply and "/status" in reply


# ---------------------------------------------------------------- hints and callbacks


async def test_unknown_command_and_stray_messages_get_a_hint(harness) -> None:
    assert (await harness.say(ALICE, "/foo")).text == (
        "I don't know that command. Send /help to see what I can do."
    )
    assert (await harness.say(ALICE, "hello there")).text == "Send /help to see what I can do."
    location = Location(latitude=31.23, longitude=121.47)
    await harness.send(ALICE, None, location=location)
    assert harness.last(ALICE).text == "Send /help to see what I can do."


async def test_group_chatter_gets_no_hint(harness) -> None:
    await add_bot(harness, group(-4001, "Apples"), ALICE)
    harness.api.clear()
    await harness.send(BOB, "hello everyone", group(-4001))
    await harness.send(BOB, "/foo", group(-4001))
    assert harness.api.sent() == []


async def test_every_callback_is_answered(harness) -> None:
    await add_bot(harness, group(-4001, "Apples"), ALICE)
    [g] = await _groups(harness)
    harness.api.clear()
    data = [
        "lang:en",
        "lang:zh_Hans",
        "lang:xx",
        f"set:open:{g.id}",
        "set:list:0",
        f"set:bogus:{g.id}",
        "set:open:999999",
        "set:open:notanumber",  # does not parse: no handler matches it
        "gone:42",  # a button of a feature that no longer exists
    ]
    for item in data:
        await harness.feed(harness.updates.callback(ALICE, item))
    answered = [a.callback_query_id for a in harness.api.answers()]
    assert len(answered) == len(data) and len(set(answered)) == len(data)

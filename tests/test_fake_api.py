"""The fake Bot API session itself: the other tests are only as good as it is."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
)
from aiogram.methods import EditMessageText, GetChatAdministrators, SendMessage, SendPhoto
from aiogram.types import (
    ChatMemberAdministrator,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberOwner,
)

from tests.builders import Updates, person, private
from tests.conftest import TOKEN
from tests.fake_api import BOT_ID, BOT_USERNAME, FakeTelegram, chat_for

GROUP_ID = -1001000000901


@pytest.fixture
async def api():
    return FakeTelegram()


@pytest.fixture
async def bot(api):
    bot = Bot(token=TOKEN, session=api)
    yield bot
    await bot.session.close()


async def test_get_me(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (BOT_ID, BOT_USERNAME, True)


async def test_message_ids_increase_per_chat(bot: Bot, api: FakeTelegram) -> None:
    a = [(await bot.send_message(1, f"a{i}")).message_id for i in range(3)]
    b = [(await bot.send_message(GROUP_ID, "b")).message_id for _ in range(2)]
    photo = await bot.send_photo(1, photo="file-id", caption="pic")
    assert a == [1, 2, 3]
    assert b == [1, 2]
    assert photo.message_id == 4 and photo.caption == "pic"
    assert (await bot.send_message(GROUP_ID, "again")).message_id == 3


async def test_sent_message_looks_like_telegrams(bot: Bot) -> None:
    msg = await bot.send_message(GROUP_ID, "hello")
    assert msg.text == "hello"
    assert msg.chat.id == GROUP_ID and msg.chat.type == "supergroup"
    assert msg.from_user is not None and msg.from_user.id == BOT_ID
    assert abs(msg.date.timestamp() - time.time()) < 5
    private_chat = (await bot.send_message(5, "hi")).chat
    assert private_chat.type == "private"
    assert chat_for(-12345).type == "group"


async def test_requests_are_recorded_and_filtered(bot: Bot, api: FakeTelegram) -> None:
    seen = []
    api.on_request = seen.append
    await bot.send_message(1, "one")
    await bot.send_message(2, "two")
    await bot.send_photo(1, photo="x")
    assert api.texts() == ["one", "two"]
    assert api.texts(1) == ["one"] and api.texts(2) == ["two"]
    assert [r.chat_id for r in api.sent(2)] == [2]
    assert len(api.of(SendPhoto)) == 1
    assert len(seen) == len(api.requests) == len(api.times) == 3
    assert api.times == sorted(api.times)
    api.clear()
    assert api.requests == [] and api.texts() == []


async def test_retry_after_only_for_next_matching_request(bot: Bot, api: FakeTelegram) -> None:
    api.fail_next("retry_after", SendMessage, retry_after=3)
    await bot.get_me()  # another method does not use up the fault
    await bot.edit_message_text("x", chat_id=1, message_id=1)
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(1, "hi")
    assert info.value.retry_after == 3
    assert (await bot.send_message(1, "hi")).message_id == 1  # the failed one used no id
    assert len(api.sent()) == 2  # the failed request is recorded too


async def test_forbidden(bot: Bot, api: FakeTelegram) -> None:
    api.fail_next("forbidden", SendMessage)
    with pytest.raises(TelegramForbiddenError, match="kicked"):
        await bot.send_message(GROUP_ID, "hi")
    api.fail_next("forbidden", message="Forbidden: bot was blocked by the user")
    with pytest.raises(TelegramForbiddenError, match="blocked by the user"):
        await bot.send_message(7, "hi")
    await bot.send_message(7, "hi")


async def test_network_error(bot: Bot, api: FakeTelegram) -> None:
    api.fail_next("network")  # any method
    with pytest.raises(TelegramNetworkError):
        await bot.get_chat_administrators(GROUP_ID)
    assert await bot.get_chat_administrators(GROUP_ID) == []


async def test_bad_request(bot: Bot, api: FakeTelegram) -> None:
    api.fail_next("bad_request", EditMessageText, message="Bad Request: message is not modified")
    await bot.send_message(1, "unaffected")
    with pytest.raises(TelegramBadRequest, match="not modified"):
        await bot.edit_message_text("same", chat_id=1, message_id=1)


async def test_chat_id_filter(bot: Bot, api: FakeTelegram) -> None:
    api.fail_next("forbidden", SendMessage, chat_id=5)
    await bot.send_message(6, "other chat")  # not matched
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(5, "target")
    await bot.send_message(5, "target again")  # used up


async def test_times_and_order_of_faults(bot: Bot, api: FakeTelegram) -> None:
    api.fail_next("retry_after", SendMessage, times=2, retry_after=2)
    api.fail_next("network", SendMessage)
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(1, "x")
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(1, "x")
    assert (await bot.send_message(1, "x")).message_id == 1


async def test_get_chat_administrators_returns_configured_admins(
    bot: Bot, api: FakeTelegram
) -> None:
    owner, helper = person(1, "Owner"), person(2, "Helper")
    api.set_admins(GROUP_ID, owner, helper)
    admins = await bot.get_chat_administrators(GROUP_ID)
    assert [(type(a), a.user.id) for a in admins] == [
        (ChatMemberOwner, 1),
        (ChatMemberAdministrator, 2),
        (ChatMemberAdministrator, BOT_ID),
    ]
    assert all(a.can_invite_users for a in admins if isinstance(a, ChatMemberAdministrator))

    api.set_admins(GROUP_ID - 1, owner, bot_is_admin=False)
    assert [a.user.id for a in await bot.get_chat_administrators(GROUP_ID - 1)] == [1]
    assert await bot.get_chat_administrators(-42) == []
    assert len(api.of(GetChatAdministrators)) == 3


async def test_get_chat_member(bot: Bot, api: FakeTelegram) -> None:
    owner = person(1, "Owner")
    api.set_admins(GROUP_ID, owner)
    api.members[(GROUP_ID, 3)] = ChatMemberLeft(user=person(3))
    assert isinstance(await bot.get_chat_member(GROUP_ID, 1), ChatMemberOwner)
    assert (await bot.get_chat_member(GROUP_ID, 3)).status == "left"
    other = await bot.get_chat_member(GROUP_ID, 99)
    assert isinstance(other, ChatMemberMember) and other.user.id == 99


async def test_invite_links_are_distinct_and_named(bot: Bot) -> None:
    first = await bot.create_chat_invite_link(GROUP_ID, name="ref-1")
    second = await bot.create_chat_invite_link(GROUP_ID, name="ref-2")
    assert first.invite_link != second.invite_link
    assert (first.name, second.name) == ("ref-1", "ref-2")


async def test_edit_returns_the_edited_message(bot: Bot) -> None:
    edited = await bot.edit_message_text("new", chat_id=GROUP_ID, message_id=7)
    assert (edited.message_id, edited.text, edited.chat.id) == (7, "new", GROUP_ID)
    assert edited.edit_date is not None
    assert await bot.edit_message_text("inline", inline_message_id="abc") is True


async def test_get_updates_serves_until_confirmed(bot: Bot, api: FakeTelegram) -> None:
    updates = Updates(start=10)
    user = person(1)
    api.push_update(*(updates.message(private(user), user, f"m{i}") for i in range(3)))
    assert [u.update_id for u in await bot.get_updates(offset=0)] == [10, 11, 12]
    assert [u.update_id for u in await bot.get_updates(offset=0)] == [10, 11, 12]  # unconfirmed
    assert [u.update_id for u in await bot.get_updates(offset=12)] == [12]
    assert [u.update_id for u in await bot.get_updates(offset=11, limit=1)] == [12]
    started = time.monotonic()
    assert await bot.get_updates(offset=13, timeout=5) == []
    assert time.monotonic() - started < 2  # the fake's long poll is short


async def test_long_poll_returns_when_an_update_arrives(bot: Bot, api: FakeTelegram) -> None:
    user = person(1)
    waiting = asyncio.create_task(bot.get_updates(offset=0, timeout=5))
    await asyncio.sleep(0.05)
    api.push_update(Updates(start=50).message(private(user), user, "late"))
    assert [u.update_id for u in await asyncio.wait_for(waiting, 2)] == [50]


async def test_block_holds_sends_until_released(bot: Bot, api: FakeTelegram) -> None:
    api.block = asyncio.Event()
    sending = asyncio.create_task(bot.send_message(1, "held"))
    await asyncio.sleep(0.05)
    assert not sending.done() and api.requests == []
    api.block.set()
    assert (await asyncio.wait_for(sending, 2)).text == "held"

"""/settings in private chat: the owner sets a group's timezone, currency and language;
every step re-checks on the server who may do it; the wizard survives a restart."""

from __future__ import annotations

from aiogram.methods import GetChatAdministrators
from aiogram.types import Location
from sqlalchemy import select

from bot.factory import create_app
from bot.runner import process
from models import FsmState, Group
from tests.builders import group, person, private
from tests.conftest import make_settings
from tests.fake_api import FakeTelegram

OWNER = person(501, "Alice")
HELPER = person(502, "Bob")
MEMBER = person(503, "Carol")
CHAT = group(-4001, "Fruit Lovers")


async def add_bot(harness, chat=CHAT) -> Group:
    harness.api.set_admins(chat.id, OWNER, HELPER)
    await harness.feed(harness.updates.my_chat_member(chat, OWNER, "left", "administrator"))
    return await load(harness, chat.id)


async def load(harness, chat_id: int = CHAT.id) -> Group:
    async with harness.db.read() as s:
        return await s.scalar(select(Group).where(Group.chat_id == chat_id))


async def fsm_rows(harness) -> list[FsmState]:
    async with harness.db.read() as s:
        return list((await s.scalars(select(FsmState))).all())


# ---------------------------------------------------------------- the flow


async def test_full_flow_timezone_currency_language(harness) -> None:
    g = await add_bot(harness)
    await add_bot(harness, group(-4002, "Apples"))
    apples = await load(harness, -4002)
    harness.api.clear()

    await harness.send(OWNER, "/settings")
    [listing] = harness.api.sent(OWNER.id)
    assert listing.text == "Choose a group:"
    assert harness.callbacks(listing) == [f"set:open:{apples.id}", f"set:open:{g.id}"]  # by title

    await harness.tap(OWNER, f"set:open:{g.id}")
    card = harness.last(OWNER)
    assert card.text.startswith("<b>Settings of Fruit Lovers</b>")
    assert "Timezone: Asia/Shanghai" in card.text and "Currency: CNY" in card.text
    assert harness.callbacks(card) == [
        f"set:tz:{g.id}",
        f"set:cur:{g.id}",
        f"set:lang:{g.id}",
        f"mod:open:{g.id}:0",  # protection from spam (tests/test_moderation.py)
        "set:list:0",
    ]

    await harness.tap(OWNER, f"set:tz:{g.id}")
    prompt = harness.last(OWNER)
    assert "Send the timezone of Fruit Lovers" in prompt.text
    assert harness.callbacks(prompt) == [f"set:cancel:{g.id}"]
    reply = (await harness.say(OWNER, "Europe/Berlin")).text
    assert reply.startswith("Saved.") and "Timezone: Europe/Berlin" in reply
    assert (await load(harness)).timezone == "Europe/Berlin"

    await harness.tap(OWNER, f"set:cur:{g.id}")
    assert "ISO 4217" in harness.last(OWNER).text
    assert "Currency: USD" in (await harness.say(OWNER, " usd ")).text
    assert (await load(harness)).currency == "USD"

    await harness.tap(OWNER, f"set:lang:{g.id}")
    assert harness.callbacks(harness.last(OWNER)) == [
        f"glang:{g.id}:en",
        f"glang:{g.id}:zh_Hans",
    ]
    answer = await harness.tap(OWNER, f"glang:{g.id}:zh_Hans")
    assert answer.text == "Saved." and not answer.show_alert
    assert "Language: 简体中文" in harness.last(OWNER).text  # card in Alice's language
    saved = await load(harness)
    assert (saved.timezone, saved.currency, saved.language) == ("Europe/Berlin", "USD", "zh_Hans")
    assert (await load(harness, -4002)).timezone == "Asia/Shanghai"  # the other group untouched

    # the group speaks Chinese at once (the locale cache was updated)
    await harness.send(MEMBER, "/help", CHAT)
    assert "查看帮助" in harness.last(CHAT).text
    assert all(a.callback_query_id for a in harness.api.answers())
    assert await fsm_rows(harness) == []  # nothing left half-done


async def test_back_to_list_and_cancel(harness) -> None:
    g = await add_bot(harness)
    await harness.tap(OWNER, f"set:tz:{g.id}")
    answer = await harness.tap(OWNER, f"set:cancel:{g.id}")
    assert answer.text == "Cancelled."
    assert "Settings of Fruit Lovers" in harness.last(OWNER).text
    assert (await harness.say(OWNER, "Europe/Berlin")).text == "Send /help to see what I can do."
    assert (await load(harness)).timezone == "Asia/Shanghai"

    await harness.tap(OWNER, "set:list:0")
    assert harness.last(OWNER).text == "Choose a group:"


async def test_settings_without_groups(harness) -> None:
    reply = (await harness.say(MEMBER, "/settings")).text
    assert reply.startswith("You don't run any group with me yet.")


# ---------------------------------------------------------------- bad input


async def test_unknown_timezone_is_explained_and_the_step_kept(harness) -> None:
    g = await add_bot(harness)
    await harness.tap(OWNER, f"set:tz:{g.id}")
    error = (await harness.say(OWNER, "Mars/Base")).text
    assert "“Mars/Base” is not a timezone I know" in error
    assert "<code>Asia/Shanghai</code>" in error and "<code>Europe/Berlin</code>" in error
    assert (await load(harness)).timezone == "Asia/Shanghai"
    assert "is not a timezone" in (await harness.say(OWNER, "<b>UTC+8</b>")).text
    assert "“&lt;b&gt;UTC+8&lt;/b&gt;”" in harness.last(OWNER).text

    # still waiting for a timezone: a valid one (any case) is accepted
    assert "Timezone: America/New_York" in (await harness.say(OWNER, "america/new_york")).text
    assert (await load(harness)).timezone == "America/New_York"


async def test_unknown_currency_is_explained(harness) -> None:
    g = await add_bot(harness)
    await harness.tap(OWNER, f"set:cur:{g.id}")
    for bad in ("XY1", "dollar", "XYZ"):
        error = (await harness.say(OWNER, bad)).text
        assert f"“{bad}” is not an ISO 4217 currency code" in error
        assert "<code>USD</code>" in error and "<code>CNY</code>" in error
    assert (await load(harness)).currency == "CNY"
    assert "Currency: HKD" in (await harness.say(OWNER, "hkd")).text


async def test_forged_language_code_is_refused(harness) -> None:
    g = await add_bot(harness)
    answer = await harness.tap(OWNER, f"glang:{g.id}:xx")
    assert answer.show_alert and "out of date" in answer.text
    assert (await load(harness)).language == "en"


async def test_wizard_asks_for_text(harness) -> None:
    g = await add_bot(harness)
    await harness.tap(OWNER, f"set:tz:{g.id}")
    location = Location(latitude=52.52, longitude=13.40)
    reply = (await harness.say(OWNER, None, location=location)).text
    assert reply == "Please send the value as text, or tap Cancel."
    assert "Timezone: Europe/Berlin" in (await harness.say(OWNER, "Europe/Berlin")).text


async def test_commands_during_the_wizard_are_not_taken_as_values(harness) -> None:
    g = await add_bot(harness)
    await harness.tap(OWNER, f"set:cur:{g.id}")
    assert "this help" in (await harness.say(OWNER, "/help")).text
    assert (await load(harness)).currency == "CNY"
    assert "Currency: EUR" in (await harness.say(OWNER, "EUR")).text  # still in the step


# ---------------------------------------------------------------- authorization


async def test_non_admin_forged_buttons_are_refused(harness) -> None:
    g = await add_bot(harness)
    refusal = "Only the owner and administrators of a group can change its settings."
    for data in (f"set:open:{g.id}", f"set:tz:{g.id}", f"set:cur:{g.id}", f"glang:{g.id}:zh_Hans"):
        answer = await harness.tap(MEMBER, data)
        assert (answer.text, answer.show_alert) == (refusal, True)
    assert harness.api.sent(MEMBER.id) == []
    assert await fsm_rows(harness) == []  # no wizard was started
    assert (await harness.say(MEMBER, "Europe/Berlin")).text == "Send /help to see what I can do."
    g = await load(harness)
    assert (g.timezone, g.currency, g.language) == ("Asia/Shanghai", "CNY", "en")


async def test_unknown_and_inactive_groups_are_refused(harness) -> None:
    g = await add_bot(harness)
    gone = "That group is unknown or I am no longer in it."
    # an id of no group is answered like a group one does not run: ids reveal nothing
    refusal = "Only the owner and administrators of a group can change its settings."
    assert (await harness.tap(OWNER, "set:tz:999999")).text == refusal
    assert (await harness.tap(OWNER, "glang:999999:en")).text == refusal
    assert (await harness.tap(MEMBER, f"set:tz:{g.id}")).text == refusal

    await harness.feed(harness.updates.my_chat_member(CHAT, OWNER, "administrator", "kicked"))
    for data in (f"set:open:{g.id}", f"set:tz:{g.id}", f"glang:{g.id}:zh_Hans"):
        answer = await harness.tap(OWNER, data)
        assert (answer.text, answer.show_alert) == (gone, True)
    assert (await load(harness)).language == "en"
    assert (await harness.say(OWNER, "/settings")).text == (
        "You don't run any group with me yet. Add me to your group and make me an admin, "
        "then send /settings again."
    )


async def test_group_removed_mid_wizard(harness) -> None:
    g = await add_bot(harness)
    await harness.tap(OWNER, f"set:tz:{g.id}")
    await harness.feed(harness.updates.my_chat_member(CHAT, OWNER, "administrator", "left"))
    assert (await harness.say(OWNER, "Europe/Berlin")).text == (
        "That group is unknown or I am no longer in it."
    )
    assert (await load(harness)).timezone == "Asia/Shanghai"
    assert await fsm_rows(harness) == []  # the wizard ended


async def test_stored_admin_list_is_used_within_its_lifetime(harness) -> None:
    g = await add_bot(harness)
    harness.api.set_admins(CHAT.id, OWNER)  # Telegram now says Bob is not an admin...
    await harness.say(HELPER, "/settings")
    await harness.tap(HELPER, f"set:tz:{g.id}")
    assert "Timezone: Asia/Tokyo" in (await harness.say(HELPER, "Asia/Tokyo")).text
    assert len(harness.api.of(GetChatAdministrators)) == 1  # ...but the cache is fresh


async def test_expired_admin_list_is_fetched_again(database_url, tmp_path, db, harness) -> None:
    settings = make_settings(database_url, tmp_path, admin_cache_seconds=0)
    api = FakeTelegram()
    app = create_app(settings, session=api, db=db)
    updates = harness.updates  # keep update ids unique across both apps
    try:
        api.set_admins(CHAT.id, OWNER, HELPER)
        await process(app, updates.my_chat_member(CHAT, OWNER, "left", "administrator"))
        g = await load(harness)
        await process(app, updates.callback(HELPER, f"set:tz:{g.id}"))
        assert not api.answers()[-1].show_alert
        fetched = len(api.of(GetChatAdministrators))

        api.set_admins(CHAT.id, OWNER)  # Bob is demoted; no chat_member update arrived
        for data in (f"set:tz:{g.id}", f"glang:{g.id}:zh_Hans"):
            await process(app, updates.callback(HELPER, data))
            assert api.answers()[-1].show_alert and "Only the owner" in api.answers()[-1].text
        # and the wizard he had started does not accept his value any more
        await process(app, updates.message(private(HELPER), HELPER, "Europe/Berlin"))
        assert api.texts(HELPER.id)[-1].startswith("Only the owner")
        assert len(api.of(GetChatAdministrators)) >= fetched + 3
        saved = await load(harness)
        assert (saved.timezone, saved.language) == ("Asia/Shanghai", "en")
    finally:
        await app.close()


async def test_wizard_survives_a_restart(harness, settings, db) -> None:
    g = await add_bot(harness)
    await harness.tap(OWNER, f"set:tz:{g.id}")
    assert [r.state for r in await fsm_rows(harness)] == ["SettingsForm:timezone"]

    api = FakeTelegram()  # a new process: new Dispatcher, new memory, same database
    app = create_app(settings, session=api, db=db)
    try:
        update = harness.updates.message(private(OWNER), OWNER, "Europe/Berlin")
        await process(app, update)
        assert "Timezone: Europe/Berlin" in api.texts(OWNER.id)[-1]
    finally:
        await app.close()
    assert (await load(harness)).timezone == "Europe/Berlin"
    assert await fsm_rows(harness) == []

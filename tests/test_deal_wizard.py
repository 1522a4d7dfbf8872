"""/newdeal: the wizard through the real Dispatcher — buttons and typed input, Back, Cancel,
a restart in the middle, every refused input (which stays on its step and creates nothing),
owners only, forged buttons, and local times in Asia/Shanghai and across Berlin's DST change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.methods import SendPhoto
from aiogram.types import Location, PhotoSize
from sqlalchemy import func, select, update

from bot.factory import create_app
from bot.runner import process
from handlers.callbacks import WizardCB
from models import Deal, DealPost, Group
from tests.builders import group, person, private
from tests.fake_api import FakeTelegram

OWNER = person(501, "Alice")
STRANGER = person(502, "Bob")
SHANGHAI = group(-1001000000777, "Fruit Lovers")
BERLIN = group(-1001000000888, "Berliner Runde")
ELSEWHERE = group(-1001000000999, "Not Yours")


# ---------------------------------------------------------------- helpers


async def add_group(harness, chat=SHANGHAI, owner=OWNER, timezone: str | None = None) -> int:
    harness.api.set_admins(chat.id, owner)
    await harness.feed(harness.updates.my_chat_member(chat, owner, "left", "administrator"))
    async with harness.db.transaction() as s:
        row = await s.scalar(select(Group).where(Group.chat_id == chat.id))
        if timezone:
            row.timezone = timezone
        return row.id


def cb(step: str, action: str, value: str = "") -> str:
    return WizardCB(step=step, action=action, value=value).pack()


def key(harness, user=OWNER) -> StorageKey:
    return StorageKey(bot_id=harness.app.bot.id, chat_id=user.id, user_id=user.id)


async def fsm(harness, user=OWNER) -> tuple[str | None, dict[str, Any]]:
    storage = harness.app.dispatcher.storage
    return await storage.get_state(key(harness, user)), await storage.get_data(key(harness, user))


async def at_step(harness, step: str, draft: dict[str, Any], user=OWNER, **extra) -> None:
    storage = harness.app.dispatcher.storage
    await storage.set_state(key(harness, user), f"DealWizard:{step}")
    await storage.set_data(key(harness, user), {"draft": draft, **extra})


async def deal_count(harness) -> int:
    async with harness.db.read() as s:
        return await s.scalar(select(func.count()).select_from(Deal))


async def settle(harness) -> None:
    await harness.app.settle()
    await harness.settle()


def full_draft(group_id: int, now: datetime, **changes) -> dict[str, Any]:
    draft = {
        "title": "Mangoes",
        "group_ids": [group_id],
        "description": "",
        "photo": None,
        "price": 1250,
        "currency": "CNY",
        "tiers": [],
        "min_kind": None,
        "min_value": None,
        "stock": None,
        "limit": None,
        "closes_at": (now + timedelta(days=1)).isoformat(),
        "opens_at": None,
        "pickup": "",
    }
    draft.update(changes)
    return draft


# ---------------------------------------------------------------- the whole path


async def test_full_wizard_with_buttons_and_typed_input_publishes(harness) -> None:
    gid = await add_group(harness)
    harness.api.clear()

    text = (await harness.say(OWNER, "/newdeal")).text
    assert "step 1 of 13" in text and "title" in text
    assert {"« Back", "✖ Cancel"} <= set(harness.buttons(harness.last(OWNER)))

    text = (await harness.say(OWNER, "Hainan <b>mangoes</b> *5 kg*")).text
    assert "Which of your groups" in text
    kb = harness.buttons(harness.last(OWNER))
    assert kb["✅ Fruit Lovers"] == cb("groups", "toggle", str(gid))  # the only group, selected
    await harness.tap(OWNER, cb("groups", "done"))
    assert "description" in harness.last(OWNER).text

    await harness.say(OWNER, "Sweet & ripe <i>from Hainan</i>")
    assert "photo" in harness.last(OWNER).text
    photo = [
        PhotoSize(file_id="small", file_unique_id="s", width=90, height=90),
        PhotoSize(file_id="large", file_unique_id="l", width=1280, height=1280),
    ]
    await harness.send(OWNER, None, photo=photo)
    text = harness.last(OWNER).text
    assert "unit price in CNY" in text

    assert "tiers" in (await harness.say(OWNER, "¥12.5")).text
    assert "minimum to succeed" in (await harness.say(OWNER, "10:11.00, 20:9.90")).text
    await harness.tap(OWNER, cb("minimum", "kind", "units"))
    assert "How many units must be ordered" in harness.last(OWNER).text
    assert "supply in total" in (await harness.say(OWNER, "10")).text
    assert "one person" in (await harness.say(OWNER, "50")).text
    text = (await harness.say(OWNER, "3")).text
    assert "When does the deal close?" in text and "Asia/Shanghai" in text
    assert "+2 hours" in harness.buttons(harness.last(OWNER))

    await harness.tap(OWNER, cb("closes", "pick", "2h"))
    assert "When does the deal open?" in harness.last(OWNER).text
    await harness.tap(OWNER, cb("opens", "now"))
    assert "Reminders in the groups before the deal closes" in harness.last(OWNER).text
    assert "Keep default (2 h and 15 min)" in harness.buttons(harness.last(OWNER))
    assert "pickup or delivery" in (await harness.say(OWNER, "3h, 30m")).text
    preview = (await harness.say(OWNER, "Gate 3 <script>, Saturday")).text

    assert preview.startswith("<b>Preview</b>")
    assert "Hainan &lt;b&gt;mangoes&lt;/b&gt; *5 kg*" in preview
    assert "Sweet &amp; ripe &lt;i&gt;from Hainan&lt;/i&gt;" in preview
    assert "Gate 3 &lt;script&gt;, Saturday" in preview
    assert "<script>" not in preview and "<i>from" not in preview
    assert "Price: CN¥12.50 per unit" in preview
    assert "from 10 units: CN¥11.00, from 20 units: CN¥9.90" in preview
    assert "Minimum to succeed: 10 units" in preview
    assert "Stock: 50 units" in preview and "Per person: at most 3 units" in preview
    assert "Opens: now" in preview and "Closes: " in preview and "(Asia/Shanghai)" in preview
    assert "Groups: Fruit Lovers" in preview and "Photo: attached" in preview
    assert "Reminders: 3 h, 30 min before closing" in preview
    assert set(harness.buttons(harness.last(OWNER))) == {
        "🌍 Cards: open to anyone", "✅ Publish", "« Back", "✖ Cancel",
    }  # fmt: skip

    started = datetime.now(UTC)
    answer = await harness.tap(OWNER, cb("preview", "publish"))
    assert answer.text == "Done."
    assert "Deal D1 is created and is being posted to 1 group." in harness.last(OWNER).text
    await settle(harness)

    async with harness.db.read() as s:
        deal = await s.scalar(select(Deal))
        posts = (await s.scalars(select(DealPost))).all()
    assert deal.owner_id == OWNER.id and deal.status == "open"
    assert deal.title == "Hainan <b>mangoes</b> *5 kg*"
    assert deal.description == "Sweet & ripe <i>from Hainan</i>"
    assert deal.photo_file_id == "large"
    assert (deal.unit_price, deal.currency, deal.tiers) == (1250, "CNY", "[[10, 1100], [20, 990]]")
    assert (deal.min_kind, deal.min_value, deal.stock_total, deal.stock_left) == (
        "units", 10, 50, 50,
    )  # fmt: skip
    assert deal.per_person_limit == 3 and deal.pickup_note == "Gate 3 <script>, Saturday"
    assert deal.reminders == "180,30"
    closes = deal.closes_at.replace(tzinfo=UTC) if deal.closes_at.tzinfo is None else deal.closes_at
    assert timedelta(hours=2) <= closes - started <= timedelta(hours=2, minutes=1)  # rounded up
    assert closes.second == 0 and closes.microsecond == 0
    assert [(p.deal_id, p.group_id) for p in posts] == [(deal.id, gid)]
    assert posts[0].message_id is not None  # bot/posts.py sent it
    [card] = [r for r in harness.api.of(SendPhoto) if r.chat_id == SHANGHAI.id]
    assert card.photo == "large"
    assert await fsm(harness) == (None, {})


async def test_back_on_a_middle_step_keeps_values_and_cancel_discards(harness) -> None:
    await add_group(harness)
    await harness.say(OWNER, "/newdeal")
    await harness.say(OWNER, "Mangoes")
    await harness.tap(OWNER, cb("groups", "done"))
    await harness.tap(OWNER, cb("description", "skip"))
    await harness.tap(OWNER, cb("photo", "skip"))
    await harness.say(OWNER, "12.50")
    assert (await fsm(harness))[0] == "DealWizard:tiers"

    await harness.tap(OWNER, cb("tiers", "back"))  # back to the price: it shows the current value
    text = harness.last(OWNER).text
    assert "unit price" in text and "Current: CN¥12.50" in text
    assert "Keep current" in harness.buttons(harness.last(OWNER))
    await harness.tap(OWNER, cb("price", "back"))
    assert (await fsm(harness))[0] == "DealWizard:photo"
    await harness.tap(OWNER, cb("photo", "skip"))
    await harness.tap(OWNER, cb("price", "keep"))
    state, data = await fsm(harness)
    assert state == "DealWizard:tiers" and data["draft"]["price"] == 1250

    # a button of an earlier step does nothing to the current one
    answer = await harness.tap(OWNER, cb("price", "keep"))
    assert "earlier step" in answer.text
    assert (await fsm(harness))[0] == "DealWizard:tiers"

    answer = await harness.tap(OWNER, cb("tiers", "cancel"))
    assert answer.text == "Cancelled."
    assert "discarded" in harness.last(OWNER).text
    assert await fsm(harness) == (None, {})
    assert await deal_count(harness) == 0
    # the wizard is over: typing now gets the general hint
    assert "/help" in (await harness.say(OWNER, "10:11.00")).text
    answer = await harness.tap(OWNER, cb("tiers", "skip"))
    assert "no longer open" in answer.text


async def test_back_on_the_first_step_and_minimum_sub_step(harness) -> None:
    gid = await add_group(harness)
    await harness.say(OWNER, "/newdeal")
    answer = await harness.tap(OWNER, cb("title", "back"))
    assert answer.text == "This is the first step."
    assert (await fsm(harness))[0] == "DealWizard:title"
    now = datetime.now(UTC)
    await at_step(harness, "min_value", full_draft(gid, now, min_kind="participants"))
    assert "at least 1" in ((await harness.say(OWNER, "0")).text)
    await harness.tap(OWNER, cb("min_value", "back"))
    assert (await fsm(harness))[0] == "DealWizard:minimum"
    await harness.tap(OWNER, cb("minimum", "skip"))  # "No minimum"
    state, data = await fsm(harness)
    assert state == "DealWizard:stock" and data["draft"]["min_kind"] is None
    await harness.tap(OWNER, cb("stock", "back"))  # no minimum kind: straight back to the choice
    assert (await fsm(harness))[0] == "DealWizard:minimum"


async def test_draft_survives_a_restart(harness) -> None:
    gid = await add_group(harness)
    await harness.say(OWNER, "/newdeal")
    await harness.say(OWNER, "Lychees")
    await harness.tap(OWNER, cb("groups", "done"))
    await harness.say(OWNER, "Fresh from Guangdong")
    await harness.tap(OWNER, cb("photo", "skip"))
    assert (await fsm(harness))[0] == "DealWizard:price"

    # the process restarts: a new app on the same database
    api = FakeTelegram()
    app = create_app(harness.app.settings, session=api, db=harness.db, clock=harness.clock)
    try:
        updates = harness.updates
        await process(app, updates.message(private(OWNER), OWNER, "9.90"))
        assert "tiers" in api.texts(OWNER.id)[-1]
        await process(app, updates.callback(OWNER, cb("tiers", "skip")))
        assert "minimum" in api.texts(OWNER.id)[-1]
        data = await app.dispatcher.storage.get_data(key(harness))
    finally:
        await app.dispatcher.storage.close()
        await app.dispatcher["posts"].close()
    draft = data["draft"]
    assert draft["title"] == "Lychees" and draft["description"] == "Fresh from Guangdong"
    assert draft["group_ids"] == [gid] and draft["price"] == 990 and draft["tiers"] == []


async def test_newdeal_with_a_draft_offers_to_continue_or_start_over(harness) -> None:
    await add_group(harness)
    await harness.say(OWNER, "/newdeal")
    await harness.say(OWNER, "Lychees")
    text = (await harness.say(OWNER, "/newdeal")).text
    assert "unfinished deal, “Lychees”" in text
    kb = harness.buttons(harness.last(OWNER))
    await harness.tap(OWNER, kb["Continue"])
    assert "Which of your groups" in harness.last(OWNER).text
    await harness.tap(OWNER, kb["Start over"])
    state, data = await fsm(harness)
    assert state == "DealWizard:title" and data == {"draft": {}}


# ---------------------------------------------------------------- who may


async def test_non_owner_is_refused(harness) -> None:
    await add_group(harness)  # Alice's group; Bob administers nothing
    text = (await harness.say(STRANGER, "/newdeal")).text
    assert "Only owners and administrators" in text and "Add me to your group" in text
    assert await fsm(harness, STRANGER) == (None, {})


async def test_forged_group_toggle_is_refused(harness) -> None:
    mine = await add_group(harness)
    theirs = await add_group(harness, ELSEWHERE, owner=STRANGER)
    await harness.say(OWNER, "/newdeal")
    await harness.say(OWNER, "Mangoes")
    answer = await harness.tap(OWNER, cb("groups", "toggle", str(theirs)))
    assert answer.show_alert and "not an owner or administrator" in answer.text
    answer = await harness.tap(OWNER, cb("groups", "toggle", "junk"))
    assert answer.show_alert
    assert (await fsm(harness))[1]["draft"]["group_ids"] == [mine]
    # a draft naming someone else's group is refused at publishing, too
    now = datetime.now(UTC)
    await at_step(harness, "preview", full_draft(theirs, now))
    await harness.tap(OWNER, cb("preview", "publish"))
    assert "no longer run some of the chosen groups" in harness.last(OWNER).text
    assert (await fsm(harness))[0] == "DealWizard:groups"
    assert await deal_count(harness) == 0


async def test_toggling_groups_and_done_without_any(harness) -> None:
    first = await add_group(harness)
    second = await add_group(harness, BERLIN, timezone="Europe/Berlin")
    await harness.say(OWNER, "/newdeal")
    await harness.say(OWNER, "Mangoes")
    kb = harness.buttons(harness.last(OWNER))
    assert "▫️ Fruit Lovers" in kb and "▫️ Berliner Runde" in kb  # several groups: none chosen
    answer = await harness.tap(OWNER, cb("groups", "done"))
    assert answer.show_alert and "at least one group" in answer.text
    await harness.tap(OWNER, cb("groups", "toggle", str(second)))
    await harness.tap(OWNER, cb("groups", "toggle", str(first)))
    await harness.tap(OWNER, cb("groups", "toggle", str(second)))
    await harness.tap(OWNER, cb("groups", "toggle", str(second)))
    assert (await fsm(harness))[1]["draft"]["group_ids"] == [first, second]
    await harness.tap(OWNER, cb("groups", "done"))
    assert (await fsm(harness))[0] == "DealWizard:description"


# ---------------------------------------------------------------- refused input


NOW = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)

BAD_INPUT = [
    ("title", "x" * 101, "at most 100"),
    ("price", "0", "more than zero"),
    ("price", "-5", "more than zero"),
    ("price", "12.345", "2 decimal places"),
    ("price", "12.5.6", "not a price I understand"),
    ("price", "12.50 XYZ", "not a currency code I know"),
    ("tiers", "10:13.00, 20:9.90", "must fall"),
    ("tiers", "10:11.00, 20:11.50", "must fall"),
    ("tiers", "20:11.00, 10:9.90", "must rise"),
    ("min_value", "0", "at least 1"),
    ("min_value", "-3", "at least 1"),
    ("min_value", "10001", "too large"),
    ("stock", "0", "at least 1"),
    ("stock", "-1", "at least 1"),
    ("stock", "99999", "too large"),
    ("stock", "5", "below the minimum"),
    ("limit", "0", "at least 1"),
    ("limit", "lots", "whole number"),
    ("closes", "2026-02-30 20:00", "date does not exist"),
    ("closes", "25:61", "hours go from 00 to 23"),
    ("closes", "2026-12-01 25:61", "hours go from 00 to 23"),
    ("closes", "2026-11-19 20:00", "already passed"),
    ("closes", "someday", "not a time I understand"),
    ("opens", "+3d", "must open before it closes"),
    ("opens", "2026-11-19 20:00", "already passed"),
]


@pytest.mark.parametrize(("step", "typed", "reason"), BAD_INPUT)
async def test_bad_input_stays_on_the_step(harness, step, typed, reason) -> None:
    gid = await add_group(harness)
    harness.clock.set(NOW)
    draft = full_draft(
        gid, NOW, min_kind="units", min_value=10, tiers=[] if step == "tiers" else [[10, 1100]]
    )
    await at_step(harness, step, draft)
    harness.api.clear()

    text = (await harness.say(OWNER, typed)).text

    assert reason in text
    assert "for example" in text.lower() or "Choose" in text or "lower the minimum" in text
    kb = harness.buttons(harness.last(OWNER))
    assert {"« Back", "✖ Cancel"} <= set(kb)
    assert await fsm(harness) == (f"DealWizard:{step}", {"draft": draft})
    assert await deal_count(harness) == 0


async def test_quick_pick_in_the_past_is_refused(harness) -> None:
    gid = await add_group(harness)
    late = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)  # 21:00 in Shanghai
    harness.clock.set(late)
    draft = full_draft(gid, late)
    await at_step(harness, "closes", draft)
    await harness.tap(OWNER, cb("closes", "back"))
    await harness.tap(OWNER, cb("limit", "skip"))
    assert "Tonight 20:00" not in harness.buttons(harness.last(OWNER))  # too late today
    await harness.tap(OWNER, cb("closes", "pick", "tonight"))  # an old button
    assert "already passed" in harness.last(OWNER).text
    assert (await fsm(harness))[0] == "DealWizard:closes"


async def test_photo_step_wants_a_photo_and_text_steps_want_text(harness) -> None:
    gid = await add_group(harness)
    now = datetime.now(UTC)
    await at_step(harness, "photo", full_draft(gid, now))
    assert "Send a photo" in (await harness.say(OWNER, "here is my photo")).text
    where = Location(latitude=31.2, longitude=121.5)
    await harness.send(OWNER, None, location=where)
    assert "Send a photo" in harness.last(OWNER).text
    assert (await fsm(harness))[0] == "DealWizard:photo"
    await at_step(harness, "price", full_draft(gid, now))
    photo = [PhotoSize(file_id="p", file_unique_id="p", width=9, height=9)]
    await harness.send(OWNER, None, photo=photo)
    assert "as text" in harness.last(OWNER).text
    assert (await fsm(harness))[0] == "DealWizard:price"
    await at_step(harness, "preview", full_draft(gid, now))
    assert "use the buttons" in (await harness.say(OWNER, "publish please")).text
    assert (await fsm(harness))[0] == "DealWizard:preview"


async def test_publishing_after_the_closing_time_passed_goes_back_to_it(harness) -> None:
    gid = await add_group(harness)
    harness.clock.set(NOW)
    await at_step(harness, "preview", full_draft(gid, NOW))
    harness.clock.set(NOW + timedelta(days=2))  # the owner waited too long
    await harness.tap(OWNER, cb("preview", "publish"))
    asked = harness.last(OWNER)
    assert "already passed" in asked.text
    assert (await fsm(harness))[0] == "DealWizard:closes"
    assert await deal_count(harness) == 0
    # the stale time is neither shown as current nor offered to keep
    assert "Keep current" not in harness.buttons(asked) and "Current:" not in asked.text
    answer = await harness.tap(OWNER, cb("closes", "keep"))  # an old Keep current button
    assert "already passed" in harness.last(OWNER).text or answer.show_alert
    assert (await fsm(harness))[0] == "DealWizard:closes"
    # only the closing time is asked: straight back to the preview, then Publish works
    preview = (await harness.say(OWNER, "+3d")).text
    assert preview.startswith("<b>Preview</b>")
    assert (await fsm(harness))[0] == "DealWizard:preview"
    await harness.tap(OWNER, cb("preview", "publish"))
    assert await deal_count(harness) == 1


async def test_an_opening_time_passed_at_publish_is_asked_alone(harness) -> None:
    gid = await add_group(harness)
    harness.clock.set(NOW)
    opens = (NOW + timedelta(hours=1)).isoformat()
    await at_step(harness, "preview", full_draft(gid, NOW, opens_at=opens))
    harness.clock.set(NOW + timedelta(hours=3))  # the opening time has passed
    await harness.tap(OWNER, cb("preview", "publish"))
    asked = harness.last(OWNER)
    assert "already passed" in asked.text and (await fsm(harness))[0] == "DealWizard:opens"
    assert "Keep current" not in harness.buttons(asked)
    await harness.tap(OWNER, cb("opens", "pick", "1h"))
    assert (await fsm(harness))[0] == "DealWizard:preview"  # not reminders, pickup again
    assert await deal_count(harness) == 0


async def test_a_new_closing_time_before_the_opening_asks_the_opening_then_previews(
    harness,
) -> None:
    gid = await add_group(harness)
    harness.clock.set(NOW)
    draft = full_draft(
        gid, NOW, opens_at=(NOW + timedelta(days=3)).isoformat(),
        closes_at=(NOW + timedelta(days=4)).isoformat(),
    )  # fmt: skip
    await at_step(harness, "preview", draft)
    harness.clock.set(NOW + timedelta(days=5))  # both have passed
    await harness.tap(OWNER, cb("preview", "publish"))
    assert (await fsm(harness))[0] == "DealWizard:closes"
    assert "Keep current" not in harness.buttons(harness.last(OWNER))
    await harness.say(OWNER, "+2h")  # the old opening time has passed too: asked next
    assert (await fsm(harness))[0] == "DealWizard:opens"
    assert "Keep current" not in harness.buttons(harness.last(OWNER))
    await harness.tap(OWNER, cb("opens", "now"))
    assert (await fsm(harness))[0] == "DealWizard:preview"


async def test_a_relative_closing_time_is_rounded_up_to_a_whole_minute(harness) -> None:
    gid = await add_group(harness)
    moment = NOW + timedelta(seconds=30, microseconds=5)  # 08:00:30 in Shanghai
    harness.clock.set(moment)
    await at_step(harness, "closes", full_draft(gid, NOW, closes_at=None))
    await harness.say(OWNER, "+1m")  # at least a minute, never the 30 seconds left
    stored = (await fsm(harness))[1]["draft"]["closes_at"]
    assert stored == "2026-11-20T00:02:00+00:00"
    await harness.tap(OWNER, cb("opens", "now"))
    await harness.tap(OWNER, cb("reminders", "skip"))
    preview = (await harness.say(OWNER, "Gate 3")).text
    assert "Closes: 2026-11-20 08:02 (Asia/Shanghai)" in preview  # shown = stored
    await harness.tap(OWNER, cb("preview", "publish"))
    async with harness.db.read() as s:
        deal = await s.scalar(select(Deal))
    assert deal.closes_at.replace(tzinfo=UTC) == datetime(2026, 11, 20, 0, 2, tzinfo=UTC)


async def test_price_step_speaks_the_groups_currency(harness) -> None:
    """A EUR group: the example is in euros, ¥12.5 is refused with the reason, a word is
    answered "send a number"; a JPY group's example has no decimals."""
    gid = await add_group(harness, BERLIN, timezone="Europe/Berlin")
    async with harness.db.transaction() as s:
        await s.execute(update(Group).where(Group.id == gid).values(currency="EUR"))
    draft = full_draft(gid, datetime.now(UTC), price=None, currency=None)
    del draft["price"], draft["currency"]
    await at_step(harness, "photo", draft)
    prompt = (await harness.say(OWNER, "/newdeal")).text  # unfinished: continue
    await harness.tap(OWNER, WizardCB(step="-", action="resume").pack())
    await harness.tap(OWNER, cb("photo", "skip"))
    prompt = harness.last(OWNER).text
    assert "unit price in EUR" in prompt and "<code>€12.50</code>" in prompt
    assert "¥" not in prompt and "CNY" not in prompt

    refused = (await harness.say(OWNER, "¥12.5")).text
    assert "This group uses EUR; send the price in EUR, for example" in refused
    assert "<code>12.50</code> or <code>€12.50</code>" in refused
    assert await fsm(harness) == ("DealWizard:price", {"draft": draft})  # nothing changed
    refused = (await harness.say(OWNER, "abc")).text
    assert "Send a number, for example <code>12.50</code>" in refused
    assert "currency code" not in refused
    assert (await fsm(harness))[0] == "DealWizard:price"

    tiers = (await harness.say(OWNER, "€12.50")).text
    assert "in EUR" in tiers and "10:11.00, 20:9.90" in tiers
    saved = (await fsm(harness))[1]["draft"]
    assert (saved["price"], saved["currency"]) == (1250, "EUR")
    refused = (await harness.say(OWNER, "10:¥11")).text
    assert "This group uses EUR" in refused and (await fsm(harness))[0] == "DealWizard:tiers"

    async with harness.db.transaction() as s:
        await s.execute(update(Group).where(Group.id == gid).values(currency="JPY"))
    await at_step(harness, "price", draft)
    await harness.tap(OWNER, cb("price", "back"))
    await harness.tap(OWNER, cb("photo", "skip"))
    prompt = harness.last(OWNER).text
    assert "unit price in JPY" in prompt and "<code>1250</code> or <code>¥1250</code>" in prompt
    await harness.say(OWNER, "¥1250")
    tiers = harness.last(OWNER).text
    assert "10:1100, 20:990" in tiers
    assert (await fsm(harness))[1]["draft"]["currency"] == "JPY"


# ---------------------------------------------------------------- times


async def test_shanghai_local_time_is_stored_in_utc(harness) -> None:
    gid = await add_group(harness)
    harness.api.clear()
    harness.clock.set(NOW)
    await at_step(harness, "closes", full_draft(gid, NOW, closes_at=None))
    await harness.say(OWNER, "明天 20:00")
    assert (await fsm(harness))[1]["draft"]["closes_at"] == "2026-11-21T12:00:00+00:00"
    await harness.tap(OWNER, cb("opens", "back"))
    await harness.say(OWNER, "2026-12-01 20:00")
    await harness.tap(OWNER, cb("opens", "pick", "tomorrow9"))  # tomorrow 09:00 Shanghai
    assert (await fsm(harness))[1]["draft"]["opens_at"] == "2026-11-21T01:00:00+00:00"
    await harness.tap(OWNER, cb("reminders", "default"))
    preview = (await harness.say(OWNER, "Gate 3")).text
    assert "Closes: 2026-12-01 20:00 (Asia/Shanghai)" in preview
    assert "Opens: 2026-11-21 09:00 (Asia/Shanghai)" in preview
    await harness.tap(OWNER, cb("preview", "publish"))
    assert (
        "scheduled: it will be posted at 2026-11-21 09:00 (Asia/Shanghai)"
        in harness.last(OWNER).text
    )
    await settle(harness)
    async with harness.db.read() as s:
        deal = await s.scalar(select(Deal))
        post = await s.scalar(select(DealPost))
    assert deal.status == "scheduled"
    assert deal.closes_at.replace(tzinfo=UTC) == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert deal.opens_at.replace(tzinfo=UTC) == datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    assert post.message_id is None  # posted when it opens, not now
    assert harness.api.sent(SHANGHAI.id) == [] and harness.api.of(SendPhoto) == []


async def test_berlin_owner_typing_across_the_dst_change(harness) -> None:
    gid = await add_group(harness, BERLIN, timezone="Europe/Berlin")
    before = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
    harness.clock.set(before)
    await at_step(harness, "closes", full_draft(gid, before, closes_at=None))

    # skipped: clocks jump from 02:00 to 03:00
    text = (await harness.say(OWNER, "2026-03-29 02:30")).text
    assert "does not exist" in text and "daylight saving" in text
    assert (await fsm(harness))[0] == "DealWizard:closes"

    await harness.say(OWNER, "2026-03-28 12:00")  # CET, UTC+1
    assert (await fsm(harness))[1]["draft"]["closes_at"] == "2026-03-28T11:00:00+00:00"
    await harness.tap(OWNER, cb("opens", "back"))
    await harness.say(OWNER, "2026-03-30 12:00")  # CEST, UTC+2
    assert (await fsm(harness))[1]["draft"]["closes_at"] == "2026-03-30T10:00:00+00:00"
    await harness.say(OWNER, "2026-03-28 12:00")  # opens before the change, closes after it
    assert (await fsm(harness))[1]["draft"]["opens_at"] == "2026-03-28T11:00:00+00:00"
    await harness.tap(OWNER, cb("reminders", "default"))
    preview = (await harness.say(OWNER, "Alexanderplatz")).text
    assert "Opens: 2026-03-28 12:00 (Europe/Berlin)" in preview
    assert "Closes: 2026-03-30 12:00 (Europe/Berlin)" in preview

    await harness.tap(OWNER, cb("preview", "publish"))
    async with harness.db.read() as s:
        deal = await s.scalar(select(Deal))
    assert deal.status == "scheduled"
    assert deal.opens_at.replace(tzinfo=UTC) == datetime(2026, 3, 28, 11, 0, tzinfo=UTC)
    assert deal.closes_at.replace(tzinfo=UTC) == datetime(2026, 3, 30, 10, 0, tzinfo=UTC)


async def test_price_in_the_first_groups_currency(harness) -> None:
    first = await add_group(harness, BERLIN, timezone="Europe/Berlin")
    second = await add_group(harness)
    async with harness.db.transaction() as s:
        await s.execute(update(Group).where(Group.id == first).values(currency="EUR"))
    await harness.say(OWNER, "/newdeal")
    await harness.say(OWNER, "Brezeln")
    await harness.tap(OWNER, cb("groups", "toggle", str(first)))
    await harness.tap(OWNER, cb("groups", "toggle", str(second)))
    await harness.tap(OWNER, cb("groups", "done"))
    await harness.tap(OWNER, cb("description", "skip"))
    await harness.tap(OWNER, cb("photo", "skip"))
    assert "unit price in EUR" in harness.last(OWNER).text
    await harness.say(OWNER, "12,50")
    draft = (await fsm(harness))[1]["draft"]
    assert (draft["price"], draft["currency"]) == (1250, "EUR")
    # choosing groups again with another first currency drops the price
    for _ in range(4):
        await harness.tap(OWNER, cb((await fsm(harness))[0].split(":")[1], "back"))
    assert (await fsm(harness))[0] == "DealWizard:groups"
    await harness.tap(OWNER, cb("groups", "toggle", str(first)))
    await harness.tap(OWNER, cb("groups", "done"))
    draft = (await fsm(harness))[1]["draft"]
    assert draft["group_ids"] == [second] and "price" not in draft


async def test_double_tap_on_publish_creates_one_deal(harness) -> None:
    gid = await add_group(harness)
    await at_step(harness, "preview", full_draft(gid, datetime.now(UTC)))
    await harness.tap(OWNER, cb("preview", "publish"))
    answer = await harness.tap(OWNER, cb("preview", "publish"))
    assert answer.show_alert and "no longer open" in answer.text
    update = harness.updates.callback(OWNER, cb("preview", "publish"))
    await at_step(harness, "preview", full_draft(gid, datetime.now(UTC)))
    await harness.feed(update)
    await harness.feed(update)  # the same update delivered twice
    await settle(harness)
    assert await deal_count(harness) == 2

"""/deals in private chat: each owner sees only their deals; safe edits after publishing
(description, a later closing time, more stock) and the refused ones; pause and resume;
close now; cancel with confirmation; duplicate through the wizard; forged callbacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import func, select

from handlers.callbacks import OwnerDealCB, WizardCB
from models import Deal, DealPost, Group, Order
from services import deals, orders
from services.timezones import utcnow
from tests.builders import group, person

ALICE = person(501, "Alice")
BOB = person(502, "Bob")
MEMBER = person(601, "Carol")
ALICE_GROUP = group(-1001000000777, "Fruit Lovers")
BOB_GROUP = group(-1001000000888, "Veggie Club")


# ---------------------------------------------------------------- helpers


async def add_group(harness, chat, owner) -> int:
    harness.api.set_admins(chat.id, owner)
    await harness.feed(harness.updates.my_chat_member(chat, owner, "left", "administrator"))
    async with harness.db.read() as s:
        return await s.scalar(select(Group.id).where(Group.chat_id == chat.id))


async def make_deal(harness, owner_id: int, group_id: int, **fields) -> int:
    now = utcnow()
    spec = deals.DealSpec(
        title="Mangoes",
        currency="CNY",
        unit_price=1250,
        closes_at=now + timedelta(hours=2),
        group_ids=[group_id],
    )
    for name, value in fields.items():
        setattr(spec, name, value)
    async with harness.db.transaction() as s:
        return (await deals.create(s, owner_id, spec, now)).id


async def get_deal(harness, deal_id: int) -> Deal:
    async with harness.db.read() as s:
        return await s.get(Deal, deal_id, populate_existing=True)


def od(action: str, deal_id: int = 0, page: int = 0) -> str:
    return OwnerDealCB(action=action, deal_id=deal_id, page=page).pack()


async def state_of(harness, user=ALICE) -> str | None:
    key = StorageKey(bot_id=harness.app.bot.id, chat_id=user.id, user_id=user.id)
    return await harness.app.dispatcher.storage.get_state(key)


@pytest.fixture
async def setup(harness):
    """Alice has two deals in her group, Bob one in his."""
    alice_group = await add_group(harness, ALICE_GROUP, ALICE)
    bob_group = await add_group(harness, BOB_GROUP, BOB)
    first = await make_deal(harness, ALICE.id, alice_group, stock=20, min_kind="units", min_value=5)
    second = await make_deal(harness, ALICE.id, alice_group, title="Lychees <b>fresh</b>")
    bobs = await make_deal(harness, BOB.id, bob_group, title="Cabbages")
    harness.api.clear()
    return harness, first, second, bobs


@pytest.fixture
def touched(harness, monkeypatch) -> list[int]:
    """Deal ids whose group posts were asked to refresh (after commit)."""
    calls: list[int] = []
    monkeypatch.setattr(harness.app.dispatcher["posts"], "touch", calls.append)
    return calls


# ---------------------------------------------------------------- the list


async def test_each_owner_sees_only_their_deals_newest_first(setup) -> None:
    harness, first, second, bobs = setup
    async with harness.db.transaction() as s:
        await orders.set_quantity(s, first, MEMBER.id, 3, utcnow())

    text = (await harness.say(ALICE, "/deals")).text
    assert text.startswith("<b>Your deals</b>")
    assert text.index(f"D{second}") < text.index(f"D{first}")  # newest first
    assert "Cabbages" not in text and f"D{bobs}" not in text
    assert "Lychees &lt;b&gt;fresh&lt;/b&gt; — open" in text
    assert "3 units · 1 participant · minimum 5 units, 2 more · stock 17 of 20 left" in text
    closes = (await get_deal(harness, first)).closes_at.replace(tzinfo=UTC)
    local = (closes + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")
    assert f"Closes: {local} (Asia/Shanghai)" in text
    assert set(harness.buttons(harness.last(ALICE)).values()) == {
        od("open", first),
        od("open", second),
    }

    text = (await harness.say(BOB, "/deals")).text
    assert "Cabbages" in text and "Mangoes" not in text
    text = (await harness.say(MEMBER, "/deals")).text
    assert "You have no deals yet" in text


async def test_list_pages(harness) -> None:
    gid = await add_group(harness, ALICE_GROUP, ALICE)
    ids = [await make_deal(harness, ALICE.id, gid, title=f"Deal {i}") for i in range(10)]
    await harness.say(ALICE, "/deals")
    kb = harness.buttons(harness.last(ALICE))
    assert od("open", ids[-1]) in kb.values() and od("open", ids[1]) not in kb.values()
    await harness.tap(ALICE, kb["Older »"])
    kb = harness.buttons(harness.last(ALICE))
    assert set(kb.values()) == {od("open", ids[1]), od("open", ids[0]), od("list", page=0)}


async def test_card_shows_the_deal_and_its_actions(setup) -> None:
    harness, first, second, _bobs = setup
    await harness.tap(ALICE, od("open", first))
    card = harness.last(ALICE)
    assert card.text.startswith(f"<b>D{first} · Mangoes</b>")
    assert "Status: open" in card.text and "Price: CN¥12.50 per unit" in card.text
    kb = harness.buttons(card)
    assert od("stock", first) in kb.values() and od("pause", first) in kb.values()
    await harness.tap(ALICE, od("open", second))
    assert (
        od("stock", second) not in harness.buttons(harness.last(ALICE)).values()
    )  # no stock limit


async def test_a_closed_deal_says_when_it_closed_not_closes(setup) -> None:
    """/deals and the card: "Closed:" (or "Cancelled:") with the moment it ended, which is
    before the planned closing time when the owner closed it early."""
    harness, first, second, _bobs = setup
    ended = datetime(2030, 5, 1, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
    async with harness.db.transaction() as s:
        await deals.close(s, first, ended)
        await deals.close(s, second, ended + timedelta(minutes=30), cancel=True)
    planned = (await get_deal(harness, first)).closes_at.replace(tzinfo=UTC)
    planned_local = (planned + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")
    await harness.settle()

    text = (await harness.say(ALICE, "/deals")).text
    assert "Closed: 2030-05-01 12:00 (Asia/Shanghai)" in text
    assert "Cancelled: 2030-05-01 12:30 (Asia/Shanghai)" in text
    assert "Closes:" not in text and planned_local not in text
    await harness.tap(ALICE, od("open", first))
    card = harness.last(ALICE).text
    assert "Closed: 2030-05-01 12:00 (Asia/Shanghai)" in card and "Closes:" not in card


# ---------------------------------------------------------------- forged callbacks


@pytest.mark.parametrize(
    "action", ["open", "desc", "later", "stock", "pause", "resume", "close", "close_yes",
               "cancel", "cancel_yes", "dup"],
)  # fmt: skip
async def test_forged_callbacks_are_refused(setup, touched, action) -> None:
    harness, _first, _second, bobs = setup
    before = await get_deal(harness, bobs)
    answer = await harness.tap(ALICE, od(action, bobs))
    assert answer.show_alert and "does not exist or is not yours" in answer.text
    after = await get_deal(harness, bobs)
    assert (after.status, after.description, after.closes_at, after.stock_total) == (
        before.status, before.description, before.closes_at, before.stock_total,
    )  # fmt: skip
    assert await state_of(harness) is None and touched == []
    answer = await harness.tap(ALICE, od(action, 999_999))  # unknown deal
    assert answer.show_alert and "does not exist or is not yours" in answer.text


async def test_garbage_callback_data_is_answered(setup) -> None:
    harness, *_ = setup
    answer = await harness.tap(ALICE, "od:open:not-a-number:0")
    assert answer.show_alert and "out of date" in answer.text
    answer = await harness.tap(ALICE, "dw:nosuchstep")
    assert answer.show_alert and "out of date" in answer.text


# ---------------------------------------------------------------- edits


async def test_edit_description(setup, touched) -> None:
    harness, first, *_ = setup
    await harness.tap(ALICE, od("desc", first))
    assert "new description" in harness.last(ALICE).text
    text = (await harness.say(ALICE, "Now with <i>free</i> delivery")).text
    assert text.startswith(f"The description of D{first} is updated.")
    assert "Now with &lt;i&gt;free&lt;/i&gt; delivery" in text
    assert (await get_deal(harness, first)).description == "Now with <i>free</i> delivery"
    assert touched == [first] and await state_of(harness) is None


async def test_later_closing_time_only(setup, touched) -> None:
    harness, first, *_ = setup
    before = (await get_deal(harness, first)).closes_at
    await harness.tap(ALICE, od("later", first))
    assert "Send a LATER closing time in Asia/Shanghai time" in harness.last(ALICE).text

    text = (await harness.say(ALICE, "+1h")).text  # earlier than now + 2 h
    assert "must be later than the current one" in text
    assert await state_of(harness) == "OwnerEdit:closes"
    assert "2020-01-01" not in (await harness.say(ALICE, "2020-01-01 10:00")).text
    assert (await get_deal(harness, first)).closes_at == before and touched == []

    text = (await harness.say(ALICE, "2030-06-01 20:00")).text
    assert text.startswith(f"D{first} now closes later.")
    after = (await get_deal(harness, first)).closes_at.replace(tzinfo=UTC)
    assert after == datetime(2030, 6, 1, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
    assert "Closes: 2030-06-01 20:00 (Asia/Shanghai)" in text
    assert touched == [first]


async def test_more_stock_only(setup, touched) -> None:
    harness, first, *_ = setup
    await harness.tap(ALICE, od("stock", first))
    assert "20 of 20 units left" in harness.last(ALICE).text
    for typed, reason in [("-5", "can only be increased"), ("0", "can only be increased"),
                          ("20000", "too large"), ("lots", "whole number")]:  # fmt: skip
        assert reason in (await harness.say(ALICE, typed)).text
        assert await state_of(harness) == "OwnerEdit:stock"
    deal = await get_deal(harness, first)
    assert (deal.stock_total, deal.stock_left) == (20, 20) and touched == []

    text = (await harness.say(ALICE, "10")).text
    assert text.startswith(f"Stock of D{first} increased.")
    deal = await get_deal(harness, first)
    assert (deal.stock_total, deal.stock_left) == (30, 30)
    assert touched == [first]


async def test_cancel_an_edit(setup) -> None:
    harness, first, *_ = setup
    await harness.tap(ALICE, od("desc", first))
    await harness.tap(ALICE, od("open", first))  # the Cancel button returns to the card
    assert await state_of(harness) is None
    assert "/help" in (await harness.say(ALICE, "some text")).text
    assert (await get_deal(harness, first)).description == ""


# ---------------------------------------------------------------- status


async def test_pause_and_resume(setup, touched) -> None:
    harness, first, *_ = setup
    answer = await harness.tap(ALICE, od("pause", first))
    assert answer.text == "Paused." and (await get_deal(harness, first)).status == "paused"
    assert od("resume", first) in harness.buttons(harness.last(ALICE)).values()
    answer = await harness.tap(ALICE, od("pause", first))
    assert answer.show_alert and "Only an open deal" in answer.text
    answer = await harness.tap(ALICE, od("resume", first))
    assert answer.text == "Resumed." and (await get_deal(harness, first)).status == "open"
    assert touched == [first, first]


async def test_close_now_tells_participants(setup) -> None:
    harness, first, *_ = setup
    async with harness.db.transaction() as s:
        await orders.set_quantity(s, first, MEMBER.id, 5, utcnow())
    await harness.send(MEMBER, "/start")

    answer = await harness.tap(ALICE, od("close", first))  # asks first, like Cancel deal
    confirm = harness.last(ALICE)
    assert "now, before its closing time" in confirm.text and "cannot be undone" in confirm.text
    kb = harness.buttons(confirm)
    assert kb == {"Yes, close it now": od("close_yes", first), "No, keep it": od("open", first)}
    assert (await get_deal(harness, first)).status == "open"  # one tap changed nothing
    await harness.tap(ALICE, kb["No, keep it"])
    assert (await get_deal(harness, first)).status == "open"
    assert not any("succeeded" in t for t in harness.api.texts(MEMBER.id))

    answer = await harness.tap(ALICE, kb["Yes, close it now"])
    assert answer.text == "Closed."
    assert f"D{first} is closed and succeeded" in harness.last(ALICE).text
    await harness.app.settle()
    deal = await get_deal(harness, first)
    assert deal.status == "succeeded" and deal.final_price == 1250
    assert any("succeeded" in t for t in harness.api.texts(MEMBER.id))

    answer = await harness.tap(ALICE, od("close_yes", first))  # once only
    assert answer.show_alert and "closed" in answer.text
    answer = await harness.tap(ALICE, od("close", first))  # no confirmation for a closed deal
    assert answer.show_alert and "closed" in answer.text
    answer = await harness.tap(ALICE, od("desc", first))
    assert answer.show_alert and "can no longer be changed" in answer.text


async def test_cancel_asks_first(setup) -> None:
    harness, first, *_ = setup
    async with harness.db.transaction() as s:
        await orders.set_quantity(s, first, MEMBER.id, 2, utcnow())
    await harness.tap(ALICE, od("cancel", first))
    confirm = harness.last(ALICE)
    assert "cannot be undone" in confirm.text
    kb = harness.buttons(confirm)
    assert kb == {"Yes, cancel the deal": od("cancel_yes", first), "No, keep it": od("open", first)}
    await harness.tap(ALICE, kb["No, keep it"])
    assert (await get_deal(harness, first)).status == "open"

    answer = await harness.tap(ALICE, kb["Yes, cancel the deal"])
    assert answer.text == "Cancelled."
    await harness.app.settle()
    async with harness.db.read() as s:
        order = await s.scalar(select(Order))
    assert (await get_deal(harness, first)).status == "cancelled" and order.status == "cancelled"
    card = [m for m in harness.api.sent(ALICE.id) if m.text.startswith(f"D{first} is cancelled")]
    assert set(harness.buttons(card[-1]).values()) == {od("dup", first), od("list")}  # nothing else
    assert "was cancelled; all orders are cancelled" in harness.last(ALICE).text


# ---------------------------------------------------------------- duplicate


async def test_duplicate_asks_only_for_the_closing_time(setup) -> None:
    harness, first, *_ = setup
    async with harness.db.transaction() as s:
        await deals.close(s, first, utcnow(), cancel=True)

    await harness.tap(ALICE, od("dup", first))
    text = harness.last(ALICE).text
    assert text.startswith(f"Copy of D{first}: choose the new closing time.")
    assert await state_of(harness) == "DealWizard:closes"
    preview = (await harness.say(ALICE, "+3d")).text
    assert preview.startswith("<b>Preview</b>") and "Stock: 20 units" in preview
    assert "Minimum to succeed: 5 units" in preview

    # Back from the preview returns to the closing time; the other steps keep their values
    await harness.tap(ALICE, WizardCB(step="preview", action="back").pack())
    assert await state_of(harness) == "DealWizard:closes"
    await harness.tap(ALICE, WizardCB(step="closes", action="keep").pack())
    await harness.tap(ALICE, WizardCB(step="preview", action="publish").pack())
    await harness.app.settle()
    await harness.settle()

    async with harness.db.read() as s:
        copy = await s.scalar(select(Deal).order_by(Deal.id.desc()))
        count = await s.scalar(
            select(func.count()).select_from(DealPost).where(DealPost.deal_id == copy.id)
        )
    original = await get_deal(harness, first)
    assert copy.id != first and copy.status == "open" and count == 1
    assert (copy.title, copy.unit_price, copy.stock_total, copy.min_value) == (
        original.title, original.unit_price, original.stock_total, original.min_value,
    )  # fmt: skip
    assert copy.closes_at.replace(tzinfo=UTC) - utcnow() > timedelta(days=2, hours=23)
    assert any(r.chat_id == ALICE_GROUP.id for r in harness.api.sent())  # posted

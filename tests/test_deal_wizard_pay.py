"""How members pay, through the real Dispatcher: the /newdeal wizard's pay steps (a card deal
with a minimum and its payment deadline, a Stars flash sale of a digital item with its hold,
Stars refused for a physical item, tiers without a minimum refused on a paid deal, the step
passed when only cash is offered), the line of a paid deal's post, Join waitlist on a sold-out
paid deal, and a group's terms and payment support texts in /settings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from bot.posts import render_card
from handlers.callbacks import WaitlistCB
from models import Deal, Group, WaitlistEntry
from services.deal_draft import DealDraft
from services.parsing import ParseError
from tests import test_deal_post as post
from tests import test_settings as setting
from tests.conftest import make_settings
from tests.test_deal_wizard import OWNER, SHANGHAI, add_group, cb, deal_count, fsm, settle

PAID = {"payment_provider_token": "123:TEST", "stars_payments": True}
CASH_ONLY = {"stars_payments": False}
NOW = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai


@pytest.fixture
def settings(database_url, tmp_path, request):
    """Card and Stars offered, unless a test asks for other settings (indirect)."""
    return make_settings(database_url, tmp_path, **getattr(request, "param", PAID))


async def to_pay_step(harness, title: str = "Mangoes") -> str:
    """/newdeal up to the step after the photo; its text."""
    await harness.say(OWNER, "/newdeal")
    await harness.say(OWNER, title)
    await harness.tap(OWNER, cb("groups", "done"))
    await harness.tap(OWNER, cb("description", "skip"))
    await harness.tap(OWNER, cb("photo", "skip"))
    return harness.last(OWNER).text


async def finish(harness) -> str:
    """From the stock step to the preview (no stock limit unless already past it)."""
    await harness.tap(OWNER, cb("limit", "skip"))
    await harness.tap(OWNER, cb("closes", "pick", "2h"))
    await harness.tap(OWNER, cb("opens", "now"))
    await harness.tap(OWNER, cb("reminders", "default"))
    await harness.tap(OWNER, cb("pickup", "skip"))
    return harness.last(OWNER).text


async def published(harness) -> Deal:
    answer = await harness.tap(OWNER, cb("preview", "publish"))
    assert answer.text == "Done."
    await settle(harness)
    async with harness.db.read() as s:
        return await s.scalar(select(Deal))


def group_post_text(harness) -> str:
    return [m for m in harness.api.sent(SHANGHAI.id) if getattr(m, "text", None)][-1].text


# ---------------------------------------------------------------- the wizard


async def test_card_deal_with_a_minimum_has_a_payment_deadline(harness) -> None:
    harness.clock.set(NOW)
    await add_group(harness)
    text = await to_pay_step(harness)
    assert "How do members pay?" in text and "step 5 of 14" in text
    kb = harness.buttons(harness.last(OWNER))
    assert kb["💵 Cash on pickup"] == cb("pay", "method", "cash")
    assert kb["💳 Card"] == cb("pay", "method", "card")
    assert kb["⭐ Telegram Stars"] == cb("pay", "method", "stars")
    assert "use the buttons" in (await harness.say(OWNER, "card")).text  # buttons only

    await harness.tap(OWNER, cb("pay", "method", "card"))
    text = harness.last(OWNER).text
    assert "unit price in CNY" in text and "step 6 of 15" in text  # the deadline step counts
    await harness.say(OWNER, "¥12.5")
    await harness.say(OWNER, "10:11.00")
    await harness.tap(OWNER, cb("minimum", "kind", "units"))
    text = (await harness.say(OWNER, "10")).text
    assert "Members pay after the deal succeeds. How many hours" in text
    assert "24 h" in harness.buttons(harness.last(OWNER))
    assert "between 1 and 168 hours" in (await harness.say(OWNER, "200")).text
    assert (await fsm(harness))[0] == "DealWizard:pay_time"
    assert "supply in total" in (await harness.say(OWNER, "48 h")).text

    await harness.tap(OWNER, cb("stock", "back"))  # the deadline shows its current value
    assert "Current: 48 h" in harness.last(OWNER).text
    await harness.tap(OWNER, cb("pay_time", "keep"))
    await harness.tap(OWNER, cb("stock", "skip"))
    preview = await finish(harness)
    assert "Pay: card in private chat after the deal succeeds, within 48 h" in preview

    deal = await published(harness)
    assert (deal.pay_method, deal.digital, deal.pay_hours, deal.currency) == (
        "card",
        False,
        48,
        "CNY",
    )
    assert (deal.unit_price, deal.min_kind, deal.min_value) == (1250, "units", 10)
    assert "💳 Pay: card in private chat after the deal succeeds, within 48 h" in (
        group_post_text(harness)
    )


async def test_stars_flash_sale_of_a_digital_item(harness) -> None:
    harness.clock.set(NOW)
    await add_group(harness)
    await to_pay_step(harness, "E-book: Cooking mangoes")
    await harness.tap(OWNER, cb("pay", "method", "stars"))
    assert "Is it a digital item" in harness.last(OWNER).text
    await harness.tap(OWNER, cb("digital", "digital", "yes"))
    text = harness.last(OWNER).text
    assert "unit price in Telegram Stars" in text and "1 to 10000" in text

    for wrong in ("¥12", "12.5", "0", "10001"):  # another currency, decimals, out of range
        reply = (await harness.say(OWNER, wrong)).text
        assert "Send the price in Telegram Stars: a whole number from 1 to 10000" in reply
        assert (await fsm(harness))[0] == "DealWizard:price"
    await harness.say(OWNER, "⭐ 50")
    await harness.tap(OWNER, cb("tiers", "skip"))
    await harness.tap(OWNER, cb("minimum", "skip"))  # no minimum: a flash sale
    text = harness.last(OWNER).text
    assert "flash sale" in text and "How many minutes is it held?" in text
    assert "between 5 and 120 minutes" in (await harness.say(OWNER, "4")).text
    await harness.tap(OWNER, cb("pay_time", "default"))  # the "15 min" button
    await harness.say(OWNER, "20")  # stock
    preview = await finish(harness)
    assert "Price: ⭐ 50 per unit" in preview and "Digital item: yes" in preview
    assert "Pay: Telegram Stars at once (unit held 15 min)" in preview

    deal = await published(harness)
    assert (deal.pay_method, deal.digital, deal.currency, deal.unit_price) == (
        "stars", True, "XTR", 50,
    )  # fmt: skip
    assert deal.min_kind is None and deal.hold_minutes == 15 and deal.stock_total == 20
    text = group_post_text(harness)
    assert (
        "<b>⭐ 50</b> per unit" in text
        and "💳 Pay: Telegram Stars at once (unit held 15 min)" in text
    )


async def test_stars_are_refused_for_a_physical_item(harness) -> None:
    await add_group(harness)
    await to_pay_step(harness)
    await harness.tap(OWNER, cb("pay", "method", "stars"))
    await harness.tap(OWNER, cb("digital", "digital", "no"))
    reply = harness.last(OWNER)
    assert "Telegram Stars can pay for digital items only" in reply.text
    assert "How do members pay?" in reply.text
    kb = harness.buttons(reply)
    assert "💵 Cash on pickup" in kb and "💳 Card" in kb and "⭐ Telegram Stars" not in kb
    state, data = await fsm(harness)
    assert state == "DealWizard:pay" and "pay_method" not in data["draft"]
    answer = await harness.tap(OWNER, cb("pay", "method", "stars"))  # the old button
    assert answer.show_alert and (await fsm(harness))[0] == "DealWizard:pay"

    await harness.tap(OWNER, cb("pay", "method", "cash"))  # cash: no deadline step either
    assert "unit price in CNY" in harness.last(OWNER).text
    await harness.say(OWNER, "12.50")
    await harness.tap(OWNER, cb("tiers", "skip"))
    await harness.tap(OWNER, cb("minimum", "skip"))
    assert (await fsm(harness))[0] == "DealWizard:stock"
    await harness.tap(OWNER, cb("stock", "back"))
    assert (await fsm(harness))[0] == "DealWizard:minimum"
    await harness.tap(OWNER, cb("minimum", "skip"))
    await harness.tap(OWNER, cb("stock", "skip"))
    assert "Pay: cash on pickup" in await finish(harness)
    deal = await published(harness)
    assert (deal.pay_method, deal.digital, deal.currency) == ("cash", False, "CNY")
    assert "Pay:" not in group_post_text(harness)  # cash posts are unchanged


async def test_tiers_on_a_paid_deal_need_a_minimum(harness) -> None:
    await add_group(harness)
    await to_pay_step(harness)
    await harness.tap(OWNER, cb("pay", "method", "card"))
    await harness.say(OWNER, "12.50")
    await harness.say(OWNER, "10:11.00")
    await harness.tap(OWNER, cb("minimum", "skip"))
    assert "need a minimum" in harness.last(OWNER).text
    assert (await fsm(harness))[0] == "DealWizard:minimum"
    await harness.tap(OWNER, cb("minimum", "kind", "participants"))
    await harness.say(OWNER, "3")
    await harness.tap(OWNER, cb("pay_time", "default"))
    state, data = await fsm(harness)
    assert state == "DealWizard:stock" and data["draft"]["pay_hours"] == 24


async def test_changing_the_way_to_pay_drops_a_price_in_the_other_currency(harness) -> None:
    await add_group(harness)
    await to_pay_step(harness)
    await harness.tap(OWNER, cb("pay", "method", "card"))
    await harness.say(OWNER, "12.50")
    await harness.tap(OWNER, cb("tiers", "back"))
    await harness.tap(OWNER, cb("price", "back"))
    assert "Current: 💳 Card" in harness.last(OWNER).text
    await harness.tap(OWNER, cb("pay", "method", "stars"))
    await harness.tap(OWNER, cb("digital", "digital", "yes"))
    state, data = await fsm(harness)
    assert state == "DealWizard:price" and "price" not in data["draft"]  # asked again, in Stars
    assert "Current:" not in harness.last(OWNER).text


@pytest.mark.parametrize("settings", [CASH_ONLY], indirect=True)
async def test_the_pay_step_is_passed_when_only_cash_is_offered(harness) -> None:
    await add_group(harness)
    text = await to_pay_step(harness)
    assert "unit price in CNY" in text and "step 5 of 13" in text
    state, data = await fsm(harness)
    assert state == "DealWizard:price" and "methods" not in data
    await harness.tap(OWNER, cb("price", "back"))
    assert (await fsm(harness))[0] == "DealWizard:photo"
    await harness.tap(OWNER, cb("photo", "skip"))
    await harness.say(OWNER, "12.50")
    await harness.tap(OWNER, cb("tiers", "skip"))
    await harness.tap(OWNER, cb("minimum", "skip"))
    await harness.tap(OWNER, cb("stock", "skip"))
    assert "Pay:" not in await finish(harness)
    assert (await published(harness)).pay_method == "cash"
    assert await deal_count(harness) == 1


def test_publishing_refusals_go_back_to_the_pay_steps() -> None:
    draft = DealDraft()
    steps = {
        reason: draft.step_for_error(ParseError(reason), NOW)
        for reason in (
            "pay_method", "pay_stars_currency", "pay_stars_digital", "pay_tiers_minimum",
            "pay_hours", "hold_minutes",
        )
    }  # fmt: skip
    assert steps == {
        "pay_method": "pay",
        "pay_stars_currency": "price",
        "pay_stars_digital": "digital",
        "pay_tiers_minimum": "minimum",
        "pay_hours": "pay_time",
        "hold_minutes": "pay_time",
    }


# ---------------------------------------------------------------- the waitlist


async def test_join_waitlist_on_a_sold_out_paid_deal(harness) -> None:
    _gid, deal_id = await post.ready(harness, pay_method="card", stock=1)
    assert await post.press(harness, post.ALICE, deal_id)  # the last unit
    await post.refresher(harness).flush()
    await harness.settle()
    markup = harness.last_edit(post.GROUP).reply_markup
    data = WaitlistCB(deal_id=deal_id).pack()
    assert data in [b.callback_data for row in markup.inline_keyboard for b in row]
    assert "⏳ Join waitlist" in harness.buttons(harness.last_edit(post.GROUP))

    answer = await harness.tap(post.BOB, data, post.GROUP)
    assert "You're on the waitlist for Mangoes" in answer.text and not answer.show_alert
    answer = await harness.tap(post.BOB, data, post.GROUP)
    assert answer.text == "You're already on the waitlist for this deal."
    answer = await harness.tap(post.ALICE, data, post.GROUP)  # she has the unit
    assert answer.show_alert and answer.text == "You already have an order in this deal."
    answer = await harness.tap(post.CAROL, data, post.OTHER)  # not posted there
    assert answer.show_alert and answer.text == "This deal is not posted in this chat."
    async with harness.db.read() as s:
        entries = (await s.scalars(select(WaitlistEntry))).all()
    assert [(e.deal_id, e.user_id) for e in entries] == [(deal_id, post.BOB.id)]


async def test_no_waitlist_on_cash_in_stock_or_closed_deals(harness) -> None:
    _gid, deal_id = await post.ready(harness, stock=1)  # cash
    await post.press(harness, post.ALICE, deal_id)
    async with harness.db.read() as s:
        deal = await s.get(Deal, deal_id)
        group = await s.get(Group, _gid)
    with harness.app.i18n.context(), harness.app.i18n.use_locale("en"):
        text, markup = render_card(deal, [], group, datetime.now(UTC))
    assert "⏳ Join waitlist" not in [b.text for row in markup.inline_keyboard for b in row]
    assert "Pay:" not in text
    data = WaitlistCB(deal_id=deal_id).pack()
    answer = await harness.tap(post.BOB, data, post.GROUP)
    assert answer.show_alert and "paid on pickup" in answer.text

    async with harness.db.transaction() as s:
        await s.execute(
            update(Deal).where(Deal.id == deal_id).values(pay_method="card", stock_left=1)
        )
    answer = await harness.tap(post.BOB, data, post.GROUP)
    assert answer.show_alert and "Join +1" in answer.text  # units are there again
    async with harness.db.transaction() as s:
        await s.execute(update(Deal).where(Deal.id == deal_id).values(status="paused"))
    answer = await harness.tap(post.BOB, data, post.GROUP)
    assert answer.show_alert and "not open" in answer.text


# ---------------------------------------------------------------- /settings


async def test_settings_terms_and_payment_support_texts(harness) -> None:
    g = await setting.add_bot(harness)
    await harness.send(setting.OWNER, "/settings")
    await harness.tap(setting.OWNER, f"set:open:{g.id}")
    card = harness.last(setting.OWNER)
    assert "Terms: default" in card.text and "Payment support: default" in card.text
    assert harness.callbacks(card) == [
        f"set:tz:{g.id}", f"set:cur:{g.id}", f"set:lang:{g.id}",
        f"set:terms:{g.id}", f"set:support:{g.id}", f"mod:open:{g.id}:0", "set:list:0",
    ]  # fmt: skip

    await harness.tap(setting.OWNER, f"set:terms:{g.id}")
    assert "/terms shows" in harness.last(setting.OWNER).text
    reply = (await harness.say(setting.OWNER, "x" * 1001)).text
    assert "at most 1000" in reply
    assert harness.callbacks(harness.last(setting.OWNER)) == [f"set:cancel:{g.id}"]
    terms = "No refunds after pickup.\u202e\nQuestions: <b>@owner</b>"
    reply = (await harness.say(setting.OWNER, terms)).text
    assert reply.startswith("Saved.") and "Terms: own text" in reply
    assert (await setting.load(harness)).terms_text == (
        "No refunds after pickup.\nQuestions: <b>@owner</b>"
    )  # cleaned: the bidi override is gone

    await harness.tap(setting.OWNER, f"set:support:{g.id}")
    assert "/paysupport shows" in harness.last(setting.OWNER).text
    reply = (await harness.say(setting.OWNER, "Write to @owner")).text
    assert "Payment support: own text" in reply
    assert (await setting.load(harness)).paysupport_text == "Write to @owner"

    await harness.tap(setting.OWNER, f"set:terms:{g.id}")
    reply = (await harness.say(setting.OWNER, " - ")).text  # "-" clears it
    assert "Terms: default" in reply and (await setting.load(harness)).terms_text == ""

    answer = await harness.tap(setting.MEMBER, f"set:terms:{g.id}")  # not an admin
    assert answer.show_alert and "Only the owner" in answer.text


@pytest.mark.parametrize("settings", [CASH_ONLY], indirect=True)
async def test_no_terms_settings_when_members_pay_cash_only(harness) -> None:
    g = await setting.add_bot(harness)
    await harness.send(setting.OWNER, "/settings")
    await harness.tap(setting.OWNER, f"set:open:{g.id}")
    card = harness.last(setting.OWNER)
    assert "Terms" not in card.text and f"set:terms:{g.id}" not in harness.callbacks(card)
    answer = await harness.tap(setting.OWNER, f"set:terms:{g.id}")  # an old button
    assert answer.show_alert and "out of date" in answer.text

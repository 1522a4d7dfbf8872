"""Payments through the fake Bot API (services.payments, handlers/payments.py): invoices
after success and at a flash sale's join, pre-checkout answers (accepted and each refusal),
successful payments recorded once per charge id, surplus payments refunded (Stars through
the API, once) or owed (card), lapsed holds and deadlines, waitlists, the owner's refunds,
/terms and /paysupport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiogram.methods import AnswerPreCheckoutQuery, RefundStarPayment, SendInvoice
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from bot.factory import create_app
from handlers.callbacks import LangCB, OrdersCB, PayCB, WaitlistCB
from models import Database, Deal, Group, Order, OutboxMessage, Payment
from scheduler.jobs import TickResult, lapse_payments
from services import outbox, payments
from services.timezones import utcnow
from tests.builders import Updates
from tests.conftest import Harness, SettableClock, make_settings
from tests.fake_api import FakeTelegram
from tests.test_deal_closing import close_now, due, started
from tests.test_deal_post import (
    ALICE,
    BOB,
    CAROL,
    GROUP,
    OWNER,
    create_deal,
    press,
    publish_deal,
    ready,
)

PROVIDER = "284685063:TEST:fake-provider-token"


@pytest.fixture
async def harness(database_url, tmp_path, db: Database) -> AsyncIterator[Harness]:
    """The app with a payment provider configured (card payments) and Stars."""
    settings = make_settings(database_url, tmp_path, payment_provider_token=PROVIDER)
    api = FakeTelegram()
    app = create_app(settings, session=api, db=db, clock=SettableClock())
    yield Harness(app, api, Updates())
    await app.close()
    assert not api.refused, f"sent beyond Telegram's limits: {api.refused[0]!r}"[:500]


async def invoices(harness, user) -> list[SendInvoice]:
    """The invoices sent to `user` (once what committed updates promised is delivered)."""
    await harness.settle()
    return [i for i in harness.api.of(SendInvoice) if i.chat_id == user.id]


async def precheck(harness, user, invoice: SendInvoice, **change) -> AnswerPreCheckoutQuery:
    values = {
        "payload": invoice.payload,
        "currency": invoice.currency,
        "amount": invoice.prices[0].amount,
    }
    values.update(change)
    await harness.feed(
        harness.updates.pre_checkout(user, values["payload"], values["currency"], values["amount"])
    )
    return harness.api.of(AnswerPreCheckoutQuery)[-1]


async def pay(harness, user, invoice: SendInvoice, charge: str, **change):
    """`user` pays `invoice` (Telegram's successful_payment message); returns the update."""
    values = {
        "payload": invoice.payload,
        "currency": invoice.currency,
        "amount": invoice.prices[0].amount,
    }
    values.update(change)
    update_ = harness.updates.paid(
        user, values["payload"], values["currency"], values["amount"], charge
    )
    await harness.feed(update_)
    await harness.settle()
    return update_


async def order_of(harness, deal_id: int, user) -> Order:
    async with harness.db.read() as s:
        return await s.scalar(
            select(Order).where(Order.deal_id == deal_id, Order.user_id == user.id)
        )


async def payments_of(harness) -> dict[str, tuple]:
    async with harness.db.read() as s:
        rows = await s.scalars(select(Payment).order_by(Payment.id))
        return {p.charge_id: (p.applied, p.refund, p.amount, p.method) for p in rows}


async def deal_of(harness, deal_id: int) -> Deal:
    async with harness.db.read() as s:
        return await s.get(Deal, deal_id)


async def tick(harness, at) -> TickResult:
    result = TickResult()
    await lapse_payments(harness.app, at, result)
    await harness.settle()
    return result


async def flash_sale(harness, **overrides) -> int:
    """A Stars flash sale (digital, no minimum) with 2 units, held 15 minutes."""
    values = dict(pay_method="stars", digital=True, currency="XTR", unit_price=50, stock=2)
    values.update(overrides)
    _group, deal_id = await ready(harness, **values)
    return deal_id


# ---------------------------------------------------------------- a deal with a minimum


async def test_card_deal_is_paid_after_success_once_per_charge(harness) -> None:
    _group, deal_id = await ready(
        harness, pay_method="card", min_kind="participants", min_value=2, stock=10
    )
    await started(harness, ALICE, BOB)
    await press(harness, ALICE, deal_id, "join")
    await press(harness, BOB, deal_id, "qty", 2)
    await press(harness, CAROL, deal_id, "join")  # never started the bot
    assert harness.api.of(SendInvoice) == []  # nobody pays before the deal succeeds
    harness.api.fail_next(  # Carol never started the bot: Telegram refuses to write to her
        "forbidden", SendInvoice, chat_id=CAROL.id, message="Forbidden: bot can't initiate"
    )

    await due(harness)

    [alice_invoice] = await invoices(harness, ALICE)
    [bob_invoice] = await invoices(harness, BOB)
    alice = await order_of(harness, deal_id, ALICE)
    assert alice_invoice.payload == f"pay:{alice.id}:1"
    assert (alice_invoice.currency, alice_invoice.prices[0].amount) == ("CNY", 1250)
    assert bob_invoice.prices[0].amount == 2500
    assert alice_invoice.provider_token == PROVIDER
    assert "Pay by" in alice_invoice.description and len(alice_invoice.title) <= 32
    assert alice.pay_by is not None and alice.status == "confirmed"
    async with harness.db.read() as s:  # her invoice waits for her /start
        parked = await s.scalar(
            select(OutboxMessage.status).where(OutboxMessage.key == f"invoice:{alice.id + 2}:1")
        )
    assert parked == outbox.WAITING
    await harness.say(CAROL, "/start")
    await harness.settle()
    assert len(await invoices(harness, CAROL)) == 2  # refused, then delivered after /start
    closing = [t for t in harness.api.texts(GROUP.id) if "succeeded" in t][-1]
    assert "Pay in private chat with me within 24 h" in closing
    async with harness.db.read() as s:  # a reminder before the deadline, for each invoice
        reminders = list(
            await s.scalars(select(OutboxMessage).where(OutboxMessage.key.like("payremind:%")))
        )
    assert {r.chat_id for r in reminders} == {ALICE.id, BOB.id, CAROL.id}
    assert all(r.due_at is not None for r in reminders)

    answer = await precheck(harness, ALICE, alice_invoice)
    assert answer.ok is True
    paid = await pay(harness, ALICE, alice_invoice, "ch-alice-1")

    alice = await order_of(harness, deal_id, ALICE)
    assert alice.paid_at is not None and alice.paid_amount == 1250 and alice.pay_by is None
    assert await payments_of(harness) == {"ch-alice-1": (True, "none", 1250, "card")}
    receipt = harness.last(ALICE).text
    assert "Payment received" in receipt and alice.pickup_code in receipt
    sent = len(harness.api.requests)

    await harness.feed(paid)  # the same update again: nothing
    again = harness.updates.paid(ALICE, alice_invoice.payload, "CNY", 1250, "ch-alice-1")
    await harness.feed(again)  # the same charge in another update: nothing either
    await harness.settle()
    assert await payments_of(harness) == {"ch-alice-1": (True, "none", 1250, "card")}
    assert len(harness.api.requests) == sent

    # paid: a reminder is not sent any more; Bob's still is when it is due
    async with harness.db.transaction() as s:
        await s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.key.like("payremind:%"))
            .values(due_at=utcnow() - timedelta(seconds=1))
        )
    harness.app.outbox.kick()
    await harness.settle()
    assert "not paid yet" in harness.last(BOB).text
    assert "not paid yet" not in harness.last(ALICE).text


async def test_pre_checkout_refuses_with_the_reason(harness) -> None:
    _group, deal_id = await ready(
        harness, pay_method="card", min_kind="participants", min_value=1, stock=10
    )
    await started(harness, ALICE, BOB)
    await press(harness, ALICE, deal_id, "qty", 2)
    await due(harness)
    [invoice] = await invoices(harness, ALICE)

    async def refused(user=ALICE, **change) -> str:
        answer = await precheck(harness, user, invoice, **change)
        assert answer.ok is False and answer.error_message
        return answer.error_message

    assert "not one of mine" in await refused(payload="pay:999999:1")
    assert "not one of mine" in await refused(payload="something else")
    assert "another member" in await refused(BOB)
    assert "not what the order owes" in await refused(amount=100)
    assert "another currency" in await refused(currency="USD")
    assert "replaced by a newer one" in await refused(payload=invoice.payload[:-1] + "7")
    later = utcnow() + timedelta(hours=28)  # closed at +3 h, 24 h to pay
    harness.clock.set(later)
    assert "time to pay" in await refused()
    harness.clock.set(None)
    assert (await precheck(harness, ALICE, invoice)).ok is True
    await pay(harness, ALICE, invoice, "ch-1")
    assert "already paid" in await refused()
    # in the language the member chose
    await harness.tap(BOB, LangCB(code="zh_Hans"))
    assert not (await refused(BOB)).isascii()


# ---------------------------------------------------------------- flash sales, Stars


async def test_flash_sale_holds_the_unit_and_a_second_charge_is_refunded_once(harness) -> None:
    deal_id = await flash_sale(harness)
    await started(harness, ALICE)
    await press(harness, ALICE, deal_id, "join")
    await harness.settle()

    [invoice] = await invoices(harness, ALICE)  # at once: the unit is held while she pays
    assert (invoice.currency, invoice.prices[0].amount, invoice.provider_token) == ("XTR", 50, "")
    alice = await order_of(harness, deal_id, ALICE)
    assert alice.status == "active" and alice.amount == 50
    assert alice.pay_by is not None
    assert (await deal_of(harness, deal_id)).stock_left == 1

    assert (await precheck(harness, ALICE, invoice)).ok is True
    await pay(harness, ALICE, invoice, "star-1")
    second = await pay(harness, ALICE, invoice, "star-2")  # the same invoice paid twice

    [refund] = harness.api.of(RefundStarPayment)
    assert (refund.user_id, refund.telegram_payment_charge_id) == (ALICE.id, "star-2")
    assert await payments_of(harness) == {
        "star-1": (True, "none", 50, "stars"),
        "star-2": (False, "refunded", 50, "stars"),
    }
    assert "refunded to you in Telegram Stars" in harness.last(ALICE).text
    await harness.feed(second)  # a replay of the second payment: no second refund
    await harness.settle()
    assert len(harness.api.of(RefundStarPayment)) == 1

    # a paid order cannot be changed by its member
    answer = await press(harness, ALICE, deal_id, "qty", 2)
    assert answer.show_alert and "Your order is paid" in answer.text
    assert (await order_of(harness, deal_id, ALICE)).quantity == 1


async def test_a_hold_that_lapses_returns_the_unit_to_the_waitlist(harness) -> None:
    deal_id = await flash_sale(harness, stock=1)
    await started(harness, ALICE, BOB)
    await press(harness, ALICE, deal_id, "join")
    refused = await press(harness, BOB, deal_id, "join")
    assert "Sold out" in (refused.text or "")
    await harness.settle()  # the post, sold out, offers the waitlist
    assert WaitlistCB(deal_id=deal_id).pack() in harness.callbacks(harness.last_edit(GROUP))
    added = await harness.tap(BOB, WaitlistCB(deal_id=deal_id), GROUP)
    assert "on the waitlist" in added.text
    again = await harness.tap(BOB, WaitlistCB(deal_id=deal_id), GROUP)
    assert "already on the waitlist" in again.text
    [alice_invoice] = await invoices(harness, ALICE)

    assert (await tick(harness, utcnow() + timedelta(minutes=5))).lapsed == 0
    # past the 15 minutes' hold, within the grace a payment accepted just before has
    assert (await tick(harness, utcnow() + timedelta(minutes=16))).lapsed == 0
    result = await tick(harness, utcnow() + timedelta(minutes=18))

    assert (result.lapsed, result.waitlist_served) == (1, 1)
    alice = await order_of(harness, deal_id, ALICE)
    assert (alice.status, alice.quantity, alice.pay_by) == ("cancelled", 0, None)
    assert "not paid by its deadline" in harness.last(ALICE).text
    bob = await order_of(harness, deal_id, BOB)
    assert bob.status == "active" and bob.quantity == 1 and bob.pay_by is not None
    assert (await deal_of(harness, deal_id)).stock_left == 0
    [bob_invoice] = await invoices(harness, BOB)
    gone = await precheck(harness, ALICE, alice_invoice)  # her hold is gone
    assert gone.ok is False and "cancelled or not due" in gone.error_message
    late = await pay(harness, ALICE, alice_invoice, "star-late")  # paid anyway: refunded
    assert await payments_of(harness) == {"star-late": (False, "refunded", 50, "stars")}
    assert late is not None
    await pay(harness, BOB, bob_invoice, "star-bob")
    assert (await order_of(harness, deal_id, BOB)).paid_at is not None


async def test_a_payment_racing_a_cancellation_ends_refunded(harness) -> None:
    deal_id = await flash_sale(harness, pay_method="card", currency="CNY", unit_price=990)
    await started(harness, ALICE, BOB)
    await press(harness, ALICE, deal_id, "join")
    await press(harness, BOB, deal_id, "join")
    [alice_invoice] = await invoices(harness, ALICE)
    [bob_invoice] = await invoices(harness, BOB)
    assert (await precheck(harness, ALICE, alice_invoice)).ok is True
    await pay(harness, BOB, bob_invoice, "card-bob")  # Bob paid before the cancellation

    await close_now(harness, deal_id, OWNER.id, cancel=True)
    await pay(harness, ALICE, alice_invoice, "card-alice")  # her payment lands after it

    assert await payments_of(harness) == {
        "card-bob": (True, "owed", 990, "card"),  # the deal was cancelled: owed back
        "card-alice": (False, "owed", 990, "card"),  # a surplus: owed back
    }
    owner_notes = [m for m in harness.api.sent(OWNER.id) if "owed back" in m.text]
    assert len(owner_notes) == 2
    assert "prov-card-alice" in "".join(m.text for m in owner_notes)
    assert "refund it to your card" in harness.last(ALICE).text
    # the owner refunded both in the provider's dashboard and says so
    for note in owner_notes:
        [data] = harness.callbacks(note)
        answer = await harness.tap(OWNER, data)
        assert "Recorded" in (answer.text or "")
    await harness.settle()
    assert {v[1] for v in (await payments_of(harness)).values()} == {"outside"}
    again = await harness.tap(
        OWNER, owner_notes[0].reply_markup.inline_keyboard[0][0].callback_data
    )
    assert answer.text and again.show_alert  # not owed any more: nothing changes
    stranger = await harness.tap(ALICE, PayCB(action="out", payment_id=1))
    assert stranger.show_alert


async def test_a_stars_flash_sale_cancelled_refunds_what_was_paid(harness) -> None:
    deal_id = await flash_sale(harness)
    await started(harness, ALICE)
    await press(harness, ALICE, deal_id, "join")
    [invoice] = await invoices(harness, ALICE)
    await pay(harness, ALICE, invoice, "star-a")
    await close_now(harness, deal_id, OWNER.id, cancel=True)
    [refund] = harness.api.of(RefundStarPayment)
    assert refund.telegram_payment_charge_id == "star-a"
    assert await payments_of(harness) == {"star-a": (True, "refunded", 50, "stars")}
    cancelled = [t for t in harness.api.texts(GROUP.id) if "cancelled by the organiser" in t]
    assert cancelled and "refunded" in cancelled[-1]


async def test_a_failed_stars_refund_tells_the_owner_and_already_refunded_is_done(harness) -> None:
    deal_id = await flash_sale(harness)
    await started(harness, ALICE)
    await press(harness, ALICE, deal_id, "join")
    [invoice] = await invoices(harness, ALICE)
    await pay(harness, ALICE, invoice, "star-1")
    harness.api.fail_next(
        "bad_request", method=RefundStarPayment, message="Bad Request: CHARGE_NOT_FOUND"
    )
    await pay(harness, ALICE, invoice, "star-2")
    harness.api.fail_next(
        "bad_request", method=RefundStarPayment, message="Bad Request: CHARGE_ALREADY_REFUNDED"
    )
    await pay(harness, ALICE, invoice, "star-3")
    found = await payments_of(harness)
    assert found["star-2"][:2] == (False, "failed")
    assert found["star-3"][:2] == (False, "refunded")
    assert any("refused to refund" in t for t in harness.api.texts(OWNER.id))


# ---------------------------------------------------------------- deadlines, the waitlist


async def test_the_payment_deadline_cancels_unpaid_orders_and_serves_the_waitlist(harness) -> None:
    _group, deal_id = await ready(
        harness, pay_method="card", min_kind="participants", min_value=1, stock=2
    )
    await started(harness, ALICE, BOB, CAROL)
    await press(harness, ALICE, deal_id, "qty", 2)
    assert "Sold out" in ((await press(harness, BOB, deal_id, "join")).text or "")
    await harness.tap(BOB, WaitlistCB(deal_id=deal_id), GROUP)
    await harness.tap(CAROL, WaitlistCB(deal_id=deal_id), GROUP)  # after Bob
    holding = await harness.tap(ALICE, WaitlistCB(deal_id=deal_id), GROUP)
    assert holding.show_alert and "already have an order" in holding.text
    await due(harness)
    assert (await deal_of(harness, deal_id)).status == "succeeded"

    assert (await tick(harness, utcnow() + timedelta(hours=23))).lapsed == 0
    result = await tick(harness, utcnow() + timedelta(hours=28))

    assert (result.lapsed, result.waitlist_served) == (1, 2)
    alice = await order_of(harness, deal_id, ALICE)
    assert alice.status == "cancelled"
    for member in (BOB, CAROL):
        order = await order_of(harness, deal_id, member)
        assert (order.status, order.quantity, order.amount) == ("confirmed", 1, 1250)
        assert order.pay_by is not None
        [invoice] = await invoices(harness, member)
        assert invoice.prices[0].amount == 1250
    deal = await deal_of(harness, deal_id)
    assert (deal.stock_left, deal.total_qty, deal.participants) == (0, 2, 2)
    [bob_invoice] = await invoices(harness, BOB)
    await pay(harness, BOB, bob_invoice, "card-bob")
    assert (await order_of(harness, deal_id, BOB)).paid_amount == 1250
    assert (await tick(harness, utcnow() + timedelta(hours=80))).lapsed == 1  # Carol's


# ---------------------------------------------------------------- the owner's refunds


async def _paid_succeeded(harness, **overrides):
    values = dict(pay_method="stars", digital=True, currency="XTR", unit_price=50)
    values.update(overrides)
    _group, deal_id = await ready(harness, min_kind="participants", min_value=1, **values)
    await started(harness, ALICE)
    await press(harness, ALICE, deal_id, "join")
    await due(harness)
    [invoice] = await invoices(harness, ALICE)
    await pay(harness, ALICE, invoice, f"paid-{values['pay_method']}")
    return deal_id, await order_of(harness, deal_id, ALICE)


async def test_the_owner_refunds_stars_through_the_api_once(harness) -> None:
    deal_id, order = await _paid_succeeded(harness)
    refund = OrdersCB(action="refund", deal_id=deal_id, order_id=order.id)
    answer = await harness.tap(OWNER, refund)
    await harness.settle()
    assert answer.text == "Order cancelled."
    await harness.tap(OWNER, refund)  # a second tap changes nothing
    await harness.settle()
    [call] = harness.api.of(RefundStarPayment)
    assert call.telegram_payment_charge_id == "paid-stars"
    assert await payments_of(harness) == {"paid-stars": (True, "refunded", 50, "stars")}
    assert (await order_of(harness, deal_id, ALICE)).status == "cancelled"


async def test_a_card_refund_needs_the_owners_word_that_it_was_refunded(harness) -> None:
    deal_id, order = await _paid_succeeded(
        harness, pay_method="card", digital=False, currency="CNY", unit_price=1250
    )
    answer = await harness.tap(OWNER, OrdersCB(action="refund", deal_id=deal_id, order_id=order.id))
    assert not answer.show_alert
    question = harness.last_edit(OWNER)
    assert "provider's dashboard" in question.text
    assert (await order_of(harness, deal_id, ALICE)).status == "confirmed"  # nothing yet
    assert await payments_of(harness) == {"paid-card": (True, "none", 1250, "card")}
    confirm = OrdersCB(action="rfout", deal_id=deal_id, order_id=order.id)
    assert confirm.pack() in harness.callbacks(question)
    await harness.tap(OWNER, confirm)
    await harness.settle()
    assert await payments_of(harness) == {"paid-card": (True, "outside", 1250, "card")}
    assert (await order_of(harness, deal_id, ALICE)).status == "cancelled"
    assert harness.api.of(RefundStarPayment) == []


# ---------------------------------------------------------------- /terms, /paysupport


async def test_terms_and_paysupport_answer(harness) -> None:
    terms = await harness.say(ALICE, "/terms", expect=1)
    assert "Terms" in terms.text
    support = await harness.say(ALICE, "/paysupport", expect=1)
    assert "support" in support.text.lower()
    _group, deal_id = await ready(harness, pay_method="card", min_kind="units", min_value=1)
    async with harness.db.transaction() as s:
        await s.execute(update(Group).values(terms_text="Group terms <b>here</b>"))
    await press(harness, ALICE, deal_id, "join")
    own = await harness.say(ALICE, "/terms", expect=1)
    assert own.text == "Group terms &lt;b&gt;here&lt;/b&gt;"


# ---------------------------------------------------------------- concurrency, parsing


async def test_concurrent_deliveries_of_payments_record_each_charge_once(harness) -> None:
    deal_id = await flash_sale(harness, stock=5)
    await started(harness, ALICE)
    await press(harness, ALICE, deal_id, "join")
    [invoice] = await invoices(harness, ALICE)
    now = utcnow()

    async def record(charge: str) -> str:
        async with harness.db.transaction() as s:
            done = await payments.record(
                s,
                charge_id=charge,
                provider_charge_id="",
                payload=invoice.payload,
                user_id=ALICE.id,
                currency="XTR",
                amount=50,
                now=now,
            )
            return done.outcome

    outcomes = await asyncio.gather(record("c-1"), record("c-1"), record("c-2"))
    assert sorted(outcomes) in (["applied", "replay", "surplus"],)
    async with harness.db.read() as s:
        rows = list(await s.scalars(select(Payment).order_by(Payment.charge_id)))
        applied = await s.scalar(select(func.count()).where(Payment.applied.is_(True)))
    assert [p.charge_id for p in rows] == ["c-1", "c-2"]
    assert applied == 1  # one charge paid the order, the other is a surplus


@given(st.text(max_size=80))
def test_payload_parser_never_raises(text: str) -> None:
    parsed = payments.parse_payload(text)
    assert parsed is None or (parsed[0] > 0 and parsed[1] > 0)


@given(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1))
def test_payload_round_trips(order_id: int, number: int) -> None:
    order = Order(id=order_id, invoice_no=number)
    assert payments.parse_payload(payments.payload_of(order)) == (order_id, number)
    assert len(payments.payload_of(order).encode()) <= 128


async def test_credit_spent_makes_a_new_invoice_for_what_is_left(harness) -> None:
    from models import CreditEntry
    from services import credit

    group_id, deal_id = await ready(
        harness, pay_method="card", min_kind="participants", min_value=1, stock=10
    )
    await started(harness, ALICE)
    await press(harness, ALICE, deal_id, "join")
    await due(harness)
    [first] = await invoices(harness, ALICE)
    async with harness.db.transaction() as s:
        await s.execute(update(Group).where(Group.id == group_id).values(credit_spendable=True))
        s.add(
            CreditEntry(
                group_id=group_id,
                user_id=ALICE.id,
                currency="CNY",
                amount=300,
                kind="payout",
                note="",
                created_at=utcnow(),
            )
        )
    order = await order_of(harness, deal_id, ALICE)
    async with harness.db.transaction() as s:
        await credit.spend(s, order.id, ALICE.id, utcnow())
    [_first, second] = await invoices(harness, ALICE)
    assert (second.payload, second.prices[0].amount) == (f"pay:{order.id}:2", 950)
    async with harness.db.read() as s:  # the new invoice is reminded of too
        reminder = await s.scalar(
            select(OutboxMessage.due_at).where(OutboxMessage.key == f"payremind:{order.id}:2")
        )
    assert reminder is not None
    assert "Credit used" in second.description
    assert "replaced by a newer one" in (await precheck(harness, ALICE, first)).error_message
    assert (await precheck(harness, ALICE, second)).ok is True
    await pay(harness, ALICE, second, "card-rest")
    assert (await order_of(harness, deal_id, ALICE)).paid_amount == 950


async def test_a_failing_pre_checkout_is_refused_at_once(harness, monkeypatch) -> None:
    async def broken(*args, **kwargs):
        raise RuntimeError("database away")

    monkeypatch.setattr(payments, "precheck", broken)
    await harness.feed(harness.updates.pre_checkout(ALICE, "pay:1:1", "XTR", 50))
    [answer] = harness.api.of(AnswerPreCheckoutQuery)
    assert answer.ok is False and answer.error_message


async def test_the_waitlist_is_for_sold_out_paid_deals(harness) -> None:
    group_id, cash = await ready(harness, stock=1)
    paid = await create_deal(
        harness, [group_id], pay_method="stars", digital=True, currency="XTR", unit_price=50,
        stock=1,
    )  # fmt: skip
    await publish_deal(harness, paid)
    await started(harness, ALICE, BOB)

    async def refusal(deal_id: int, user) -> str:
        async with harness.db.transaction() as s:
            with pytest.raises(payments.WaitlistRefused) as refused:
                await payments.join_waitlist(s, deal_id, user.id, group_id, utcnow())
        return refused.value.reason

    assert await refusal(cash, BOB) == "not_paid"
    assert await refusal(paid, BOB) == "in_stock"  # a unit is left: join instead
    await press(harness, ALICE, paid, "join")
    assert await refusal(paid, ALICE) == "holding"
    await close_now(harness, paid, OWNER.id, cancel=True)
    assert await refusal(paid, BOB) == "closed"

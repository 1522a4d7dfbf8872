"""Commission through the real Dispatcher: credit on pickup / paid told to the referrer once,
refunds that reverse it, /commission (group rate, window, spending, per-deal rate, payouts)
with every refusal, and /mycredit with spending credit on an order."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram import methods as m
from sqlalchemy import select, update

from handlers.callbacks import CommissionCB, MyCreditCB, OrdersCB
from models import CreditEntry, Deal, Group, Order
from services import credit, fulfilment
from services.timezones import utcnow
from tests.builders import person, private
from tests.test_owner_orders import (
    ALICE,
    OTHER_OWNER,
    OWNER,
    WANG,
    make_deal,
    money,
    notices,
    remember,
)

REF = person(621, "Rita", username="rita")
GRAND = person(622, "Grace")
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # 20:00 in Asia/Shanghai


async def attributed_deal(harness, *, bp: int = 1000, spendable: bool = False, **kw):
    """A succeeded deal: Alice ×2 (referred by Rita), 小王 ×1 (referred by nobody).
    Returns (deal id, group id, {user id: order id})."""
    deal_id, ids = await make_deal(harness, [(ALICE, 2), (WANG, 1)], close=True, **kw)
    async with harness.db.transaction() as s:
        await remember(s, REF)
        await remember(s, GRAND)
        group_id = await s.scalar(select(Order.group_id).where(Order.id == ids[ALICE.id]))
        await s.execute(
            update(Group)
            .where(Group.id == group_id)
            .values(commission_bp=bp, credit_spendable=spendable, admins_refreshed_at=utcnow())
        )
        await s.execute(update(Order).where(Order.id == ids[ALICE.id]).values(referrer_id=REF.id))
    return deal_id, group_id, ids


async def ledger(harness) -> list[tuple[int, str, int]]:
    async with harness.db.read() as s:
        rows = await s.execute(
            select(CreditEntry.user_id, CreditEntry.kind, CreditEntry.amount).order_by(
                CreditEntry.id
            )
        )
        return [tuple(r) for r in rows]


async def group_row(harness, group_id: int) -> tuple[int, int, bool]:
    async with harness.db.read() as s:
        g = await s.get(Group, group_id)
        return g.commission_bp, g.attribution_days, g.credit_spendable


# ---------------------------------------------------------------- earning through fulfilment


async def test_pickup_credits_the_referrer_once_and_tells_them(harness) -> None:
    deal_id, _g, ids = await attributed_deal(harness)
    async with harness.db.read() as s:
        code = await s.scalar(select(Order.pickup_code).where(Order.id == ids[ALICE.id]))
    update_ = harness.updates.command(private(OWNER), OWNER, f"/pickup {code}")
    await harness.feed(update_)
    await harness.feed(update_)  # the same update delivered twice
    await harness.say(OWNER, f"/pickup {code}")  # and the owner sending it again
    await harness.settle()
    assert await ledger(harness) == [(REF.id, "earned", 250)]  # 10 % of 25.00
    [notice] = harness.api.sent(REF.id)
    assert f"You earned {money(250)} of credit in Fruit 团" in notice.text
    assert f"D{deal_id}" in notice.text and "Mangoes &lt;b&gt;" in notice.text
    assert len(notices(harness, ALICE)) == 1  # her "picked up" notice, once
    # the replay got no answer; the pickup reply still counts only the buyer as told
    first, second = harness.api.texts(OWNER.id)
    assert "Marked picked up. 1 member is told privately." in first
    assert "already picked up; nothing changed" in second


async def test_mark_all_tells_each_referrer_once(harness) -> None:
    deal_id, _g, ids = await attributed_deal(harness)
    async with harness.db.transaction() as s:  # Rita referred 小王's order too
        await s.execute(update(Order).where(Order.id == ids[WANG.id]).values(referrer_id=REF.id))
    await harness.tap(OWNER, OrdersCB(action="all", deal_id=deal_id, state="delivered"))
    assert "2 members are told privately." in harness.last_edit().text  # buyers, not Rita
    await harness.tap(OWNER, OrdersCB(action="all", deal_id=deal_id, state="delivered"))
    await harness.settle()
    assert await ledger(harness) == [(REF.id, "earned", 250), (REF.id, "earned", 125)]
    [notice] = harness.api.sent(REF.id)  # one message for both orders
    assert notice.text.count("You earned") == 2 and notice.text.count("/mycredit") == 1
    assert f"You earned {money(125)}" in notice.text


async def test_mark_paid_then_refund_reverses_and_tells_everyone(harness) -> None:
    deal_id, group_id, ids = await attributed_deal(harness)
    alice = ids[ALICE.id]
    await harness.tap(OWNER, OrdersCB(action="order", deal_id=deal_id, order_id=alice))
    data = harness.callbacks(harness.last_edit())
    assert f"ord:paid:{deal_id}:{alice}::0" in data and f"ord:rfask:{deal_id}:{alice}::0" in data

    answer = await harness.tap(OWNER, OrdersCB(action="paid", deal_id=deal_id, order_id=alice))
    assert answer.text == "Marked paid."
    card = harness.last_edit()
    assert "Paid: " in card.text and f"ord:paid:{deal_id}:{alice}::0" not in harness.callbacks(card)
    answer = await harness.tap(OWNER, OrdersCB(action="paid", deal_id=deal_id, order_id=alice))
    assert answer.text == "Already paid; nothing changed."
    await harness.settle()
    assert await ledger(harness) == [(REF.id, "earned", 250)]
    assert len(harness.api.sent(REF.id)) == 1

    await harness.tap(OWNER, OrdersCB(action="rfask", deal_id=deal_id, order_id=alice))
    ask = harness.last_edit()
    assert "This cannot be undone" in ask.text and "Alice (@alice)" in ask.text
    assert harness.callbacks(ask)[0] == f"ord:refund:{deal_id}:{alice}::0"
    assert await ledger(harness) == [(REF.id, "earned", 250)]  # asking changes nothing
    answer = await harness.tap(OWNER, OrdersCB(action="refund", deal_id=deal_id, order_id=alice))
    assert answer.text == "Order cancelled."
    answer = await harness.tap(OWNER, OrdersCB(action="refund", deal_id=deal_id, order_id=alice))
    assert answer.text == "Already cancelled; nothing changed."
    await harness.settle()
    assert await ledger(harness) == [(REF.id, "earned", 250), (REF.id, "reversed", -250)]
    reversed_notice = harness.last(REF)
    assert f"{money(250)} of credit in Fruit 团 was reversed" in reversed_notice.text
    assert "was cancelled by the group's owner" in harness.last(ALICE).text
    async with harness.db.read() as s:
        assert (await s.get(Order, alice)).status == "cancelled"
        assert await credit.balance(s, group_id, REF.id, "CNY") == 0
    # the list and its totals treat it as cancelled
    text = (await harness.say(OWNER, f"/orders D{deal_id}")).text
    assert "· cancelled ·" in text and f"Revenue: {money(1250)} (CNY)" in text
    # a refund of another owner's order or of an unknown one is refused
    for user, data in (
        (OTHER_OWNER, OrdersCB(action="refund", deal_id=deal_id, order_id=ids[WANG.id])),
        (OWNER, OrdersCB(action="refund", deal_id=deal_id, order_id=2**30)),
    ):
        answer = await harness.tap(user, data)
        assert answer.show_alert
    async with harness.db.read() as s:
        assert (await s.get(Order, ids[WANG.id])).status == "confirmed"


# ---------------------------------------------------------------- /commission


async def test_commission_settings_and_bad_percentages(harness) -> None:
    _d, group_id, _ids = await attributed_deal(harness, bp=500)
    text = (await harness.say(OWNER, "/commission")).text
    assert text == "Choose a group:"
    assert harness.callbacks(harness.last(OWNER)) == [f"com:open:{group_id}:0:"]
    await harness.tap(OWNER, CommissionCB(action="open", group_id=group_id))
    card = harness.last_edit()
    assert "Commission: 5%" in card.text and "Attribution window: 7 days" in card.text
    assert "Members may spend credit on their orders: no" in card.text

    await harness.tap(OWNER, CommissionCB(action="pct", group_id=group_id))
    assert "from 0 to 50" in harness.last(OWNER).text
    for value, reason in (
        ("abc", "is not a number"),
        ("-1", "must be from 0 to 50%"),
        ("51", "must be from 0 to 50%"),
        ("5.555", "at most 2 decimals"),
    ):
        reply = (await harness.say(OWNER, value)).text
        assert reason in reply and "Nothing was changed." in reply, (value, reply)
        assert await group_row(harness, group_id) == (500, 7, False)
    reply = (await harness.say(OWNER, "7.5%")).text
    assert reply.startswith("Saved.") and "Commission: 7.5%" in reply
    assert await group_row(harness, group_id) == (750, 7, False)

    await harness.tap(OWNER, CommissionCB(action="days", group_id=group_id))
    assert "1 to 90" in (await harness.say(OWNER, "0")).text
    assert "not a whole number" in (await harness.say(OWNER, "a week")).text
    assert await group_row(harness, group_id) == (750, 7, False)
    assert "Attribution window: 14 days" in (await harness.say(OWNER, "14")).text

    answer = await harness.tap(OWNER, CommissionCB(action="son", group_id=group_id))
    assert answer.text == "Saved."
    assert "spend credit on their orders: yes" in harness.last_edit().text
    await harness.tap(OWNER, CommissionCB(action="son", group_id=group_id))  # a double tap
    assert await group_row(harness, group_id) == (750, 14, True)

    # a member who does not administer the group: refused, nothing changed
    for action in ("open", "pct", "soff", "bal"):
        answer = await harness.tap(ALICE, CommissionCB(action=action, group_id=group_id))
        assert answer.show_alert and "Only the owner and administrators" in answer.text
    assert "You don't run any group" in (await harness.say(ALICE, "/commission")).text
    assert await group_row(harness, group_id) == (750, 14, True)


async def test_deal_commission_override(harness) -> None:
    deal_id, _g, ids = await attributed_deal(harness, bp=1000)
    for value, reason in (
        ("abc", "is not a number"),
        ("-1", "from 0 to 50%"),
        ("51", "from 0 to 50%"),
        ("5.555", "at most 2 decimals"),
    ):
        assert reason in (await harness.say(OWNER, f"/commission D{deal_id} {value}")).text
    reply = (await harness.say(OTHER_OWNER, f"/commission D{deal_id} 8")).text
    assert reply == "That deal does not exist or is not yours."  # like an unknown deal
    assert reply == (await harness.say(OTHER_OWNER, "/commission D999999 8")).text
    assert "Usage" in (await harness.say(OWNER, "/commission mangoes 5")).text
    async with harness.db.read() as s:
        assert (await s.get(Deal, deal_id)).commission_bp is None
    reply = (await harness.say(OWNER, f"/commission d{deal_id} 8")).text
    assert reply.endswith("8%, instead of the group's.")
    async with harness.db.transaction() as s:
        await fulfilment.mark(s, ids[ALICE.id], OWNER.id, "picked_up", utcnow())
    assert await ledger(harness) == [(REF.id, "earned", 200)]  # 8 % of 25.00
    reply = (await harness.say(OWNER, f"/commission D{deal_id} off")).text
    assert "now uses the commission of each group" in reply
    async with harness.db.read() as s:
        assert (await s.get(Deal, deal_id)).commission_bp is None


async def test_balances_and_payouts(harness) -> None:
    deal_id, group_id, ids = await attributed_deal(harness)
    async with harness.db.transaction() as s:
        await fulfilment.mark(s, ids[ALICE.id], OWNER.id, "picked_up", utcnow())
    await harness.tap(OWNER, CommissionCB(action="bal", group_id=group_id))
    view = harness.last_edit()
    assert f"1. Rita (@rita) · {money(250)}" in view.text
    assert harness.callbacks(view)[0] == f"com:pay:{group_id}:{REF.id}:CNY"

    await harness.tap(OWNER, CommissionCB(action="pay", group_id=group_id, user_id=REF.id,
                                           cur="CNY"))  # fmt: skip
    assert f"Their balance is {money(250)}" in harness.last(OWNER).text
    reply = (await harness.say(OWNER, "3")).text
    assert f"more than the member's balance of {money(250)}; nothing was recorded" in reply
    assert "not a price" in (await harness.say(OWNER, "1..2")).text
    assert "in CNY" in (await harness.say(OWNER, "1 USD")).text
    assert await ledger(harness) == [(REF.id, "earned", 250)]
    reply = (await harness.say(OWNER, "1.50")).text
    assert reply.startswith(f"Payout of {money(150)} to Rita (@rita) recorded.")
    assert f"Rita (@rita) · {money(100)}" in reply
    assert await ledger(harness) == [(REF.id, "earned", 250), (REF.id, "payout", -150)]
    # forged: another member with no credit, and a non-admin
    answer = await harness.tap(OWNER, CommissionCB(action="pay", group_id=group_id,
                                                    user_id=GRAND.id, cur="CNY"))  # fmt: skip
    assert answer.show_alert and "no credit" in answer.text
    answer = await harness.tap(ALICE, CommissionCB(action="pay", group_id=group_id,
                                                    user_id=REF.id, cur="CNY"))  # fmt: skip
    assert answer.show_alert
    assert len(await ledger(harness)) == 2 and deal_id


# ---------------------------------------------------------------- /mycredit


async def test_mycredit_shows_balance_history_and_spends(harness) -> None:
    deal_id, group_id, ids = await attributed_deal(harness, spendable=True)
    assert "You have no credit yet" in (await harness.say(REF, "/mycredit")).text
    async with harness.db.transaction() as s:
        await fulfilment.mark(s, ids[ALICE.id], OWNER.id, "picked_up", utcnow())
        await s.execute(update(CreditEntry).values(created_at=AT))
    text = (await harness.say(REF, "/mycredit")).text
    assert "<b>Your credit</b>" in text
    assert f"<b>Fruit 团</b>: {money(250)}" in text
    assert f"2026-03-01 20:00 · earned · +{money(250)} · D{deal_id}" in text
    assert harness.last(REF).reply_markup is None  # Rita has no order to pay

    # Rita's own order in a second deal of the same group: 1 × 12.50, credit 2.50 usable
    deal2, ids2 = await make_deal(harness, [(REF, 1)], close=True, chat_id=-100779)
    async with harness.db.transaction() as s:
        await s.execute(update(Order).where(Order.id == ids2[REF.id]).values(group_id=group_id))
    await harness.say(REF, "/mycredit")
    use = MyCreditCB(action="use", order_id=ids2[REF.id]).pack()
    request = harness.last(REF)
    assert harness.callbacks(request) == [use]
    assert request.reply_markup.inline_keyboard[0][0].text == (
        f"Use credit on D{deal2} ({money(250)})"
    )
    # another member cannot use it on Rita's order, and Alice has no credit
    answer = await harness.tap(ALICE, MyCreditCB(action="use", order_id=ids2[REF.id]))
    assert answer.show_alert and "not yours" in answer.text
    answer = await harness.tap(REF, MyCreditCB(action="use", order_id=ids2[REF.id]))
    assert answer.text == f"{money(250)} of credit used."
    view = harness.last_edit()
    assert f"<b>Fruit 团</b>: {money(0)}" in view.text and "used on an order" in view.text
    answer = await harness.tap(REF, MyCreditCB(action="use", order_id=ids2[REF.id]))
    assert answer.show_alert and "no credit left" in answer.text
    async with harness.db.read() as s:
        assert (await s.get(Order, ids2[REF.id])).discount == 250
    assert await ledger(harness) == [(REF.id, "earned", 250), (REF.id, "spent", -250)]
    # the owner sees what is left to pay on the card
    await harness.tap(OTHER_OWNER, OrdersCB(action="order", deal_id=deal2,
                                             order_id=ids2[REF.id]))  # fmt: skip
    assert harness.api.answers()[-1].show_alert  # not the owner of deal 2
    await harness.tap(OWNER, OrdersCB(action="order", deal_id=deal2, order_id=ids2[REF.id]))
    assert f"Credit used: {money(250)} · left to pay: {money(1000)}" in harness.last_edit().text


async def test_spending_is_refused_when_the_group_does_not_allow_it(harness) -> None:
    _d, group_id, ids = await attributed_deal(harness)
    async with harness.db.transaction() as s:
        await fulfilment.mark(s, ids[ALICE.id], OWNER.id, "picked_up", utcnow())
        # 小王's confirmed order, with credit of his own
        s.add(CreditEntry(group_id=group_id, user_id=WANG.id, currency="CNY", amount=500,
                          kind="earned", created_at=utcnow()))  # fmt: skip
    await harness.say(WANG, "/mycredit")
    assert harness.last(WANG).reply_markup is None
    answer = await harness.tap(WANG, MyCreditCB(action="use", order_id=ids[WANG.id]))
    assert answer.show_alert
    async with harness.db.read() as s:
        assert (await s.get(Order, ids[WANG.id])).discount == 0
    assert harness.api.of(m.EditMessageText) == []


async def test_fifty_long_balances_fit_in_one_message(harness) -> None:
    """Balances of many members with long names stay within Telegram's 4096 characters
    (the list ends with "…"), so a payout's reply never fails after the payout."""
    from handlers.credit import balances_view
    from models import User

    async with harness.db.transaction() as s:
        group = Group(chat_id=-100777, title="G" * 200, timezone="UTC", currency="CNY",
                      language="en")  # fmt: skip
        s.add(group)
        await s.flush()
        for n in range(50):
            uid = 700_000 + n
            s.add(User(id=uid, first_name="Ｎ" * 60, last_name="x" * 60, username=f"u{n:030d}"))
            s.add(CreditEntry(group_id=group.id, user_id=uid, currency="CNY", amount=10_000 + n,
                              kind="earned"))  # fmt: skip
        group_id = group.id
    with harness.app.i18n.context(), harness.app.i18n.use_locale("en"):
        async with harness.db.read() as s:
            text, keyboard = await balances_view(s, await s.get(Group, group_id))
    assert len(text) <= 4096 and text.endswith("…")
    assert len(keyboard.inline_keyboard) <= 51

"""The books of payments (services.payment_books) on both databases: what was collected in
a period per currency (surplus payments never count, refunds are subtracted when they are
made), what is outstanding, an order's payment state; and where they show: the exports'
columns, the owner's /orders lines, the member's /myorders, the digests."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiogram import methods as m
from openpyxl import load_workbook
from sqlalchemy import update

from handlers.callbacks import OrdersCB
from models import Database, Deal, DealPost, Group, Order, Payment
from services import digest as digest_service
from services import payment_books
from services.money import format_money
from services.timezones import utcnow
from tests import test_digest
from tests.builders import person
from tests.test_owner_orders import OWNER, make_deal

SINCE = datetime(2026, 11, 19, 8, 0, tzinfo=UTC)
UNTIL = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
IN = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)
BEFORE = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
AFTER = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PAY_BY = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai

PAID = person(631, "Paula")
UNPAID = person(632, "Umar")
OWED = person(633, "Oona")
REFUNDED = person(634, "Rita")
LI = person(635, "小李", language="zh-hans")


def cny(minor: int) -> str:
    return format_money(minor, "CNY", "en")


class Seeder:
    """Rows written straight into the tables: groups, deals, orders and payments."""

    def __init__(self, session) -> None:
        self.s = session
        self.n = 0

    def _next(self) -> int:
        self.n += 1
        return self.n

    async def group(self, chat_id: int) -> Group:
        group = Group(chat_id=chat_id, title=f"G{chat_id}", type="supergroup",
                      timezone="Asia/Shanghai", currency="CNY", language="en")  # fmt: skip
        self.s.add(group)
        await self.s.flush()
        return group

    async def deal(self, group: Group, pay_method: str, currency: str = "CNY") -> Deal:
        deal = Deal(
            owner_id=OWNER.id,
            title=f"{pay_method} deal",
            currency=currency,
            unit_price=1000,
            opens_at=BEFORE,
            closes_at=IN,
            closed_at=IN,
            status="succeeded",
            pay_method=pay_method,
        )
        self.s.add(deal)
        await self.s.flush()
        self.s.add(DealPost(deal_id=deal.id, group_id=group.id))
        return deal

    async def order(self, deal: Deal, group: Group | None, amount: int, **values) -> Order:
        number = self._next()
        fields = {"quantity": 1, "status": "confirmed", "discount": 0}
        fields.update(values)
        order = Order(
            deal_id=deal.id,
            user_id=90_000 + number,
            group_id=group.id if group is not None else None,
            amount=amount,
            pickup_code=f"BK{number}",
            **fields,
        )
        self.s.add(order)
        await self.s.flush()
        return order

    async def payment(
        self, order: Order | None, amount: int, currency: str = "CNY", **values
    ) -> Payment:
        number = self._next()
        fields = {"applied": True, "refund": "none", "created_at": IN, "method": "card"}
        fields.update(values)
        payment = Payment(
            charge_id=f"tg-{number}",
            provider_charge_id=f"prov-{number}",
            order_id=order.id if order is not None else None,
            user_id=order.user_id if order is not None else 1,
            currency=currency,
            amount=amount,
            **fields,
        )
        self.s.add(payment)
        await self.s.flush()
        return payment


async def seed_books(db: Database) -> tuple[int, int, list[int]]:
    """Two groups with payments around [SINCE, UNTIL); returns (g1, g2, g1's order ids)."""
    async with db.transaction() as s:
        seed = Seeder(s)
        g1, g2 = await seed.group(-100901), await seed.group(-100902)
        card, stars = await seed.deal(g1, "card"), await seed.deal(g1, "stars", "XTR")
        cash, card2 = await seed.deal(g1, "cash"), await seed.deal(g2, "card")

        async def paid(deal, group, amount, currency="CNY", **payment):
            order = await seed.order(deal, group, amount, paid_at=IN, paid_amount=amount)
            await seed.payment(order, amount, currency, **payment)
            return order

        ids = [
            (await paid(card, g1, 2500)).id,  # +2500
            # paid and refunded in the period (card, outside): +1000 − 1000
            (await paid(card, g1, 1000, refund="outside", refunded_at=IN)).id,
            # paid before, refunded (Stars) in the period: −700
            (await paid(card, g1, 700, created_at=BEFORE, refund="refunded", refunded_at=IN)).id,
            # a refund still on its way, and one Telegram refused: the money is still in
            (await paid(card, g1, 300, refund="pending")).id,
            (await paid(card, g1, 200, refund="failed")).id,
            (await paid(card, g1, 400, created_at=AFTER)).id,  # after the period
            (await paid(card, g1, 600, created_at=BEFORE)).id,  # before it
            (await paid(card, g1, 800, refund="refunded", refunded_at=AFTER)).id,  # +800
            (await paid(stars, g1, 50, "XTR", method="stars")).id,  # ⭐ 50
        ]
        first = await s.get(Order, ids[0])
        # Surplus payments on a paid order: never revenue, whether owed or refunded.
        await seed.payment(first, 999, applied=False, refund="owed")
        await seed.payment(first, 888, applied=False, refund="refunded", refunded_at=IN)
        await paid(card2, g2, 5000)  # the other group
        await seed.payment(None, 111)  # its order was deleted: only in the all-groups sum

        # What is still owed.
        await seed.order(card, g1, 2500, discount=500, pay_by=PAY_BY)  # 2000
        await seed.order(card, g1, 900, pay_by=None)  # no deadline: not due
        await seed.order(card, g1, 900, status="cancelled", pay_by=PAY_BY)
        await seed.order(card, g1, 900, quantity=0, status="active", pay_by=PAY_BY)
        await seed.order(card, g1, 900, pay_by=PAY_BY, paid_at=IN)  # paid (by cash)
        await seed.order(cash, g1, 900, pay_by=PAY_BY)  # a cash deal: not counted
        await seed.order(stars, g1, 30, status="active", pay_by=PAY_BY)  # a held unit: ⭐ 30
        await seed.order(card2, g2, 1200, pay_by=PAY_BY)
        return g1.id, g2.id, ids


async def test_collected_per_currency(db) -> None:
    g1, g2, ids = await seed_books(db)
    async with db.read() as s:
        mine = await payment_books.collected(s, group_ids=[g1], since=SINCE, until=UNTIL)
        assert mine == {"CNY": 2500 + 1000 - 1000 - 700 + 300 + 200 + 800, "XTR": 50}
        both = await payment_books.collected(s, group_ids=[g1, g2], since=SINCE, until=UNTIL)
        assert both == {"CNY": 3100 + 5000, "XTR": 50}
        everything = await payment_books.collected(s, group_ids=None, since=SINCE, until=UNTIL)
        assert everything == {"CNY": 3100 + 5000 + 111, "XTR": 50}
        # IN lists go in chunks: 1 200 ids (most of them no group) change nothing
        many = [*range(10_000, 11_200), g1]
        assert await payment_books.collected(s, group_ids=many, since=SINCE, until=UNTIL) == mine
        # the day after: the late payment, less the refund made then
        later = await payment_books.collected(
            s, group_ids=[g1], since=UNTIL, until=UNTIL + timedelta(days=1)
        )
        assert later == {"CNY": 400 - 800}
        assert await payment_books.collected(s, group_ids=[], since=SINCE, until=UNTIL) == {}


async def test_outstanding_per_currency(db) -> None:
    g1, g2, _ids = await seed_books(db)
    async with db.read() as s:
        assert await payment_books.outstanding(s, group_ids=[g1]) == {"CNY": 2000, "XTR": 30}
        assert await payment_books.outstanding(s, group_ids=[g2]) == {"CNY": 1200}
        assert await payment_books.outstanding(s, group_ids=None) == {"CNY": 3200, "XTR": 30}
        many = [*range(10_000, 11_200), g1]
        assert await payment_books.outstanding(s, group_ids=many) == {"CNY": 2000, "XTR": 30}


async def test_of_orders_in_chunks(db) -> None:
    _g1, _g2, ids = await seed_books(db)
    async with db.read() as s:
        found = await payment_books.of_orders(s, [*range(100_000, 101_100), *ids])
        assert sorted(found) == sorted(ids)
        assert [p.amount for p in found[ids[0]]] == [2500, 999, 888]  # oldest first
        assert await payment_books.of_orders(s, []) == {}


def _payment(applied: bool = True, refund: str = "none", at: datetime = IN) -> Payment:
    return Payment(applied=applied, refund=refund, created_at=at, refunded_at=at)


def test_refund_state() -> None:
    state = payment_books.refund_state
    assert state([]) == ""
    assert state([_payment()]) == "paid"
    assert state([_payment(refund="pending")]) == "refund_pending"
    assert state([_payment(refund="refunded")]) == "refunded"
    assert state([_payment(refund="failed")]) == "refund_failed"
    assert state([_payment(refund="outside")]) == "refunded_outside"
    # a surplus next to the payment that stands: what is left to do comes first
    assert state([_payment(), _payment(False, "owed")]) == "owed"
    assert state([_payment(), _payment(False, "pending")]) == "refund_pending"
    assert state([_payment(), _payment(False, "refunded")]) == "paid"
    # the order's own payment decides over a surplus refunded another way
    assert state([_payment(refund="refunded"), _payment(False, "outside")]) == "refunded"


# ---------------------------------------------------------------- where the books show


async def paid_deal(harness) -> tuple[int, dict[int, int]]:
    """A succeeded card deal in an Asia/Shanghai group: Paula paid, Umar owes 12.50 by
    PAY_BY, Oona paid and paid again (a surplus owed back), Rita was refunded, 小李 owes."""
    members = [(PAID, 2), (UNPAID, 1), (OWED, 1), (REFUNDED, 1), (LI, 1)]
    deal_id, ids = await make_deal(harness, members, close=True)
    async with harness.db.transaction() as s:
        await s.execute(update(Deal).where(Deal.id == deal_id).values(pay_method="card"))
        await s.execute(
            update(Order).where(Order.deal_id == deal_id).values(pay_by=PAY_BY, paid_amount=0)
        )
        for who, refund in ((PAID, "none"), (OWED, "none"), (REFUNDED, "outside")):
            order = await s.get(Order, ids[who.id])
            order.paid_at, order.paid_amount, order.pay_by = IN, order.amount, None
            s.add(
                Payment(charge_id=f"tg-{who.id}", provider_charge_id=f"prov-{who.id}",
                        order_id=order.id, user_id=who.id, method="card", currency="CNY",
                        amount=order.amount, applied=True, refund=refund, created_at=IN,
                        refunded_at=IN if refund != "none" else None)
            )  # fmt: skip
        s.add(
            Payment(charge_id="tg-again", provider_charge_id="", order_id=ids[OWED.id],
                    user_id=OWED.id, method="card", currency="CNY", amount=1250,
                    applied=False, refund="owed", created_at=IN + timedelta(minutes=5))
        )  # fmt: skip
        await s.execute(
            update(Order).where(Order.id == ids[REFUNDED.id]).values(status="cancelled")
        )
    return deal_id, ids


async def test_exports_have_the_payment_columns(harness) -> None:
    deal_id, ids = await paid_deal(harness)
    await harness.tap(OWNER, OrdersCB(action="csv", deal_id=deal_id))
    [request] = harness.api.of(m.SendDocument)
    table = list(csv.reader(io.StringIO(request.document.data.decode("utf-8-sig"))))
    assert table[0][12:] == [
        "Pay method", "Amount owed", "Paid amount", "Charge ids", "Provider charge ids",
        "Refund state", "Team", "Bargain",
    ]  # fmt: skip
    by_order = {int(row[0]): row for row in table[1:]}
    assert by_order[ids[PAID.id]][12:] == [
        "card", "0.00", "25.00", f"tg-{PAID.id}", f"prov-{PAID.id}", "paid", "", "",
    ]  # fmt: skip
    assert by_order[ids[UNPAID.id]][12:] == ["card", "12.50", "0.00", "", "", "", "", ""]
    assert by_order[ids[OWED.id]][12:] == [
        "card", "0.00", "12.50", f"tg-{OWED.id} tg-again", f"prov-{OWED.id}", "owed", "", "",
    ]  # fmt: skip
    # refunded: cancelled, so nothing is charged any more
    assert by_order[ids[REFUNDED.id]][8] == "cancelled"
    assert by_order[ids[REFUNDED.id]][12:] == [
        "card", "", "12.50", f"tg-{REFUNDED.id}", f"prov-{REFUNDED.id}", "refunded_outside", "", "",
    ]  # fmt: skip

    harness.api.clear()
    await harness.tap(OWNER, OrdersCB(action="xlsx", deal_id=deal_id))
    [request] = harness.api.of(m.SendDocument)
    sheet = load_workbook(io.BytesIO(request.document.data)).active
    rows = {r[0]: r for r in list(sheet.iter_rows(values_only=True))[1:]}
    paid = rows[ids[PAID.id]]
    assert paid[12] == "card" and Decimal(str(paid[13])) == 0
    assert Decimal(str(paid[14])) == Decimal("25.00")
    assert paid[15:] == (f"tg-{PAID.id}", f"prov-{PAID.id}", "paid", None, None)
    assert sheet["O2"].number_format == "0.00"  # money, as numbers


async def test_owner_orders_show_payments(harness) -> None:
    deal_id, _ids = await paid_deal(harness)
    text = (await harness.say(OWNER, f"/orders D{deal_id}")).text
    lines = {
        line.split(" ×")[0].split(". ", 1)[1]: line for line in text.split("\n") if " ×" in line
    }
    assert " · paid · " in lines["Paula"]
    assert f" · unpaid, {cny(1250)} due · " in lines["Umar"]
    assert " · refund owed · " in lines["Oona"]
    assert " · refunded outside Telegram · " in lines["Rita"]
    # a cash deal's lines are as they were
    cash_id, _ = await make_deal(harness, [(UNPAID, 1)], close=True, chat_id=-100779)
    text = (await harness.say(OWNER, f"/orders D{cash_id}")).text
    assert "due" not in text and "refund" not in text and " · paid" not in text


async def test_my_orders_show_what_to_pay(harness) -> None:
    await paid_deal(harness)
    text = (await harness.say(UNPAID, "/myorders")).text
    assert f"To pay: {cny(1250)} by 2026-03-02 12:00" in text  # Asia/Shanghai
    assert "Payment: paid" in (await harness.say(PAID, "/myorders")).text
    assert "Payment: refund owed" in (await harness.say(OWED, "/myorders")).text
    assert "Payment: refunded outside Telegram" in (await harness.say(REFUNDED, "/myorders")).text
    chinese = (await harness.say(LI, "/myorders")).text
    assert "待付款" in chinese and "2026-03-02 12:00" in chinese
    assert format_money(1250, "CNY", "zh_Hans") in chinese


async def test_cash_deals_in_my_orders_are_unchanged(harness) -> None:
    await make_deal(harness, [(UNPAID, 1)], close=True)
    text = (await harness.say(UNPAID, "/myorders")).text
    assert "To pay" not in text and "Payment:" not in text


async def _seed_digest_payments(db: Database, group_id: int, at: datetime) -> None:
    async with db.transaction() as s:
        seed = Seeder(s)
        group = await s.get(Group, group_id)
        card = await seed.deal(group, "card")
        stars = await seed.deal(group, "stars", "XTR")
        order = await seed.order(card, group, 2500, paid_at=at, paid_amount=2500)
        await seed.payment(order, 2500, created_at=at)
        await seed.payment(order, 2500, created_at=at, applied=False, refund="owed")  # surplus
        order = await seed.order(stars, group, 40, paid_at=at, paid_amount=40)
        await seed.payment(order, 40, "XTR", created_at=at, method="stars")
        await seed.order(card, group, 1500, pay_by=at + timedelta(days=1))


async def test_digest_shows_collected_and_outstanding(harness) -> None:
    gid = await test_digest.seed(harness.db)
    helper = test_digest.HELPER
    await harness.send(helper, "/digest 2026-11-19")
    [before] = harness.api.texts(helper.id)
    assert "Collected" not in before and "Outstanding" not in before  # no payments: unchanged
    await _seed_digest_payments(harness.db, gid, datetime(2026, 11, 19, 20, 0, tzinfo=UTC))
    async with harness.db.read() as s:
        group = await s.get(Group, gid)
        built = await digest_service.build(
            s, group, digest_service.Period(test_digest.D, test_digest.D), test_digest.NOW
        )
    assert built.collected == {"CNY": 2500, "XTR": 40}
    assert built.outstanding == {"CNY": 1500}
    harness.api.clear()
    await harness.send(helper, "/digest 2026-11-19")
    [text] = harness.api.texts(helper.id)
    assert f"Collected (CNY): <b>{cny(2500)}</b>" in text
    assert "Collected (XTR): <b>⭐ 40</b>" in text
    assert f"Outstanding (CNY): <b>{cny(1500)}</b>" in text
    assert "Outstanding (XTR)" not in text
    harness.api.clear()
    await harness.send(helper, "/digest 2026-11-18")  # nothing collected that day
    [text] = harness.api.texts(helper.id)
    assert "Collected" not in text and f"Outstanding (CNY): <b>{cny(1500)}</b>" in text
    harness.api.clear()
    await harness.send(test_digest.OWNER, "/digest 2026-11-19")  # the owner reads Chinese
    text = harness.api.texts(test_digest.OWNER.id)[0]
    assert "已收款（CNY）" in text and "待收款（CNY）" in text


async def test_operators_digest_shows_collected_and_outstanding(harness) -> None:
    gid = await test_digest.seed(harness.db)
    operator = person(42)
    await harness.send(operator, "/digest all")
    assert "Collected" not in harness.api.texts(42)[0]
    # the operators' digest: each group's own yesterday
    day = digest_service.local_today(utcnow(), test_digest.LA) - timedelta(days=1)
    lower, _upper = digest_service.utc_bounds(test_digest.LA, day, day)
    await _seed_digest_payments(harness.db, gid, lower + timedelta(hours=12))
    harness.api.clear()
    await harness.send(operator, "/digest all")
    text = harness.api.texts(42)[0]
    assert f"Collected (CNY): <b>{cny(2500)}</b>" in text
    assert "Collected (XTR): <b>⭐ 40</b>" in text
    assert f"Outstanding (CNY): <b>{cny(1500)}</b>" in text

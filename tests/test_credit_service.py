"""The commission ledger at the service level, on both databases: earned exactly once when an
attributed order is fulfilled, reversed when it is refunded, one level only, payouts and
spending that never overdraw, and the percentage parser."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from models import CreditEntry, Group, GroupAdmin, Order, Referral
from services import credit, deals, fulfilment, orders
from services.timezones import utcnow

OWNER = 501
BUYER, REFERRER, GRANDPARENT, OTHER = 511, 512, 513, 514


async def setup(
    db,
    members: dict[int, int],
    *,
    unit_price: int = 1000,
    group_bp: int = 1000,
    deal_bp: int | None = None,
    referrers: dict[int, int | None] | None = None,
    spendable: bool = False,
    chat_id: int = -1001,
) -> tuple[int, int, dict[int, int]]:
    """A succeeded deal in a group; returns (group id, deal id, {user id: order id})."""
    now = utcnow()
    async with db.transaction() as session:
        group = Group(chat_id=chat_id, title="G", type="supergroup", timezone="Asia/Shanghai",
                      currency="CNY", language="en", is_active=True, commission_bp=group_bp,
                      credit_spendable=spendable, admins_refreshed_at=now)  # fmt: skip
        session.add(group)
        await session.flush()
        session.add(GroupAdmin(group_id=group.id, user_id=OWNER, status="creator"))
        spec = deals.DealSpec(
            title="Mangoes", currency="CNY", unit_price=unit_price,
            closes_at=now + timedelta(hours=2), group_ids=[group.id],
        )  # fmt: skip
        deal = await deals.create(session, OWNER, spec, now)
        deal.commission_bp = deal_bp
        ids = {}
        for user_id, quantity in members.items():
            change = await orders.set_quantity(
                session, deal.id, user_id, quantity, now, group_id=group.id
            )
            ids[user_id] = change.order.id
        for user_id, referrer in (referrers or {}).items():
            await session.execute(
                update(Order).where(Order.id == ids[user_id]).values(referrer_id=referrer)
            )
        await deals.close(session, deal.id, now)
        return group.id, deal.id, ids


async def entries(db, **where) -> list[tuple[int, str, int]]:
    """(user id, kind, amount) of the ledger, in order."""
    async with db.read() as s:
        stmt = select(CreditEntry.user_id, CreditEntry.kind, CreditEntry.amount)
        for key, value in where.items():
            stmt = stmt.where(getattr(CreditEntry, key) == value)
        return [tuple(r) for r in await s.execute(stmt.order_by(CreditEntry.id))]


async def balance_of(db, group_id: int, user_id: int) -> int:
    async with db.read() as s:
        return await credit.balance(s, group_id, user_id, "CNY")


async def mark(db, order_id: int, state: str):
    async with db.transaction() as s:
        if state == "paid":
            return await fulfilment.mark_paid(s, order_id, OWNER, utcnow())
        return await fulfilment.mark(s, order_id, OWNER, state, utcnow())


async def refund(db, order_id: int):
    async with db.transaction() as s:
        return await fulfilment.refund(s, order_id, OWNER, utcnow())


# ---------------------------------------------------------------- the percentage


@pytest.mark.parametrize(
    ("text", "bp"),
    [("5", 500), ("5.5", 550), ("5.5%", 550), ("５％", 500), (" 12.25 % ", 1225), ("0", 0),
     ("50", 5000), ("7,5", 750), ("50.00", 5000), (".5", 50)],
)  # fmt: skip
def test_percentages_are_read_as_basis_points(text: str, bp: int) -> None:
    assert credit.parse_percent(text) == bp


@pytest.mark.parametrize(
    ("text", "reason"),
    [("abc", "not_a_number"), ("", "not_a_number"), ("5%%", "not_a_number"),
     ("1e2", "not_a_number"), ("-1", "out_of_range"), ("51", "out_of_range"),
     ("50.01", "out_of_range"), ("5.555", "too_precise"), ("－１", "out_of_range")],
)  # fmt: skip
def test_bad_percentages_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(credit.BadPercent) as caught:
        credit.parse_percent(text)
    assert caught.value.reason == reason


@given(st.integers(min_value=0, max_value=credit.MAX_BP))
def test_percent_format_and_parse_round_trip(bp: int) -> None:
    assert credit.parse_percent(credit.format_percent(bp)) == bp
    assert credit.parse_percent(credit.format_percent(bp) + "%") == bp


@given(st.text(max_size=12))
def test_the_percent_parser_never_crashes(text: str) -> None:
    try:
        bp = credit.parse_percent(text)
    except credit.BadPercent as exc:
        assert exc.reason in ("not_a_number", "out_of_range", "too_precise")
    else:
        assert 0 <= bp <= credit.MAX_BP


def test_days() -> None:
    assert credit.parse_days("7") == 7 and credit.parse_days("90 days") == 90
    assert credit.parse_days("１４天") == 14
    for text, reason in (("0", "out_of_range"), ("91", "out_of_range"), ("x", "not_a_number")):
        with pytest.raises(credit.BadDays) as caught:
            credit.parse_days(text)
        assert caught.value.reason == reason


# ---------------------------------------------------------------- earning


@pytest.mark.parametrize("state", ["picked_up", "delivered", "paid"])
async def test_earned_once_when_fulfilled(db, state: str) -> None:
    # 3 units × 10.00 = 30.00; 10 % → 3.00
    group_id, _deal, ids = await setup(db, {BUYER: 3}, referrers={BUYER: REFERRER})
    await mark(db, ids[BUYER], "ready")
    assert await entries(db) == []  # ready for pickup is not fulfilled
    marked = await mark(db, ids[BUYER], state)
    assert marked.credit is not None and marked.credit.amount == 300
    assert marked.credit.user_id == REFERRER
    # every other way of fulfilling it again credits nothing more
    for again in ("picked_up", "delivered", "paid"):
        try:
            repeat = await mark(db, ids[BUYER], again)
        except fulfilment.BadTransition:
            continue
        assert repeat.credit is None
    assert await entries(db) == [(REFERRER, "earned", 300)]
    assert await balance_of(db, group_id, REFERRER) == 300
    async with db.transaction() as s:  # a direct second call (a replayed hook) too
        order = await s.get(Order, ids[BUYER])
        assert await credit.on_fulfilled(s, order, utcnow()) is None
    assert await entries(db) == [(REFERRER, "earned", 300)]


async def test_mark_all_credits_each_referrer(db) -> None:
    _g, deal_id, ids = await setup(
        db, {BUYER: 1, OTHER: 2, GRANDPARENT: 1},
        referrers={BUYER: REFERRER, OTHER: REFERRER, GRANDPARENT: None},
    )  # fmt: skip
    async with db.transaction() as s:
        bulk = await fulfilment.mark_all(s, deal_id, OWNER, "delivered", utcnow())
    assert sorted(m.credit.amount for m in bulk.changed if m.credit) == [100, 200]
    assert await entries(db) == [(REFERRER, "earned", 100), (REFERRER, "earned", 200)]


async def test_concurrent_marks_credit_once(db) -> None:
    members = {20_000 + i: 1 for i in range(6)}
    _g, deal_id, ids = await setup(db, members, referrers=dict.fromkeys(members, REFERRER))
    one = ids[20_000]

    async def run(coro_factory):
        try:
            async with db.transaction() as s:
                await coro_factory(s)
        except fulfilment.BadTransition:
            pass

    now = utcnow()
    jobs = [
        *(lambda s: fulfilment.mark_all(s, deal_id, OWNER, "picked_up", now) for _ in range(3)),
        *(lambda s: fulfilment.mark_all(s, deal_id, OWNER, "delivered", now) for _ in range(2)),
        *(lambda s: fulfilment.mark(s, one, OWNER, "picked_up", now) for _ in range(3)),
        *(lambda s: fulfilment.mark_paid(s, one, OWNER, now) for _ in range(3)),
    ]
    await asyncio.gather(*(run(job) for job in jobs))
    rows = await entries(db)
    assert rows == [(REFERRER, "earned", 100)] * 6
    async with db.read() as s:
        per_order = await s.execute(
            select(CreditEntry.order_id, func.count()).group_by(CreditEntry.order_id)
        )
        assert sorted(n for _o, n in per_order) == [1] * 6


async def test_deal_rate_overrides_the_groups(db) -> None:
    _g, _d, ids = await setup(db, {BUYER: 3}, deal_bp=250, referrers={BUYER: REFERRER})
    await mark(db, ids[BUYER], "picked_up")
    assert await entries(db) == [(REFERRER, "earned", 75)]  # 2.5 % of 30.00


async def test_commission_is_rounded_down_and_zero_writes_nothing(db) -> None:
    _g, _d, ids = await setup(
        db, {BUYER: 1, OTHER: 1}, unit_price=333, group_bp=1250,
        referrers={BUYER: REFERRER, OTHER: REFERRER},
    )  # fmt: skip
    await mark(db, ids[BUYER], "picked_up")
    assert await entries(db) == [(REFERRER, "earned", 41)]  # 3.33 × 12.5 % = 0.41625
    async with db.transaction() as s:
        await s.execute(update(Group).values(commission_bp=0))
    await mark(db, ids[OTHER], "picked_up")
    assert await entries(db) == [(REFERRER, "earned", 41)]


async def test_no_credit_without_a_referrer_or_for_oneself(db) -> None:
    _g, _d, ids = await setup(db, {BUYER: 1, OTHER: 1}, referrers={BUYER: None, OTHER: OTHER})
    for order_id in ids.values():
        await mark(db, order_id, "picked_up")
        await mark(db, order_id, "paid")
    assert await entries(db) == []


async def test_no_credit_for_a_referrer_who_was_forgotten(db) -> None:
    """After /forgetme the referrer's id in the books is a pseudonym: nobody to credit."""
    from services.privacy import is_pseudonym

    pseudonym = -(2**62) - 12345
    assert is_pseudonym(pseudonym)
    _g, _d, ids = await setup(db, {BUYER: 1}, referrers={BUYER: pseudonym})
    await mark(db, ids[BUYER], "delivered")
    assert await entries(db) == []


async def test_the_referrers_referrer_earns_nothing(db) -> None:
    # GRANDPARENT invited REFERRER into the group and referred REFERRER's own order;
    # REFERRER referred BUYER's order. Only direct referrers are credited.
    group_id, _d, ids = await setup(
        db, {BUYER: 2, REFERRER: 1}, referrers={BUYER: REFERRER, REFERRER: GRANDPARENT}
    )
    async with db.transaction() as s:
        s.add(Referral(group_id=group_id, user_id=REFERRER, inviter_id=GRANDPARENT,
                       joined_at=utcnow()))  # fmt: skip
        s.add(Referral(group_id=group_id, user_id=BUYER, inviter_id=REFERRER, joined_at=utcnow()))
    await mark(db, ids[BUYER], "delivered")
    assert await entries(db) == [(REFERRER, "earned", 200)]
    assert await entries(db, user_id=GRANDPARENT) == []
    await mark(db, ids[REFERRER], "delivered")  # REFERRER's own order: GRANDPARENT referred it
    assert await entries(db, user_id=GRANDPARENT) == [(GRANDPARENT, "earned", 100)]
    assert await balance_of(db, group_id, REFERRER) == 200


# ---------------------------------------------------------------- reversing


async def test_refund_after_fulfilment_reverses_once(db) -> None:
    group_id, _d, ids = await setup(db, {BUYER: 3}, referrers={BUYER: REFERRER})
    await mark(db, ids[BUYER], "picked_up")
    done = await refund(db, ids[BUYER])
    assert done.changed and [(e.kind, e.amount) for e in done.entries] == [("reversed", -300)]
    again = await refund(db, ids[BUYER])
    assert not again.changed and again.entries == []
    assert await entries(db) == [(REFERRER, "earned", 300), (REFERRER, "reversed", -300)]
    assert await balance_of(db, group_id, REFERRER) == 0
    # a cancelled order is not fulfilled again, so it never earns again
    with pytest.raises(fulfilment.NotConfirmed):
        await mark(db, ids[BUYER], "paid")
    async with db.transaction() as s:
        order = await s.get(Order, ids[BUYER])
        assert order.status == "cancelled"
        assert await credit.on_fulfilled(s, order, utcnow()) is None
        assert await credit.on_cancelled(s, order, utcnow()) == []
    assert len(await entries(db)) == 2


async def test_refund_before_fulfilment_has_nothing_to_reverse(db) -> None:
    _g, _d, ids = await setup(db, {BUYER: 1}, referrers={BUYER: REFERRER})
    done = await refund(db, ids[BUYER])
    assert done.changed and done.entries == []
    assert await entries(db) == []
    with pytest.raises(fulfilment.NotConfirmed):
        await mark(db, ids[BUYER], "picked_up")


async def test_concurrent_refunds_reverse_once(db) -> None:
    _g, _d, ids = await setup(db, {BUYER: 3}, referrers={BUYER: REFERRER})
    await mark(db, ids[BUYER], "delivered")
    results = await asyncio.gather(*(refund(db, ids[BUYER]) for _ in range(5)))
    assert sum(r.changed for r in results) == 1
    assert await entries(db) == [(REFERRER, "earned", 300), (REFERRER, "reversed", -300)]


# ---------------------------------------------------------------- payouts and spending


async def test_ledger_sums_after_earn_spend_payout_and_refund(db) -> None:
    # REFERRER earns 10 % of BUYER's 50.00 and of OTHER's 30.00: 5.00 + 3.00
    group_id, deal_id, ids = await setup(
        db, {BUYER: 5, OTHER: 3}, referrers={BUYER: REFERRER, OTHER: REFERRER}, spendable=True
    )
    await mark(db, ids[BUYER], "picked_up")
    await mark(db, ids[OTHER], "paid")
    assert await balance_of(db, group_id, REFERRER) == 800
    # REFERRER's own order in a second deal of the group: 2 × 10.00; spends 8.00 on it
    _g2, _d2, own = await setup(db, {REFERRER: 2}, chat_id=-1002)
    async with db.transaction() as s:
        await s.execute(update(Order).where(Order.id == own[REFERRER]).values(group_id=group_id))
        entry = await credit.spend(s, own[REFERRER], REFERRER, utcnow())
    assert entry.amount == -800
    assert await balance_of(db, group_id, REFERRER) == 0
    # OTHER's order is refunded: its 3.00 is reversed, the balance goes below zero
    await refund(db, ids[OTHER])
    assert await balance_of(db, group_id, REFERRER) == -300
    async with db.transaction() as s:
        with pytest.raises(credit.PayoutRefused) as caught:
            await credit.record_payout(s, group_id, REFERRER, "CNY", 1, OWNER, utcnow())
        assert caught.value.reason == "over_balance" and caught.value.balance == -300
    # the own order is refunded too: the 8.00 spent on it comes back
    async with db.transaction() as s:
        await fulfilment.refund(s, own[REFERRER], OWNER, utcnow())
    assert await balance_of(db, group_id, REFERRER) == 500
    async with db.transaction() as s:
        await credit.record_payout(s, group_id, REFERRER, "CNY", 200, OWNER, utcnow())
    assert await balance_of(db, group_id, REFERRER) == 300
    assert await entries(db, user_id=REFERRER) == [
        (REFERRER, "earned", 500), (REFERRER, "earned", 300), (REFERRER, "spent", -800),
        (REFERRER, "reversed", -300), (REFERRER, "spent", 800), (REFERRER, "payout", -200),
    ]  # fmt: skip
    async with db.read() as s:
        [b] = await credit.balances_of_user(s, REFERRER)
        assert (b.group_id, b.currency, b.amount) == (group_id, "CNY", 300)
        [b] = await credit.balances_in_group(s, group_id)
        assert (b.user_id, b.amount) == (REFERRER, 300)
        items = await credit.history(s, REFERRER, group_id, limit=3)
        assert [i.entry.kind for i in items] == ["payout", "spent", "reversed"]
        assert items[0].deal_code is None and items[2].deal_code == f"D{deal_id}"


async def test_payout_refusals(db) -> None:
    group_id, _d, ids = await setup(db, {BUYER: 3}, referrers={BUYER: REFERRER})
    await mark(db, ids[BUYER], "picked_up")
    for amount, reason in ((301, "over_balance"), (0, "not_positive"), (-5, "not_positive")):
        async with db.transaction() as s:
            with pytest.raises(credit.PayoutRefused) as caught:
                await credit.record_payout(s, group_id, REFERRER, "CNY", amount, OWNER, utcnow())
        assert caught.value.reason == reason
    async with db.transaction() as s:  # another currency has no balance
        with pytest.raises(credit.PayoutRefused):
            await credit.record_payout(s, group_id, REFERRER, "USD", 1, OWNER, utcnow())
    assert await entries(db) == [(REFERRER, "earned", 300)]


async def test_concurrent_payouts_never_overdraw(db) -> None:
    group_id, _d, ids = await setup(db, {BUYER: 10}, referrers={BUYER: REFERRER})
    await mark(db, ids[BUYER], "picked_up")  # 10.00 credited

    async def pay() -> bool:
        try:
            async with db.transaction() as s:
                await credit.record_payout(s, group_id, REFERRER, "CNY", 300, OWNER, utcnow())
            return True
        except credit.PayoutRefused:
            return False

    results = await asyncio.gather(*(pay() for _ in range(8)))
    assert sum(results) == 3
    assert await balance_of(db, group_id, REFERRER) == 100


async def test_spend_is_capped_at_the_order_amount(db) -> None:
    # REFERRER has 20.00 of credit; their order costs 10.00 and pays nothing after the spend
    group_id, _d, ids = await setup(
        db, {BUYER: 20, REFERRER: 1}, referrers={BUYER: REFERRER}, spendable=True
    )
    await mark(db, ids[BUYER], "picked_up")
    async with db.read() as s:
        [(order, _deal, have)] = await credit.spendable_orders(s, REFERRER)
        assert order.id == ids[REFERRER] and have == 2000
    async with db.transaction() as s:
        entry = await credit.spend(s, ids[REFERRER], REFERRER, utcnow())
    assert entry.amount == -1000
    async with db.transaction() as s:
        with pytest.raises(credit.CannotSpend) as caught:
            await credit.spend(s, ids[REFERRER], REFERRER, utcnow())
        assert caught.value.reason == "nothing_to_pay"
        assert (await s.get(Order, ids[REFERRER])).discount == 1000
        assert await credit.spendable_orders(s, REFERRER) == []
    assert await balance_of(db, group_id, REFERRER) == 1000


async def test_concurrent_spends_never_overdraw(db) -> None:
    # 6.00 of credit, four orders of 3.00, 4.00, 5.00 and 10.00 spent on all at once
    members = {BUYER: 6}
    group_id, _d, ids = await setup(db, members, referrers={BUYER: REFERRER}, spendable=True)
    await mark(db, ids[BUYER], "picked_up")
    mine = []
    for n, price in enumerate((300, 400, 500, 1000)):
        _g, _deal, own = await setup(db, {REFERRER: 1}, unit_price=price, chat_id=-2000 - n)
        mine.append(own[REFERRER])
    async with db.transaction() as s:
        await s.execute(update(Order).where(Order.id.in_(mine)).values(group_id=group_id))

    async def use(order_id: int) -> int:
        try:
            async with db.transaction() as s:
                return -(await credit.spend(s, order_id, REFERRER, utcnow())).amount
        except credit.CannotSpend as exc:
            assert exc.reason in ("no_credit", "nothing_to_pay")
            return 0

    used = await asyncio.gather(*(use(o) for o in mine + mine))
    assert sum(used) == 600
    assert await balance_of(db, group_id, REFERRER) == 0
    async with db.read() as s:
        for order in await s.scalars(select(Order).where(Order.id.in_(mine))):
            assert 0 <= order.discount <= order.amount


async def test_spend_refusals_change_nothing(db) -> None:
    group_id, deal_id, ids = await setup(
        db, {BUYER: 20, REFERRER: 1, OTHER: 1}, referrers={BUYER: REFERRER}
    )
    await mark(db, ids[BUYER], "picked_up")

    async def refused(order_id: int, user_id: int) -> str:
        async with db.transaction() as s:
            with pytest.raises(credit.CannotSpend) as caught:
                await credit.spend(s, order_id, user_id, utcnow())
        return caught.value.reason

    assert await refused(ids[REFERRER], REFERRER) == "not_allowed"  # group setting is off
    async with db.transaction() as s:
        await s.execute(update(Group).values(credit_spendable=True))
    assert await refused(ids[REFERRER], OTHER) == "not_yours"
    assert await refused(ids[OTHER], OTHER) == "no_credit"
    assert await refused(ids[BUYER], BUYER) == "order"  # already picked up
    await mark(db, ids[REFERRER], "paid")
    assert await refused(ids[REFERRER], REFERRER) == "order"  # already paid
    assert await entries(db) == [(REFERRER, "earned", 2000)]
    assert deal_id and group_id

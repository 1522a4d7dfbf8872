"""Orders at the service level: atomic quantities, never oversell, one closing."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models import Deal, Group, Order
from services import deals, orders
from services.timezones import utcnow


async def make_deal(db, **overrides) -> int:
    now = utcnow()
    async with db.transaction() as session:
        group = Group(chat_id=-1001, title="G", type="supergroup", timezone="Asia/Shanghai",
                      currency="CNY", language="en", is_active=True)  # fmt: skip
        session.add(group)
        await session.flush()
        spec = deals.DealSpec(
            title="Mangoes", currency="CNY", unit_price=1250,
            closes_at=now + timedelta(hours=2), group_ids=[group.id],
        )  # fmt: skip
        for key, value in overrides.items():
            setattr(spec, key, value)
        deal = await deals.create(session, 1, spec, now)
        return deal.id


async def test_many_concurrent_joins_never_oversell(db) -> None:
    deal_id = await make_deal(db, stock=100)

    async def one(user_id: int) -> str:
        try:
            async with db.transaction() as session:
                await orders.join(session, deal_id, user_id, utcnow())
            return "ok"
        except orders.SoldOut:
            return "sold_out"

    results = await asyncio.gather(*(one(10_000 + i) for i in range(500)))
    assert results.count("ok") == 100
    assert results.count("sold_out") == 400
    async with db.read() as session:
        deal = await session.get(Deal, deal_id)
        units = await session.scalar(
            select(func.sum(Order.quantity)).where(
                Order.deal_id == deal_id, Order.status == "active"
            )
        )
    assert (deal.stock_left, deal.total_qty, deal.participants, units) == (0, 100, 100, 100)


async def test_quantity_is_absolute_and_limited(db) -> None:
    deal_id = await make_deal(db, stock=10, per_person_limit=3)
    now = utcnow()
    async with db.transaction() as session:
        change = await orders.set_quantity(session, deal_id, 5, 2, now)
        assert (change.old_quantity, change.new_quantity) == (0, 2)
        again = await orders.set_quantity(session, deal_id, 5, 2, now)
        assert not again.changed
        with pytest.raises(orders.LimitExceeded):
            await orders.set_quantity(session, deal_id, 5, 4, now)
        with pytest.raises(orders.AlreadyJoined):
            await orders.join(session, deal_id, 5, now)
        await orders.cancel(session, deal_id, 5, now)
    async with db.read() as session:
        deal = await session.get(Deal, deal_id)
    assert (deal.stock_left, deal.total_qty, deal.participants) == (10, 0, 0)


async def test_close_once_at_tier_price(db) -> None:
    deal_id = await make_deal(db, tiers=[(3, 1100), (5, 990)], min_kind="units", min_value=3)
    now = utcnow()
    async with db.transaction() as session:
        await orders.set_quantity(session, deal_id, 5, 2, now)
        await orders.set_quantity(session, deal_id, 6, 3, now)
    results = await asyncio.gather(*(_close(db, deal_id) for _ in range(5)))
    closings = [r for r in results if r is not None]
    assert len(closings) == 1 and closings[0].outcome == "succeeded"
    async with db.read() as session:
        amounts = sorted((o.quantity, o.unit_price, o.amount, o.status)
                         for o in await session.scalars(select(Order)))  # fmt: skip
    assert amounts == [(2, 990, 1980, "confirmed"), (3, 990, 2970, "confirmed")]
    async with db.transaction() as session:
        with pytest.raises(orders.DealClosed):
            await orders.join(session, deal_id, 7, utcnow())


async def test_fails_below_minimum(db) -> None:
    deal_id = await make_deal(db, min_kind="participants", min_value=3)
    async with db.transaction() as session:
        await orders.set_quantity(session, deal_id, 5, 4, utcnow())
    closing = await _close(db, deal_id)
    assert closing.outcome == "failed"
    assert [o.status for o in closing.orders] == ["failed"]


async def _close(db, deal_id):
    async with db.transaction() as session:
        return await deals.close(session, deal_id, utcnow())

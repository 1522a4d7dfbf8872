"""The read model of the owners' order lists (/orders, an order's card, /pickup) and of the
members their changes are told to.

Reads only: the orders of a deal with their members, the totals an owner sees (units,
revenue, fulfilment counts, expected revenue at the current price), one order with its member
and group, and the people and groups a fulfilment, refund or credit notice goes to. Changes
are services.fulfilment's; texts and keyboards are views.owner_orders'.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Deal, Group, Order, Payment, Team, User
from services import deals as deal_service
from services import payment_books, teams

FULFILMENTS = ("none", "ready", "picked_up", "delivered")


async def timezone_of(session: AsyncSession, deal_id: int) -> str:
    """The timezone of the deal's first group (UTC if it was never posted)."""
    posted = await deal_service.posts(session, deal_id)
    return posted[0][1].timezone if posted else "UTC"


async def orders_with_users(session: AsyncSession, deal_id: int) -> list[tuple[Order, User | None]]:
    result = await session.execute(
        select(Order, User)
        .outerjoin(User, User.id == Order.user_id)
        .where(Order.deal_id == deal_id, Order.quantity > 0)
        .order_by(Order.id)
    )
    return [(o, u) for o, u in result.all()]


@dataclass
class DealOrders:
    """A deal's orders (in the order they came) with their members, and its totals."""

    deal: Deal
    rows: list[tuple[Order, User | None]]
    timezone: str
    price: int  # the unit price at the deal's current total
    # A paid deal's payments per order id (services.payment_books); empty for cash deals.
    payments: dict[int, list[Payment]] = field(default_factory=dict)
    teams: list[Team] = field(default_factory=list)  # its team buys (services.teams)

    @property
    def units(self) -> int:
        return sum(o.quantity for o, _u in self.rows)

    @property
    def revenue(self) -> int:
        """What the confirmed orders of a succeeded deal come to."""
        return sum(o.amount or 0 for o, _u in self.rows if o.status == "confirmed")

    @property
    def expected_revenue(self) -> int:
        """What an open deal would come to at the current price (a team's places at the
        team's price, a bargain's buy at the price it was bought at)."""
        prices = {team.id: team.price for team in self.teams}

        def unit(order: Order) -> int:
            if order.bargain_id is not None and order.unit_price is not None:
                return order.unit_price
            return prices.get(order.team_id or 0, self.price)

        return sum(
            o.quantity * unit(o) for o, _u in self.rows if o.status in ("active", "confirmed")
        )

    @property
    def team_counts(self) -> dict[str, int]:
        counts = {"open": 0, "filled": 0, "failed": 0}
        for team in self.teams:
            counts[team.status] = counts.get(team.status, 0) + 1
        return counts

    @property
    def fulfilment_counts(self) -> dict[str, int]:
        counts = {state: 0 for state in FULFILMENTS}
        for order, _u in self.rows:
            if order.status == "confirmed":
                counts[order.fulfilment] = counts.get(order.fulfilment, 0) + 1
        return counts

    @property
    def is_open(self) -> bool:
        return self.deal.status in deal_service.OPEN_STATES


async def deal_orders(session: AsyncSession, deal: Deal) -> DealOrders:
    rows = await orders_with_users(session, deal.id)
    timezone = await timezone_of(session, deal.id)
    payments = (
        await payment_books.of_orders(session, [o.id for o, _u in rows])
        if payment_books.is_paid_deal(deal)
        else {}
    )
    price = deal_service.price_at(deal, deal.total_qty)
    return DealOrders(deal, rows, timezone, price, payments, await teams.of_deal(session, deal.id))


@dataclass
class OrderDetail:
    """One order with its member and group, in the timezone of that group."""

    deal: Deal
    order: Order
    user: User | None
    group: Group | None
    timezone: str
    price: int


async def order_detail(session: AsyncSession, deal: Deal, order: Order) -> OrderDetail:
    user = await session.get(User, order.user_id)
    group = await session.get(Group, order.group_id) if order.group_id else None
    timezone = group.timezone if group is not None else await timezone_of(session, deal.id)
    return OrderDetail(
        deal, order, user, group, timezone, deal_service.price_at(deal, deal.total_qty)
    )


async def order_of(session: AsyncSession, deal_id: int, order_id: int) -> Order | None:
    """The order, if it exists and belongs to that deal."""
    order = await session.get(Order, order_id)
    if order is None or order.deal_id != deal_id:
        return None
    return order


async def member(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)

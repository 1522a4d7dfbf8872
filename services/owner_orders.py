"""The read model of the owners' order lists (/orders, an order's card, /pickup) and of the
members their changes are told to.

Reads only: the orders of a deal with their members, the totals an owner sees (units,
revenue, fulfilment counts, expected revenue at the current price), one order with its member
and group, and the people and groups a fulfilment, refund or credit notice goes to. Changes
are services.fulfilment's; texts and keyboards are views.owner_orders'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import CreditEntry, Deal, Group, Order, User
from services import deals as deal_service
from services.fulfilment import Marked

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

    @property
    def units(self) -> int:
        return sum(o.quantity for o, _u in self.rows)

    @property
    def revenue(self) -> int:
        """What the confirmed orders of a succeeded deal come to."""
        return sum(o.amount or 0 for o, _u in self.rows if o.status == "confirmed")

    @property
    def expected_revenue(self) -> int:
        """What an open deal would come to at the current price."""
        return self.units * self.price

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
    return DealOrders(deal, rows, timezone, deal_service.price_at(deal, deal.total_qty))


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


def reachable(user: User | None) -> bool:
    """Whether a private message can reach the person: started the bot, not a bot."""
    return user is not None and user.started and not user.is_bot


# ---------------------------------------------------------------- whom changes are told to


@dataclass
class Recipients:
    """Members of changed orders who can be told (with the group each order is from) and
    how many cannot (never started the bot, blocked it)."""

    reached: list[tuple[Marked, User, Group | None]] = field(default_factory=list)
    not_started: int = 0


async def recipients(session: AsyncSession, changes: Sequence[Marked]) -> Recipients:
    result = Recipients()
    if not changes:
        return result
    user_ids = list({m.order.user_id for m in changes})
    users = {u.id: u for u in await session.scalars(select(User).where(User.id.in_(user_ids)))}
    group_ids = list({m.order.group_id for m in changes if m.order.group_id})
    groups = (
        {g.id: g for g in await session.scalars(select(Group).where(Group.id.in_(group_ids)))}
        if group_ids
        else {}
    )
    for marked in changes:
        user = users.get(marked.order.user_id)
        if user is None or not reachable(user):
            result.not_started += 1
            continue
        group = groups.get(marked.order.group_id) if marked.order.group_id else None
        result.reached.append((marked, user, group))
    return result


async def refund_recipient(session: AsyncSession, order: Order) -> tuple[User, Group | None] | None:
    """The member of a refunded order and its group, if a private message can reach them."""
    user = await session.get(User, order.user_id)
    if not reachable(user):
        return None
    assert user is not None
    group = await session.get(Group, order.group_id) if order.group_id else None
    return user, group


@dataclass(frozen=True)
class CreditChange:
    """One credit entry an order change made, with whom and what it is about."""

    entry: CreditEntry
    user: User
    group: Group
    deal: Deal | None


async def credit_changes(
    session: AsyncSession, entries: Sequence[CreditEntry | None]
) -> list[CreditChange]:
    """The entries whose member can be told (started the bot, group still known), in order."""
    changes = []
    for entry in (e for e in entries if e is not None):
        user = await session.get(User, entry.user_id)
        group = await session.get(Group, entry.group_id)
        if user is None or not reachable(user) or group is None:
            continue
        order = await session.get(Order, entry.order_id) if entry.order_id else None
        deal = await session.get(Deal, order.deal_id) if order is not None else None
        changes.append(CreditChange(entry, user, group, deal))
    return changes

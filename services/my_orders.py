"""A member's own orders (/myorders): the read model of the list and the cancel rule.

The list: the member's latest orders, open deals first, each with the timezone of the group it
was placed in (else the deal's first group, else the deployment's). Cancelling: only the
member's own active order of a deal that is still open; services.orders makes the change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Deal, DealPost, Group, Order, Payment
from services import deals as deal_service
from services import orders as order_service
from services import payment_books

LIMIT = 100


def pickup_pending(order: Order, deal: Deal) -> bool:
    """The order can still be picked up, so its pickup code is worth showing: joined in a
    deal still running (the code is good once it succeeds), or confirmed and not yet picked
    up or delivered. Never for failed, cancelled or refunded orders."""
    if order.status == "active":
        return order.quantity > 0 and deal.status in deal_service.OPEN_STATES
    return order.status == "confirmed" and order.fulfilment in ("none", "ready")


def cancellable(order: Order, deal: Deal) -> bool:
    return order.status == "active" and deal.status == "open"


async def timezones(
    session: AsyncSession, items: list[tuple[Order, Deal]], default: str
) -> dict[int, str]:
    """Order id → the timezone of the group it was placed in (else the deal's first group)."""
    group_ids = {o.group_id for o, _d in items if o.group_id}
    deal_ids = {d.id for o, d in items if not o.group_id}
    zones = {}
    if group_ids:
        zones = dict(
            (
                await session.execute(
                    select(Group.id, Group.timezone).where(Group.id.in_(group_ids))
                )
            ).all()
        )
    by_deal: dict[int, str] = {}
    if deal_ids:
        rows = await session.execute(
            select(DealPost.deal_id, Group.timezone)
            .join(Group, Group.id == DealPost.group_id)
            .where(DealPost.deal_id.in_(deal_ids))
            .order_by(DealPost.deal_id, Group.id)
        )
        for deal_id, timezone in rows:
            by_deal.setdefault(deal_id, timezone)
    return {
        o.id: zones.get(o.group_id) if o.group_id in zones else by_deal.get(d.id, default)
        for o, d in items
    }


@dataclass
class MyOrders:
    """The member's orders: open deals first (`open_count` of them), then past ones."""

    ordered: list[tuple[Order, Deal]]
    open_count: int
    zones: dict[int, str]  # order id → timezone
    # Payments per order id, for orders of paid deals (services.payment_books).
    payments: dict[int, list[Payment]] = field(default_factory=dict)


async def of_member(
    session: AsyncSession, user_id: int, default_timezone: str, limit: int = LIMIT
) -> MyOrders:
    items = await order_service.of_user(session, user_id, limit=limit)
    open_items = [(o, d) for o, d in items if d.status in deal_service.OPEN_STATES]
    past_items = [(o, d) for o, d in items if d.status not in deal_service.OPEN_STATES]
    ordered = open_items + past_items
    zones = await timezones(session, ordered, default_timezone) if ordered else {}
    paid = [o.id for o, d in ordered if payment_books.is_paid_deal(d)]
    payments = await payment_books.of_orders(session, paid) if paid else {}
    return MyOrders(ordered, len(open_items), zones, payments)


class CancelRefused(Exception):
    """Why a member's order cannot be cancelled: not_yours | closed | already | paused |
    cannot. `deal` is the order's deal (None for not_yours)."""

    def __init__(self, reason: str, deal: Deal | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.deal = deal


async def cancel_mine(session: AsyncSession, user_id: int, order_id: int, now: datetime) -> Deal:
    """Cancel the member's order; returns its deal, or raises CancelRefused."""
    order = await session.get(Order, order_id)
    if order is None or order.user_id != user_id:
        raise CancelRefused("not_yours")
    deal = await deal_service.get(session, order.deal_id)
    if order.status in ("confirmed", "failed") or deal.status in deal_service.FINAL_STATES:
        raise CancelRefused("closed", deal)
    if order.status == "cancelled" or order.quantity == 0:
        raise CancelRefused("already", deal)
    try:
        await order_service.act(
            session,
            deal_id=deal.id,
            user_id=user_id,
            action="cancel",
            group=None,
            now=now,
            via="myorders",
        )
    except order_service.DealClosed:
        raise CancelRefused("closed", deal) from None
    except order_service.DealPaused:
        raise CancelRefused("paused", deal) from None
    except order_service.NotJoined:
        raise CancelRefused("already", deal) from None
    except order_service.OrderError:
        raise CancelRefused("cannot", deal) from None
    return deal

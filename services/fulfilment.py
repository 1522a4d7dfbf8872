"""Fulfilment of confirmed orders: ready for pickup, picked up (核销), delivered.

Rules: only confirmed orders of a succeeded deal move, and only forward —
none → ready | picked_up | delivered, ready → picked_up | delivered; picked up and delivered
are final. Marking an order with the state it already has changes nothing (idempotent), so a
double tap or a second owner click notifies the member once. Each change is a conditional
UPDATE on the order's current fulfilment, so two concurrent marks cannot both report a change.
Only the person who manages the deal now may mark (services.rights). Callers learn exactly
which orders changed (to notify them).

Commission (services.credit): picking up, delivering or marking paid credits the order's
referrer in the same transaction (`Marked.credit`), and invites the buyer to review the order
once (services.reviews.invite); refunding a confirmed order cancels it
and reverses that credit (`Refunded.entries`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import CreditEntry, Deal, Order
from services import coupons, events, notices, payments, reviews, rights
from services import credit as credit_service
from services.admins import AdminDirectory
from services.deals import DealNotFound, NotDealOwner
from services.errors import DomainError

STATES = ("ready", "picked_up", "delivered")
# state wanted → fulfilments it may be reached from
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "ready": ("none",),
    "picked_up": ("none", "ready"),
    "delivered": ("none", "ready"),
}

__all__ = [
    "ALLOWED_FROM",
    "STATES",
    "BadTransition",
    "Bulk",
    "DealNotFound",
    "FulfilmentError",
    "Marked",
    "NotConfirmed",
    "NotDealOwner",
    "OrderNotFound",
    "Refunded",
    "UnknownPickupCode",
    "by_pickup_code",
    "mark",
    "mark_all",
    "mark_paid",
    "normalise_code",
    "refund",
]


class FulfilmentError(DomainError):
    pass


class OrderNotFound(FulfilmentError):
    pass


class UnknownPickupCode(FulfilmentError):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class NotConfirmed(FulfilmentError):
    """The order is not confirmed (still active, cancelled, failed) or its deal did not
    succeed: there is nothing to hand over."""

    def __init__(self, order_status: str, deal_status: str) -> None:
        super().__init__(order_status, deal_status)
        self.order_status = order_status
        self.deal_status = deal_status


class BadTransition(FulfilmentError):
    """A step backwards or sideways (picked up → ready, delivered → picked up)."""

    def __init__(self, current: str, wanted: str) -> None:
        super().__init__(current, wanted)
        self.current = current
        self.wanted = wanted


@dataclass
class Marked:
    order: Order
    deal: Deal
    previous: str
    state: str
    credit: CreditEntry | None = None  # commission earned by this change
    audience: notices.Audience = field(default_factory=notices.Audience)  # who is told

    @property
    def changed(self) -> bool:
        return self.previous != self.state


@dataclass
class Bulk:
    deal: Deal
    state: str
    changed: list[Marked] = field(default_factory=list)
    unchanged: int = 0  # confirmed orders already in that state, or past it
    audience: notices.Audience = field(default_factory=notices.Audience)  # who is told


def _check_state(state: str) -> None:
    if state not in ALLOWED_FROM:
        raise ValueError(f"unknown fulfilment state {state!r}")


def normalise_code(code: str) -> str:
    """What an owner types ('abc-234', ' Abc234 ') → the stored form ('ABC234')."""
    return "".join(ch for ch in (code or "").upper() if ch.isalnum())


async def _order(session: AsyncSession, order_id: int) -> Order:
    order = (
        await session.execute(
            select(Order)
            .where(Order.id == order_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if order is None:
        raise OrderNotFound(order_id)
    return order


async def mark(
    session: AsyncSession,
    order_id: int,
    owner_id: int,
    state: str,
    now: datetime,
    *,
    admins: AdminDirectory | None = None,
) -> Marked:
    """Move one order to `state`. Returns what happened; `changed` is False when the order
    already was in that state (nothing was written)."""
    _check_state(state)
    order = await _order(session, order_id)
    deal = await rights.manage_deal(session, admins, order.deal_id, owner_id)
    if order.status != "confirmed" or deal.status != "succeeded" or order.quantity <= 0:
        raise NotConfirmed(order.status, deal.status)
    previous = order.fulfilment
    if previous == state:
        return Marked(order, deal, previous, state)
    if previous not in ALLOWED_FROM[state]:
        raise BadTransition(previous, state)
    result = await session.execute(
        update(Order)
        .where(Order.id == order_id, Order.fulfilment == previous)
        .values(fulfilment=state, updated_at=now)
    )
    if (result.rowcount or 0) == 0:  # pragma: no cover - the row is locked above
        await session.refresh(order)
        return Marked(order, deal, order.fulfilment, order.fulfilment)
    await session.refresh(order)
    credit = await credit_service.on_fulfilled(session, order, now)
    await coupons.on_fulfilled(session, order, now)  # a coupon pack's rewards
    marked = Marked(order, deal, previous, state, credit)
    marked.audience = await notices.fulfilment(session, [marked], now)
    await notices.credit(session, [credit], now)
    await reviews.invite(session, [order], now)  # picked up or delivered: once per order
    return marked


async def mark_all(
    session: AsyncSession,
    deal_id: int,
    owner_id: int,
    state: str,
    now: datetime,
    *,
    admins: AdminDirectory | None = None,
) -> Bulk:
    """Move every confirmed order of the deal that can reach `state` to it. Orders already
    there (or past it: picked up or delivered) are left alone and counted in `unchanged`."""
    _check_state(state)
    deal = await rights.manage_deal(session, admins, deal_id, owner_id)
    if deal.status != "succeeded":
        raise NotConfirmed("", deal.status)
    confirmed = (Order.deal_id == deal_id, Order.status == "confirmed", Order.quantity > 0)
    candidates = list(
        await session.scalars(
            select(Order)
            .where(*confirmed, Order.fulfilment.in_(ALLOWED_FROM[state]))
            .order_by(Order.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    bulk = Bulk(deal, state)
    previous = {o.id: o.fulfilment for o in candidates}
    ids = list(previous)
    for start in range(0, len(ids), 500):  # keeps the IN list within every driver's limits
        await session.execute(
            update(Order)
            .where(
                Order.id.in_(ids[start : start + 500]),
                Order.fulfilment.in_(ALLOWED_FROM[state]),
            )
            .values(fulfilment=state, updated_at=now)
        )
    # the candidate rows are locked (FOR UPDATE; SQLite serialises writers), so all moved
    for start in range(0, len(ids), 500):
        for order in await session.scalars(
            select(Order)
            .where(Order.id.in_(ids[start : start + 500]))
            .order_by(Order.id)
            .execution_options(populate_existing=True)
        ):
            credit = await credit_service.on_fulfilled(session, order, now)
            await coupons.on_fulfilled(session, order, now)  # a coupon pack's rewards
            bulk.changed.append(Marked(order, deal, previous[order.id], order.fulfilment, credit))
    total = await session.scalar(select(func.count(Order.id)).where(*confirmed))
    bulk.unchanged = int(total or 0) - len(bulk.changed)
    bulk.audience = await notices.fulfilment(session, bulk.changed, now)
    await notices.credit(session, [m.credit for m in bulk.changed], now)
    await reviews.invite(session, [m.order for m in bulk.changed], now)  # once per order
    return bulk


async def by_pickup_code(
    session: AsyncSession, code: str, owner_id: int, *, admins: AdminDirectory | None = None
) -> Order:
    """The order with that pickup code (any case, spaces and dashes ignored), if it belongs
    to one of the owner's deals."""
    normal = normalise_code(code)
    if not normal or len(normal) > 16:
        raise UnknownPickupCode(code)
    order = (
        await session.execute(
            select(Order)
            .where(Order.pickup_code == normal)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if order is None:
        raise UnknownPickupCode(normal)
    try:
        await rights.manage_deal(session, admins, order.deal_id, owner_id)
    except NotDealOwner:  # a code of a deal one does not manage: as if there were none
        raise UnknownPickupCode(normal) from None
    return order


@dataclass
class Refunded:
    order: Order
    deal: Deal
    changed: bool
    entries: list[CreditEntry] = field(default_factory=list)  # reversals, credit given back


async def _owned_confirmed(
    session: AsyncSession, order_id: int, owner_id: int, admins: AdminDirectory | None
) -> tuple[Order, Deal]:
    order = await _order(session, order_id)
    deal = await rights.manage_deal(session, admins, order.deal_id, owner_id)
    return order, deal


async def mark_paid(
    session: AsyncSession,
    order_id: int,
    owner_id: int,
    now: datetime,
    *,
    admins: AdminDirectory | None = None,
) -> Marked:
    """Record that the member paid (once: `paid_at` is set only while empty); paying counts
    as fulfilment for commission. `changed` is False when it was already marked paid."""
    order, deal = await _owned_confirmed(session, order_id, owner_id, admins)
    if order.status != "confirmed" or deal.status != "succeeded" or order.quantity <= 0:
        raise NotConfirmed(order.status, deal.status)
    if order.paid_at is not None:
        return Marked(order, deal, "paid", "paid")
    await session.execute(
        update(Order)
        .where(Order.id == order_id, Order.paid_at.is_(None))
        .values(paid_at=now, updated_at=now)
    )
    await session.refresh(order)
    credit = await credit_service.on_fulfilled(session, order, now)
    await notices.credit(session, [credit], now)
    return Marked(order, deal, "unpaid", "paid", credit)


async def refund(
    session: AsyncSession,
    order_id: int,
    owner_id: int,
    now: datetime,
    *,
    admins: AdminDirectory | None = None,
    outside: bool = False,
) -> Refunded:
    """Cancel a confirmed order (a refund, before or after hand-over): its status becomes
    `cancelled`, its referrer's commission is reversed and credit its buyer spent on it is
    given back. What was paid in Telegram goes back (services.payments.refund_order): Stars
    through the Bot API; a card payment only with `outside` (the owner refunded it in the
    provider's dashboard), else CardRefundOutside and nothing changes. A second call
    changes nothing (`changed` False)."""
    order, deal = await _owned_confirmed(session, order_id, owner_id, admins)
    if order.status == "cancelled" and deal.status == "succeeded":
        return Refunded(order, deal, False)
    if order.status != "confirmed" or deal.status != "succeeded" or order.quantity <= 0:
        raise NotConfirmed(order.status, deal.status)
    await payments.refund_order(session, order, deal, now, outside=outside)
    await session.execute(
        update(Order)
        .where(Order.id == order_id, Order.status == "confirmed")
        .values(status="cancelled", pay_by=None, updated_at=now)
    )
    await session.refresh(order)
    entries = await credit_service.on_cancelled(session, order, now)
    await coupons.give_back(session, order, now)  # unless it expired
    refunded = Refunded(order, deal, True, entries)
    await notices.refund(session, refunded, now)
    await notices.credit(session, entries, now)
    events.record(session, events.DealChanged(deal.id))  # the sign-up list shows it
    return refunded

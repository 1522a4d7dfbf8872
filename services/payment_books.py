"""The books of payments made in Telegram: read-only sums and states over `payments`.

services.payments records payments (and refunds); this module only reads them, for the
exports, the owners' and members' order lists and the digests:

- `of_orders`: the payments of some orders, oldest first.
- `collected`: per currency, money that came in during a period: applied payments created
  in it, minus refunds of applied payments completed in it (a Stars refund "refunded", a card
  refund confirmed by the owner "outside"). Surplus payments (`applied` False: the order was
  already paid or cancelled) are never revenue, neither coming in nor going back.
- `outstanding`: per currency, what confirmed or held orders of paid deals with a payment
  deadline (`pay_by`) still owe: amount − discount of those not paid yet.
- `refund_state`: one word summarising an order's payments for display.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Deal, Order, Payment
from services import payments as payment_service

CHUNK = 500  # ids per IN list
REFUNDED = ("refunded", "outside")  # refunds that took money back
OWING = ("active", "confirmed")  # orders that still count: held (active) or confirmed

# refund_state() results
NONE = ""
PAID = "paid"
REFUND_PENDING = "refund_pending"
REFUNDED_STATE = "refunded"
REFUND_FAILED = "refund_failed"
OWED = "owed"
REFUNDED_OUTSIDE = "refunded_outside"
STATES = (NONE, PAID, REFUND_PENDING, REFUNDED_STATE, REFUND_FAILED, OWED, REFUNDED_OUTSIDE)


def _chunks(ids: Iterable[int]) -> list[list[int]]:
    unique = sorted(set(ids))
    return [unique[i : i + CHUNK] for i in range(0, len(unique), CHUNK)]


def is_paid_deal(deal: Deal) -> bool:
    """Paid in the app (card or Stars), not cash on pickup."""
    return payment_service.is_paid(deal)


def owed(order: Order) -> int:
    """What the order still owes: 0 once paid, else amount − credit − coupon (never below
    0)."""
    return payment_service.owed(order)


async def of_orders(session: AsyncSession, order_ids: Iterable[int]) -> dict[int, list[Payment]]:
    """Order id → its payments (oldest first); orders without payments are left out."""
    found: dict[int, list[Payment]] = defaultdict(list)
    for chunk in _chunks(order_ids):
        for payment in await session.scalars(
            select(Payment)
            .where(Payment.order_id.in_(chunk))
            .order_by(Payment.created_at, Payment.id)
        ):
            found[payment.order_id].append(payment)
    return dict(found)


async def _sums(
    session: AsyncSession, query: Any, group_ids: Sequence[int] | None, column: Any
) -> dict[str, int]:
    """Per currency, the sum of `query` (a select of currency and a sum), for orders in
    `group_ids` (None: every payment, with or without an order)."""
    totals: dict[str, int] = defaultdict(int)
    if group_ids is None:
        batches: list[Any] = [query]
    else:
        batches = [
            query.join(Order, Order.id == Payment.order_id).where(column.in_(chunk))
            for chunk in _chunks(group_ids)
        ]
    for batch in batches:
        for currency, total in await session.execute(batch.group_by(Payment.currency)):
            totals[currency] += int(total or 0)
    return dict(totals)


async def collected(
    session: AsyncSession,
    *,
    group_ids: Sequence[int] | None,
    since: datetime,
    until: datetime,
) -> dict[str, int]:
    """Per currency (sorted; zero totals left out): applied payments created in [since,
    until) on orders of `group_ids` (None: all), minus refunds of applied payments completed
    in that period."""
    paid_in = select(Payment.currency, func.sum(Payment.amount)).where(
        Payment.applied.is_(True), Payment.created_at >= since, Payment.created_at < until
    )
    paid_back = select(Payment.currency, func.sum(Payment.amount)).where(
        Payment.applied.is_(True),
        Payment.refund.in_(REFUNDED),
        Payment.refunded_at.is_not(None),
        Payment.refunded_at >= since,
        Payment.refunded_at < until,
    )
    came = await _sums(session, paid_in, group_ids, Order.group_id)
    went = await _sums(session, paid_back, group_ids, Order.group_id)
    net = {c: came.get(c, 0) - went.get(c, 0) for c in set(came) | set(went)}
    return {c: v for c, v in sorted(net.items()) if v}


async def outstanding(session: AsyncSession, *, group_ids: Sequence[int] | None) -> dict[str, int]:
    """Per currency (sorted; zero totals left out): what unpaid confirmed or held orders of
    paid deals with a deadline still owe (amount − credit − coupon)."""
    due = func.coalesce(Order.amount, 0) - Order.discount - Order.coupon_discount
    query = (
        select(Deal.currency, func.sum(due))
        .join(Deal, Deal.id == Order.deal_id)
        .where(
            Deal.pay_method != "cash",
            Order.status.in_(OWING),
            Order.quantity > 0,
            Order.paid_at.is_(None),
            Order.pay_by.is_not(None),
            due > 0,
        )
        .group_by(Deal.currency)
    )
    totals: dict[str, int] = defaultdict(int)
    batches = (
        [query]
        if group_ids is None
        else [query.where(Order.group_id.in_(chunk)) for chunk in _chunks(group_ids)]
    )
    for batch in batches:
        for currency, total in await session.execute(batch):
            totals[currency] += int(total or 0)
    return {c: v for c, v in sorted(totals.items()) if v}


def refund_state(payments: Sequence[Payment]) -> str:
    """An order's payments in one word, the most pressing first: "refund_failed" (Telegram
    refused a refund), "refund_pending" (a Stars refund on its way), "owed" (a card payment
    to give back), "paid" (an applied payment stands), "refunded" (given back through
    Telegram), "refunded_outside" (a card refund the owner made in the dashboard), "" (no
    payment)."""
    refunds = {p.refund for p in payments}
    if "failed" in refunds:
        return REFUND_FAILED
    if "pending" in refunds:
        return REFUND_PENDING
    if "owed" in refunds:
        return OWED
    if any(p.applied and p.refund == "none" for p in payments):
        return PAID
    latest = max(
        (p for p in payments if p.refund in REFUNDED),
        key=lambda p: (p.applied, p.refunded_at is not None, p.refunded_at or p.created_at),
        default=None,
    )
    if latest is None:
        return PAID if payments else NONE
    return REFUNDED_STATE if latest.refund == "refunded" else REFUNDED_OUTSIDE

"""STUB (branch pay-wizard only): the few functions of services.payments the /newdeal
wizard, the deal post and its Join waitlist button use, so their tests run. The lead
replaces this module with the real one at merge (same signatures)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Deal, Order, WaitlistEntry
from services.errors import DomainError

METHODS = ("cash", "card", "stars")


class WaitlistRefused(DomainError):
    """No waitlist for this member: "not_paid" (a cash deal), "closed", "in_stock" or
    "holding" (they already have an order)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_paid(deal: Deal) -> bool:
    return deal.pay_method != "cash"


def is_flash(deal: Deal) -> bool:
    """Paid and without a minimum: a unit is held for its payment at join."""
    return is_paid(deal) and not deal.min_kind


async def join_waitlist(
    session: AsyncSession, deal_id: int, user_id: int, group_id: int | None, now: datetime
) -> bool:
    """Put the member on the deal's waitlist: True if added, False if already on it."""
    deal = await session.get(Deal, deal_id)
    if deal is None or not is_paid(deal):
        raise WaitlistRefused("not_paid")
    if deal.status != "open":
        raise WaitlistRefused("closed")
    if deal.stock_left is None or deal.stock_left > 0:
        raise WaitlistRefused("in_stock")
    held = await session.scalar(
        select(Order.id).where(
            Order.deal_id == deal_id, Order.user_id == user_id, Order.status == "active"
        )
    )
    if held is not None:
        raise WaitlistRefused("holding")
    if await session.get(WaitlistEntry, (deal_id, user_id)) is not None:
        return False
    session.add(WaitlistEntry(deal_id=deal_id, user_id=user_id, group_id=group_id, created_at=now))
    await session.flush()
    return True

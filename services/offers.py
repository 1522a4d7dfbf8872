"""What team buys (services.teams) and bargains (services.bargains) share: both are offers
with a deal, a group, a status ("open" until they end), a time limit and a closing time.

- `expire_due`: the open offers whose time ran out, ended a batch at a time, each after its
  deal's row is locked (the order of locks every offer action and a deal's closing take);
- `status_counts`: an offer's rows by status for a group's digest (the open ones now, the
  others closed within the period).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services import deals as deal_service

EXPIRE_BATCH = 100


def _expiring(model: Any, now: datetime):
    return (model.status == "open", model.expires_at <= now)


async def any_expiring(session: AsyncSession, model: Any, now: datetime) -> bool:
    """One read: is an offer due to end (the tick opens a write transaction only then)."""
    found = await session.scalar(select(model.id).where(*_expiring(model, now)).limit(1))
    return found is not None


async def expire_due(
    session: AsyncSession,
    model: Any,
    now: datetime,
    end: Callable[[AsyncSession, Any, datetime], Awaitable[bool]],
    limit: int = EXPIRE_BATCH,
) -> int:
    """End (`end(session, offer, now)`) the open offers whose time ran out; how many."""
    due = list(
        await session.execute(
            select(model.id, model.deal_id)
            .where(*_expiring(model, now))
            .order_by(model.expires_at, model.id)
            .limit(limit)
        )
    )
    ended = 0
    for offer_id, deal_id in due:
        await deal_service.get(session, deal_id, lock=True)  # deal first, as everywhere
        offer = await session.get(model, offer_id, populate_existing=True)
        if offer is not None and offer.status == "open" and offer.expires_at <= now:
            ended += await end(session, offer, now)
    return ended


async def status_counts(
    session: AsyncSession,
    model: Any,
    *,
    deal_id: int | None = None,
    group_id: int | None = None,
    closed_from: datetime | None = None,
    closed_to: datetime | None = None,
) -> dict[str, int]:
    """The offers of a deal or a group by status: the open ones now, and the others (closed
    within [from, to) if given: a digest's period)."""
    query = select(model.status, func.count()).group_by(model.status)
    if deal_id is not None:
        query = query.where(model.deal_id == deal_id)
    if group_id is not None:
        query = query.where(model.group_id == group_id)
    if closed_from is not None and closed_to is not None:
        query = query.where(
            (model.status == "open")
            | ((model.closed_at >= closed_from) & (model.closed_at < closed_to))
        )
    return dict((await session.execute(query)).all())

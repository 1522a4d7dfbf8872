"""What the outbox's renderers (bot/notices.py) read: the subject of a notice and its
recipient, by the ids a promise stored (services.notices)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import CreditEntry, Deal, Group, Order, User


async def recipient(
    session: AsyncSession, chat_id: int, group_id: int | None
) -> tuple[User | None, Group | None]:
    """The person (a private chat) or None, and the group the notice is about (for a group
    chat: that group)."""
    if chat_id < 0:
        group = await session.scalar(select(Group).where(Group.chat_id == chat_id))
        return None, group
    user = await session.get(User, chat_id)
    group = await session.get(Group, group_id) if group_id is not None else None
    return user, group


async def order_with_deal(session: AsyncSession, order_id: int) -> tuple[Order, Deal] | None:
    row = (
        await session.execute(
            select(Order, Deal).join(Deal, Deal.id == Order.deal_id).where(Order.id == order_id)
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


async def deal_and_order(
    session: AsyncSession, deal_id: int, order_id: int
) -> tuple[Deal, Order] | None:
    found = await order_with_deal(session, order_id)
    if found is None or found[1].id != deal_id:
        return None
    return found[1], found[0]


async def credit_lines(
    session: AsyncSession, entry_ids: Sequence[int]
) -> list[tuple[CreditEntry, Deal | None, Group]]:
    rows = await session.execute(
        select(CreditEntry, Deal, Group)
        .join(Group, Group.id == CreditEntry.group_id)
        .outerjoin(Order, Order.id == CreditEntry.order_id)
        .outerjoin(Deal, Deal.id == Order.deal_id)
        .where(CreditEntry.id.in_(list(entry_ids)))
        .order_by(CreditEntry.id)
    )
    return [(entry, deal, group) for entry, deal, group in rows.all()]


async def group(session: AsyncSession, group_id: int) -> Group | None:
    return await session.get(Group, group_id)


async def member_order(
    session: AsyncSession, deal_id: int, user_id: int
) -> tuple[Deal, Order] | None:
    """The member's order of the deal (with its pickup code once confirmed), if any."""
    row = (
        await session.execute(
            select(Deal, Order)
            .join(Order, Order.deal_id == Deal.id)
            .where(Deal.id == deal_id, Order.user_id == user_id, Order.quantity > 0)
            .order_by(Order.id)
            .limit(1)
        )
    ).first()
    return (row[0], row[1]) if row is not None else None

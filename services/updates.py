"""Replay protection: an update changes state at most once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from models import ProcessedUpdate
from models.upsert import insert_ignore
from services.timezones import utcnow

# Telegram redelivers for about a day at most; after a week without updates it may restart
# numbering at random, so old ids must not linger.
KEEP = timedelta(days=2)


async def mark_processed(session: AsyncSession, bot_id: int, update_id: int) -> bool:
    """Record the update in the current transaction. False if it was already processed."""
    return await insert_ignore(
        session,
        ProcessedUpdate.__table__,
        {"bot_id": bot_id, "update_id": update_id, "processed_at": utcnow()},
        conflict=["bot_id", "update_id"],
    )


async def prune(session: AsyncSession, keep: timedelta = KEEP) -> int:
    result = await session.execute(
        delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < utcnow() - keep)
    )
    return result.rowcount or 0

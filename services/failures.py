"""The record of updates that failed (models.FailedUpdate): written by the runner, read by
the operators (/status, /failures), pruned by the housekeeping.

How many times an update is tried is counted here, in the database, so the bound holds
across webhook redeliveries, restarts and instances: each transient failure adds an attempt
to the update's row ("retrying"); at the bound the row becomes "set_aside". A permanent
failure is "failed" at once. Both are recorded as processed (services.updates), in the same
transaction, so a redelivery changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import FailedUpdate
from services import updates

KEEP = timedelta(days=30)
RETRYING, SET_ASIDE, FAILED = "retrying", "set_aside", "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    attempts: int

    @property
    def acknowledged(self) -> bool:
        """True when Telegram may forget the update (it will not be tried again)."""
        return self.status != RETRYING


async def record(
    session: AsyncSession,
    *,
    bot_id: int,
    update_id: int,
    transient: bool,
    bound: int,
    reason: str,
    now: datetime,
    update_type: str,
    chat_id: int | None = None,
    user_id: int | None = None,
    detail: str = "{}",
) -> Outcome:
    """Count one failed attempt of the update and decide: retry, set aside, or failed."""
    row = await session.scalar(
        select(FailedUpdate)
        .where(FailedUpdate.bot_id == bot_id, FailedUpdate.update_id == update_id)
        .with_for_update()
    )
    if row is None:
        row = FailedUpdate(
            bot_id=bot_id,
            update_id=update_id,
            update_type=update_type,
            chat_id=chat_id,
            user_id=user_id,
            detail=detail,
            attempts=0,
            first_at=now,
        )
        session.add(row)
    row.attempts += 1
    row.last_at = now
    row.reason = reason
    if not transient:
        row.status = FAILED
    elif row.attempts >= bound:
        row.status = SET_ASIDE
    else:
        row.status = RETRYING
    if row.status != RETRYING:
        await updates.mark_processed(session, bot_id, update_id)
    await session.flush()
    return Outcome(row.status, row.attempts)


async def recovered(session: AsyncSession, bot_id: int, update_id: int) -> bool:
    """A retried update went through after all: its "retrying" row goes."""
    result = await session.execute(
        delete(FailedUpdate).where(
            FailedUpdate.bot_id == bot_id,
            FailedUpdate.update_id == update_id,
            FailedUpdate.status == RETRYING,
        )
    )
    return bool(result.rowcount)


@dataclass(frozen=True, slots=True)
class Counts:
    failed: int
    set_aside: int
    retrying: int


async def counts(session: AsyncSession, since: datetime) -> Counts:
    rows = await session.execute(
        select(FailedUpdate.status, func.count())
        .where(FailedUpdate.last_at >= since)
        .group_by(FailedUpdate.status)
    )
    by_status: dict[str, int] = {status: n for status, n in rows.all()}
    return Counts(by_status.get(FAILED, 0), by_status.get(SET_ASIDE, 0), by_status.get(RETRYING, 0))


async def latest(session: AsyncSession, limit: int = 10) -> list[FailedUpdate]:
    """The last failed or set-aside updates, newest first."""
    return list(
        await session.scalars(
            select(FailedUpdate)
            .where(FailedUpdate.status != RETRYING)
            .order_by(FailedUpdate.last_at.desc(), FailedUpdate.id.desc())
            .limit(limit)
        )
    )


async def prune(session: AsyncSession, now: datetime, keep: timedelta = KEEP) -> int:
    result = await session.execute(delete(FailedUpdate).where(FailedUpdate.last_at < now - keep))
    return result.rowcount or 0

"""The transactional outbox: every message the bot promises outside its immediate reply.

`promise()` writes a row in the caller's transaction, so the promise commits or rolls back
with the change that makes it. A row names its recipient (`chat_id`), a `kind` (which
renderer of bot/notices.py makes the message), the facts to render (`payload`, JSON) and a
unique `key` (e.g. `closing:D17:501`): promising the same key twice writes one row, so a
replay or a second caller promises nothing new.

Delivery (bot/outbox.py) claims due rows with a lease: a conditional UPDATE sets a token and
an expiry on rows that are pending, due and not leased (or whose lease ran out), so two
instances never hold the same row; then the row is settled: `sent`, `failed` (permanent,
with the reason), back to pending with a later `due_at` (transient), or `waiting` (parked):
a person's private chat refused it (403: they never started the bot, blocked it, or their
account is deactivated). Parked rows wait for that person: `resume()` (called when they
send /start, or unblock the bot, in the same transaction) puts them back to pending, except
kinds that are stale by then (`STALE_ON_RESUME`: a digest, a missing-rights note older
than a day), which are settled `failed` unsent. `prune()` drops parked rows older than
`WAITING_MAX` (30 days): nobody came back for them. A row claimed over
an expired lease counts in `expired_leases`: its previous holder died after claiming it, and
possibly after Telegram accepted the message. Duplicates are possible only when a process dies
(or loses the database) between Telegram accepting a message and the row being marked sent,
or when Telegram accepted a request whose answer was lost on the network and the sender
retried it.

No aiogram here.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import OutboxMessage, User
from models.upsert import insert_ignore
from services import events
from services.timezones import utcnow

REASON_MAX = 500
KEY_MAX = 128
PENDING, SENT, FAILED, WAITING = "pending", "sent", "failed", "waiting"
WAITING_MAX = timedelta(days=30)  # a parked row older than this is dropped by prune()
# Kinds not worth sending late: a parked row of these kinds older than this when its person
# comes back is settled unsent. Everything else (the note about a group that added the bot,
# closing outcomes and pickup codes, fulfilment, refunds, credit) is delivered on resume.
STALE_ON_RESUME: dict[str, timedelta] = {
    "digest_text": timedelta(days=1),
    "digest_chart": timedelta(days=1),
    "rights": timedelta(days=1),
}


@dataclass(frozen=True)
class Claimed:
    id: int
    key: str
    chat_id: int
    kind: str
    payload: dict[str, Any]
    group_id: int | None
    attempts: int
    token: str


async def promise(
    session: AsyncSession,
    *,
    key: str,
    chat_id: int,
    kind: str,
    payload: Mapping[str, Any],
    now: datetime,
    group_id: int | None = None,
    due_at: datetime | None = None,
) -> bool:
    """Promise a message; True if this call wrote it (False: that key was promised before)."""
    if len(key) > KEY_MAX:
        raise ValueError(f"outbox key too long: {key[:40]}…")
    written = await insert_ignore(
        session,
        OutboxMessage.__table__,
        {
            "key": key,
            "chat_id": chat_id,
            "kind": kind,
            "payload": json.dumps(dict(payload), ensure_ascii=False, separators=(",", ":")),
            "group_id": group_id,
            "status": "pending",
            "due_at": due_at,  # None: as soon as possible
            "attempts": 0,
            "expired_leases": 0,
            "reason": "",
            "created_at": now,
        },
        ["key"],
    )
    if written:
        events.record(session, events.NoticesPromised(1))
    return written


def _free(now: datetime):
    return or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until <= now)


async def claim(
    session: AsyncSession, now: datetime, *, limit: int, lease: timedelta
) -> list[Claimed]:
    """Lease up to `limit` due rows to the caller (one token for this claim)."""
    due = and_(
        OutboxMessage.status == "pending",
        or_(OutboxMessage.due_at.is_(None), OutboxMessage.due_at <= now),
        _free(now),
    )
    # SKIP LOCKED (PostgreSQL; SQLite serialises writers anyway): instances claiming at the
    # same moment take different rows, instead of all picking the same first ones and all
    # but one coming back empty-handed while due rows wait.
    ids = list(
        await session.scalars(
            select(OutboxMessage.id)
            .where(due)
            .order_by(OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    token = secrets.token_hex(8)
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), due)  # re-checked under the row lock
        .values(
            lease_token=token,
            lease_until=now + lease,
            attempts=OutboxMessage.attempts + 1,
            expired_leases=OutboxMessage.expired_leases
            + case((OutboxMessage.lease_until.is_not(None), 1), else_=0),
        )
        .execution_options(synchronize_session=False)
    )
    rows = await session.execute(
        select(OutboxMessage).where(OutboxMessage.lease_token == token).order_by(OutboxMessage.id)
    )
    return [
        Claimed(
            row.id,
            row.key,
            row.chat_id,
            row.kind,
            json.loads(row.payload or "{}"),
            row.group_id,
            row.attempts,
            token,
        )
        for row in rows.scalars()
    ]


async def renew(session: AsyncSession, tokens: list[str], until: datetime) -> None:
    """Extend the leases of rows still being delivered."""
    if tokens:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.lease_token.in_(tokens), OutboxMessage.status == "pending")
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )


def _mine(row_id: int, token: str):
    return and_(OutboxMessage.id == row_id, OutboxMessage.lease_token == token)


ERASE = "erase"  # a payload flag: the row goes once settled (it outlives a forgotten person)


async def _erase(session: AsyncSession, row: Claimed) -> bool | None:
    """Delete a row marked to erase (True if it was still ours); None: not such a row."""
    if not row.payload.get(ERASE):
        return None
    result = await session.execute(delete(OutboxMessage).where(_mine(row.id, row.token)))
    return (result.rowcount or 0) > 0


async def mark_sent(session: AsyncSession, row: Claimed, now: datetime) -> bool:
    """True if the row was still this claim's (False: its lease ran out and another took it)."""
    erased = await _erase(session, row)
    if erased is not None:
        return erased
    result = await session.execute(
        update(OutboxMessage)
        .where(_mine(row.id, row.token))
        .values(status="sent", sent_at=now, lease_token=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return (result.rowcount or 0) > 0


async def mark_failed(session: AsyncSession, row: Claimed, reason: str, now: datetime) -> bool:
    """A permanent failure (403, a bad request, a recipient gone): never tried again (the
    sender recorded it in send_failures too)."""
    erased = await _erase(session, row)
    if erased is not None:
        return erased
    result = await session.execute(
        update(OutboxMessage)
        .where(_mine(row.id, row.token))
        .values(
            status="failed",
            reason=reason[:REASON_MAX],
            sent_at=now,
            lease_token=None,
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    return (result.rowcount or 0) > 0


async def park(session: AsyncSession, row: Claimed, reason: str, now: datetime) -> bool:
    """The person's private chat refused the row (403): it waits for them (`resume`).

    The person's row is locked first, so a /start committing meanwhile is either seen here
    (started: the row is tried again soon instead) or runs after this and finds the row
    parked."""
    started = await session.scalar(
        select(User.started).where(User.id == row.chat_id).with_for_update()
    )
    if started:  # they came back between the refusal and now
        return await retry_later(session, row, reason, now)
    result = await session.execute(
        update(OutboxMessage)
        .where(_mine(row.id, row.token))
        .values(status=WAITING, reason=reason[:REASON_MAX], lease_token=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return (result.rowcount or 0) > 0


@dataclass(frozen=True)
class Resumed:
    pending: int  # parked rows put back to be delivered now
    stale: int  # parked rows settled unsent (STALE_ON_RESUME)


async def resume(session: AsyncSession, chat_id: int, now: datetime) -> Resumed:
    """The person came back (/start, unblocked the bot): their parked rows go out now, in
    the order they were promised, except those stale by now. Wakes the outbox after commit."""
    rows = list(
        await session.execute(
            select(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.created_at).where(
                OutboxMessage.chat_id == chat_id, OutboxMessage.status == WAITING
            )
        )
    )
    if not rows:
        return Resumed(0, 0)
    stale = [
        row_id
        for row_id, kind, created in rows
        if kind in STALE_ON_RESUME and created < now - STALE_ON_RESUME[kind]
    ]
    fresh = [row.id for row in rows if row.id not in stale]
    if stale:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(stale), OutboxMessage.status == WAITING)
            .values(status=FAILED, reason="stale when the person came back", sent_at=now)
            .execution_options(synchronize_session=False)
        )
    if fresh:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(fresh), OutboxMessage.status == WAITING)
            .values(status=PENDING, due_at=None)
            .execution_options(synchronize_session=False)
        )
        events.record(session, events.NoticesPromised(len(fresh)))
    return Resumed(len(fresh), len(stale))


async def retry_later(session: AsyncSession, row: Claimed, reason: str, at: datetime) -> bool:
    """A transient failure (network, server, a long 429): pending again, due at `at`."""
    result = await session.execute(
        update(OutboxMessage)
        .where(_mine(row.id, row.token))
        .values(due_at=at, reason=reason[:REASON_MAX], lease_token=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return (result.rowcount or 0) > 0


def backoff(attempts: int, *, base: float = 5.0, cap: float = 900.0) -> timedelta:
    """When to try a row again after `attempts` tries: 5 s, 10 s, 20 s … at most 15 min."""
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), cap))


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    due: int
    sent: int
    failed: int
    expired_leases: int  # possible duplicates (a deliverer died mid-send)
    waiting: int = 0  # parked: for a person who has not started the bot (or blocked it)


async def stats(session: AsyncSession, now: datetime) -> OutboxStats:
    row = (
        await session.execute(
            select(
                func.count().filter(OutboxMessage.status == "pending"),
                func.count().filter(
                    and_(
                        OutboxMessage.status == "pending",
                        or_(OutboxMessage.due_at.is_(None), OutboxMessage.due_at <= now),
                    )
                ),
                func.count().filter(OutboxMessage.status == "sent"),
                func.count().filter(OutboxMessage.status == "failed"),
                func.coalesce(func.sum(OutboxMessage.expired_leases), 0),
                func.count().filter(OutboxMessage.status == WAITING),
            )
        )
    ).one()
    return OutboxStats(*(int(v or 0) for v in row))


async def prune(session: AsyncSession, before: datetime, now: datetime | None = None) -> int:
    """Delete rows settled before `before`, and rows parked longer than WAITING_MAX (as of
    `now`, by default the current time; their person never came back). The keys of pending
    rows are kept forever."""
    now = now or utcnow()
    result = await session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.status.in_((SENT, FAILED)), OutboxMessage.sent_at < before
        )
    )
    parked = await session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.status == WAITING, OutboxMessage.created_at < now - WAITING_MAX
        )
    )
    return (result.rowcount or 0) + (parked.rowcount or 0)

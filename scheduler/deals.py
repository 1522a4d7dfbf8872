"""Deals that are due: scheduled deals open and get posted, deals past their closing time
close, and posts that could not be sent are retried.

`run_due` is what a periodic job calls; `close_now` is what the owner's "close now" and
"cancel" buttons call. Each deal is handled in its own transaction, so one failure does not
stop the others, and the conditional updates in services.deals make every opening and
closing happen exactly once, even when two callers (two instances, a double trigger) run at
the same time. Announcements are sent only after the closing committed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aiogram import Bot
from aiogram.utils.i18n import I18n

from bot.posts import PostRefresher, announce_closing, publish
from models import Database
from models.db import after_commit
from services import deals as deal_service
from services.deals import Closing
from services.timezones import utcnow

log = logging.getLogger(__name__)
# A closing whose announcement has not been recorded this long after is taken for lost.
ANNOUNCE_GRACE = timedelta(minutes=10)


@dataclass
class DueResult:
    opened: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    posted: int = 0
    failed: list[int] = field(default_factory=list)
    announced_late: list[int] = field(default_factory=list)


async def run_due(
    bot: Bot, db: Database, i18n: I18n, posts: PostRefresher, now: datetime | None = None
) -> DueResult:
    """Open and post what is due, close what is past its closing time, retry unsent posts."""
    now = now or utcnow()
    result = DueResult()
    async with db.read() as session:
        opening = await deal_service.due_for_opening(session, now)
        closing = await deal_service.due_for_closing(session, now)
    for deal_id in opening:
        try:
            async with db.transaction() as session:
                opened = await deal_service.open_scheduled(session, deal_id, now)
            if opened:
                result.opened.append(deal_id)
                log.info("deal %s opened", deal_id)
                result.posted += await publish(bot, db, i18n, deal_id)
        except Exception:
            log.exception("deal %s: opening failed", deal_id)
            result.failed.append(deal_id)
    for deal_id in closing:
        try:
            async with db.transaction() as session:
                done = await deal_service.close(session, deal_id, now)
            if done is not None:
                result.closed.append(deal_id)
                await announce_closing(bot, db, i18n, done, posts=posts)
        except Exception:
            log.exception("deal %s: closing failed", deal_id)
            result.failed.append(deal_id)
    # Closings never announced (the process stopped in between): claim, then announce once.
    try:
        async with db.read() as session:
            silent = await deal_service.unannounced(session, now - ANNOUNCE_GRACE)
    except Exception:
        log.exception("looking for unannounced closings failed")
        silent = []
    for deal_id in silent:
        try:
            async with db.transaction() as session:
                if not await deal_service.mark_announced(session, deal_id, now):
                    continue
                done = await deal_service.closing_of(session, deal_id)
            log.warning("deal %s: closing was never announced; announcing now", deal_id)
            await announce_closing(bot, db, i18n, done, posts=posts, record=False)
            result.announced_late.append(deal_id)
        except Exception:
            log.exception("deal %s: late announcement failed", deal_id)
            result.failed.append(deal_id)
    # Posts not sent yet (a crash after opening, a network error): claims make this safe.
    try:
        async with db.read() as session:
            unsent = await deal_service.unposted(session, utcnow())
    except Exception:
        log.exception("looking for unsent deal posts failed")
        unsent = []
    for deal_id in unsent:
        try:
            result.posted += await publish(bot, db, i18n, deal_id)
        except Exception:
            log.exception("deal %s: posting failed", deal_id)
            result.failed.append(deal_id)
    return result


async def close_now(
    bot: Bot,
    db: Database,
    i18n: I18n,
    posts: PostRefresher,
    deal_id: int,
    owner_id: int,
    *,
    cancel: bool = False,
) -> Closing | None:
    """The owner closes (or cancels) the deal now. Raises DealNotFound / NotDealOwner;
    returns None if the deal was already closed (nothing changes, nobody is told twice).

    Called inside an update's transaction (a handler), the closing joins that transaction and
    the announcements start in the background once it commits; called on its own, it
    commits and announces before returning.
    """
    nested = db.current() is not None
    async with db.transaction() as session:
        await deal_service.get_owned(session, deal_id, owner_id)
        closing = await deal_service.close(session, deal_id, utcnow(), cancel=cancel)
        if closing is None:
            return None
        if nested:
            after_commit(
                session, lambda: posts.spawn(announce_closing(bot, db, i18n, closing, posts=posts))
            )
    if not nested:
        await announce_closing(bot, db, i18n, closing, posts=posts)
    return closing

"""Deals that are due: scheduled deals open and get posted, deals past their closing time
close, and posts that could not be sent are retried.

`run_due` is what a periodic job calls (the owner's "close now" and "cancel" buttons call
services.deals.close_owned in their update's transaction). Each deal is handled in its own
transaction, so one failure does not stop the others, and the conditional updates in
services.deals make every opening and closing happen exactly once, even when two callers
(two instances, a double trigger) run at the same time. A closing promises its notices in
the outbox in its own transaction (services.notices), and its DealClosed event makes the
posts show the final state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from aiogram import Bot
from aiogram.utils.i18n import I18n

from bot.posts import publish
from bot.sender import Sender
from models import Database
from services import deals as deal_service
from services import notices
from services.timezones import utcnow

log = logging.getLogger(__name__)


@dataclass
class DueResult:
    opened: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    posted: int = 0
    failed: list[int] = field(default_factory=list)
    announced_late: list[int] = field(default_factory=list)


async def run_due(
    bot: Bot,
    db: Database,
    i18n: I18n,
    sender: Sender,
    now: datetime | None = None,
    *,
    shop: str | None = None,
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
                result.posted += await publish(bot, db, i18n, deal_id, sender=sender, shop=shop)
        except Exception:
            log.exception("deal %s: opening failed", deal_id)
            result.failed.append(deal_id)
    for deal_id in closing:
        try:
            async with db.transaction() as session:
                done = await deal_service.close(session, deal_id, now)
            if done is not None:
                result.closed.append(deal_id)
                log.info("deal %s closed (%s)", deal_id, done.outcome)
        except Exception:
            log.exception("deal %s: closing failed", deal_id)
            result.failed.append(deal_id)
    # Closings an older version made and never announced: promise their notices once.
    try:
        async with db.read() as session:
            silent = await deal_service.unannounced(session)
    except Exception:
        log.exception("looking for unannounced closings failed")
        silent = []
    for deal_id in silent:
        try:
            async with db.transaction() as session:
                if await deal_service.claim_announcement(session, deal_id, now):
                    closing = await deal_service.closing_of(session, deal_id)
                    await notices.closing(session, closing, now)
                    log.warning("deal %s: closing was never announced; announcing now", deal_id)
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
            result.posted += await publish(bot, db, i18n, deal_id, sender=sender, shop=shop)
        except Exception:
            log.exception("deal %s: posting failed", deal_id)
            result.failed.append(deal_id)
    return result

"""Scheduled digests, run from the tick (scheduler.jobs.digest_hook).

Each enabled group's digest of its local yesterday goes out once, at or after its digest time
(local), to the owners and administrators who get it (services.digest.recipients), each in
their language, as a text and the chart. The operators (ADMIN_IDS) get the cross-group
digest at 09:00 in DEFAULT_TIMEZONE.

Exactly once: a `digest_runs` row (unique scope + day) is claimed, each recipient's digest is
promised in the outbox (services.notices.digest) and the run is marked sent, all in one
transaction, so two instances never both promise it and a crash loses none; the outbox
builds and sends each digest in its recipient's language (bot/notices.py). Only yesterday is
ever due: after a downtime the missed digest goes out once if its local day is not over,
older days are never sent; nor a day before the group was registered (Group.created_at,
the clock's time when the bot was added): a group added today gets its first digest
tomorrow, of today.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from models import Group, User
from services import digest as digest_service
from services import notices
from services.digest import ADMIN_SCOPE

if TYPE_CHECKING:
    from bot.factory import App

log = logging.getLogger(__name__)


@dataclass
class DigestResult:
    groups_sent: list[tuple[int, date]] = field(default_factory=list)
    recipients: list[tuple[int, int]] = field(default_factory=list)  # (group id, user id)
    admin_sent: date | None = None


async def send_group(
    app: App, group_id: int, day: date, now: datetime, result: DigestResult
) -> None:
    """Claim the group's digest of `day` and promise it to each recipient, in one
    transaction: the outbox sends each one (text, then chart), built when it is sent."""
    scope = digest_service.scope_of(group_id)
    async with app.db.transaction() as session:
        if not await digest_service.claim(session, scope, day, now):
            return
        group = await session.get(Group, group_id)
        people: list[User] = await digest_service.recipients(session, group) if group else []
        for person in people:
            await notices.digest(session, person.id, group_id, day, now)
            result.recipients.append((group_id, person.id))
        await digest_service.finish(session, scope, day, now)
    result.groups_sent.append((group_id, day))
    log.info("digest of group %s for %s promised to %d people", group_id, day, len(people))


async def send_admin(app: App, day: date, now: datetime, result: DigestResult) -> None:
    async with app.db.transaction() as session:
        if not await digest_service.claim(session, ADMIN_SCOPE, day, now):
            return
        for admin_id in sorted(app.settings.admin_ids):
            await notices.digest(session, admin_id, None, day, now)
        await digest_service.finish(session, ADMIN_SCOPE, day, now)
    result.admin_sent = day


async def run(app: App, now: datetime) -> DigestResult:
    result = DigestResult()
    async with app.db.read() as session:
        due = await digest_service.due_groups(session, now)
        admin_day = (
            await digest_service.admin_due(session, now, app.settings.default_timezone)
            if app.settings.admin_ids
            else None
        )
    started = time.monotonic()

    def at() -> datetime:
        # `now` moved on by the time this run has taken: a claim's lease must start when
        # the claim is taken, not when a long run began, or another instance could take
        # the same digest while this one is still sending it.
        return now + timedelta(seconds=time.monotonic() - started)

    for group_id, day in due:
        try:
            await send_group(app, group_id, day, at(), result)
        except Exception:
            log.exception("digest of group %s for %s failed", group_id, day)
    if admin_day is not None:
        try:
            await send_admin(app, admin_day, at(), result)
        except Exception:
            log.exception("operators' digest for %s failed", admin_day)
    return result

"""Scheduled digests, run from the tick (scheduler.jobs.digest_hook).

Each enabled group's digest of its local yesterday goes out once, at or after its digest time
(local), to the owners and administrators who get it (services.digest.recipients), each in
their language, as a text and the chart, through the app's sender. The operators (ADMIN_IDS)
get the cross-group digest at 09:00 in DEFAULT_TIMEZONE.

Exactly once: a `digest_runs` row (unique scope + day) is claimed before anything is sent
(insert-ignore, or take over a claim whose lease ran out after a crash) and marked sent
afterwards, so two instances never both send. Only yesterday is ever due: after a downtime
the missed digest goes out once if its local day is not over, older days are never sent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from aiogram.methods import SendMessage, SendPhoto
from aiogram.types import BufferedInputFile
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.common import quote
from models import Group, User
from services import digest as digest_service
from services.digest import ADMIN_SCOPE, Period
from services.locales import recipient_language
from views import digest_texts as texts

if TYPE_CHECKING:
    from bot.factory import App

log = logging.getLogger(__name__)


@dataclass
class DigestResult:
    groups_sent: list[tuple[int, date]] = field(default_factory=list)
    recipients: list[tuple[int, int]] = field(default_factory=list)  # (group id, user id)
    admin_sent: date | None = None


async def _deliver(app: App, chat_id: int, text: str, png: bytes | None, caption: str) -> None:
    from scheduler.jobs import deliver

    _sent, error = await deliver(app, SendMessage(chat_id=chat_id, text=text), chat_id)
    if error:
        log.warning("digest to %s failed: %s", chat_id, error)
        return
    if png is not None:
        photo = SendPhoto(
            chat_id=chat_id,
            photo=BufferedInputFile(png, filename="digest.png"),
            caption=caption,
        )
        _sent, error = await deliver(app, photo, chat_id)
        if error:
            log.warning("digest chart to %s failed: %s", chat_id, error)


async def send_group(
    app: App, group_id: int, day: date, now: datetime, result: DigestResult
) -> None:
    scope = digest_service.scope_of(group_id)
    async with app.db.transaction() as session:
        if not await digest_service.claim(session, scope, day, now):
            return
    async with app.db.read() as session:
        group = await session.get(Group, group_id)
        people: list[User] = await digest_service.recipients(session, group) if group else []
        digest = (
            await digest_service.build(session, group, Period(day, day), now) if people else None
        )
    if digest is not None:
        rendered: dict[str, tuple[str, bytes, str]] = {}
        default = app.settings.default_language
        for person in people:
            language = recipient_language(person, group, default)
            if language not in rendered:
                with app.i18n.context(), app.i18n.use_locale(language):
                    rendered[language] = (
                        texts.group_text(digest),
                        await texts.group_chart(digest),
                        quote(texts.chart_title(digest)),
                    )
            text, png, caption = rendered[language]
            await _deliver(app, person.id, text, png, caption)
            result.recipients.append((group_id, person.id))
    async with app.db.transaction() as session:
        await digest_service.finish(session, scope, day, now)
    result.groups_sent.append((group_id, day))
    log.info("digest of group %s for %s sent to %d people", group_id, day, len(people))


async def send_admin(app: App, day: date, now: datetime, result: DigestResult) -> None:
    async with app.db.transaction() as session:
        if not await digest_service.claim(session, ADMIN_SCOPE, day, now):
            return
    async with app.db.read() as session:
        digest = await digest_service.build_admin(session, now)
        people = await _admins(session, app)
    default = app.settings.default_language
    for admin_id in sorted(app.settings.admin_ids):
        person = people.get(admin_id)
        language = recipient_language(person, None, default)
        with app.i18n.context(), app.i18n.use_locale(language):
            text = texts.admin_text(digest)
        await _deliver(app, admin_id, text, None, "")
    async with app.db.transaction() as session:
        await digest_service.finish(session, ADMIN_SCOPE, day, now)
    result.admin_sent = day


async def _admins(session: AsyncSession, app: App) -> dict[int, User]:
    rows = await session.scalars(select(User).where(User.id.in_(app.settings.admin_ids)))
    return {u.id: u for u in rows}


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

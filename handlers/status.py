"""/status in private chat, for the operators of the deployment (ADMIN_IDS): the sender's
figures (queue, sends in flight, sent and failed, the last failure per chat), the outbox
(promised messages not sent yet, sent, failed, and claims over an expired lease: possibly
sent twice), failed updates of the last 24 hours and the next scheduled items (deals to open
and to close). /failures lists the last failed or set-aside updates (services/failures.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.sender import Sender
from handlers.common import quote
from services import calendar
from services import deals as deal_service
from services import failures as failure_service
from services import outbox as outbox_service
from services.timezones import utcnow

FAILURES_SHOWN = 10
DEALS_SHOWN = 5
REASON_SHOWN = 120
UPDATES_SHOWN = 10
RECENT = timedelta(hours=24)


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def status_command(
    message: Message, session: AsyncSession, settings: Settings, sender: Sender
) -> None:
    if not _operator(message, settings):
        await message.answer(_("Only the operators of this bot can see its status."))
        return
    stats = sender.stats()
    lines = [
        "<b>" + _("Delivery") + "</b>",
        _("Queue (waiting for a slot): {n}").format(n=stats.waiting),
        _("In flight: {n} · pending in all: {pending}").format(
            n=stats.in_flight, pending=stats.pending
        ),
        _("Sent: {sent} · failed: {failed}").format(sent=stats.sent, failed=stats.failed),
        "",
        "<b>" + _("Last failure per chat") + "</b>",
    ]
    if stats.last_failures:
        for failure in stats.last_failures[:FAILURES_SHOWN]:
            lines.append(
                f"• <code>{failure.chat_id}</code> {_when(failure.at)} · {failure.method}: "
                + quote(_cut(failure.reason, REASON_SHOWN))
            )
        hidden = len(stats.last_failures) - FAILURES_SHOWN
        if hidden > 0:
            lines.append(_("…and {n} more chats").format(n=hidden))
    else:
        lines.append(_("None"))
    promised = await outbox_service.stats(session, utcnow())
    lines += [
        "",
        "<b>" + _("Outbox (promised messages)") + "</b>",
        _("Not sent yet: {pending} (due now: {due})").format(
            pending=promised.pending, due=promised.due
        ),
        _("Sent: {sent} · failed: {failed} · possibly sent twice: {twice}").format(
            sent=promised.sent, failed=promised.failed, twice=promised.expired_leases
        ),
        _("Parked until the person starts the bot: {n}").format(n=promised.waiting),
    ]
    recent = await failure_service.counts(session, utcnow() - RECENT)
    lines += [
        "",
        "<b>" + _("Failed updates (last 24 h)") + "</b>",
        _("Failed for good: {failed} · set aside after retries: {set_aside}").format(
            failed=recent.failed, set_aside=recent.set_aside
        ),
        _("Being retried: {n} · the last ones: /failures").format(n=recent.retrying),
    ]
    opening, closing = await deal_service.next_due(session, DEALS_SHOWN)
    lines += ["", "<b>" + _("Next deals to open") + "</b>"]
    lines += [f"• {_when(d.opens_at)} · {d.code} {quote(_cut(d.title, 40))}" for d in opening] or [
        _("None")
    ]
    lines += ["", "<b>" + _("Next deals to close") + "</b>"]
    lines += [f"• {_when(d.closes_at)} · {d.code} {quote(_cut(d.title, 40))}" for d in closing] or [
        _("None")
    ]
    upcoming = await calendar.upcoming(session, DEALS_SHOWN)
    lines += ["", "<b>" + _("Next scheduled posts") + "</b>"]
    lines += [
        f"• {_when(target.next_run_at)} · #{target.post_id} → {quote(_cut(group.title, 40))}"
        for target, group in upcoming
    ] or [_("None")]
    await message.answer("\n".join(lines))


def _operator(message: Message, settings: Settings) -> bool:
    return message.from_user is not None and message.from_user.id in settings.admin_ids


def _status_name(status: str) -> str:
    if status == failure_service.SET_ASIDE:
        return _("set aside")
    return _("failed")


async def failures_command(message: Message, session: AsyncSession, settings: Settings) -> None:
    """The last failed or set-aside updates: id, type, status, reason, when."""
    if not _operator(message, settings):
        await message.answer(_("Only the operators of this bot can see its status."))
        return
    rows = await failure_service.latest(session, UPDATES_SHOWN)
    lines = ["<b>" + _("Last failed updates") + "</b>"]
    for row in rows:
        lines.append(
            f"• <code>{row.update_id}</code> {quote(_cut(row.update_type, 32))} · "
            + _("{status}, attempts: {n}").format(status=_status_name(row.status), n=row.attempts)
            + f" · {_when(row.last_at)}\n  "
            + quote(_cut(row.reason, REASON_SHOWN))
        )
    if not rows:
        lines.append(_("None"))
    await message.answer("\n".join(lines))


def router() -> Router:
    r = Router(name="status")
    r.message.filter(F.chat.type == "private")
    r.message.register(status_command, Command("status"))
    r.message.register(failures_command, Command("failures"))
    return r

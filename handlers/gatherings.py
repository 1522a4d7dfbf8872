"""Offline events (services.gatherings): Join / Cancel my place on an event's post in its
group, the owner's `/event` in private chat, `/checkin CODE` and `/start ci_<code>` (the
ticket's QR code, scanned by an owner) in private chat.

A Join goes through the one order action (services.orders.act, via the service); a full
event puts the member on its waitlist instead. Refusals are domain errors, answered by the
errors router (views.event_texts)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.methods import AnswerCallbackQuery
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from handlers.callbacks import EventCB
from models import User
from services import deals as deal_service
from services import gatherings, people
from services import orders as order_service
from services.admins import AdminDirectory
from services.parsing import ParseError, parse_int
from services.timezones import Clock
from views.common import current_language
from views.deal_post import not_posted_here, refusal
from views.event_texts import (
    already_in_answer,
    cancelled_answer,
    checked_in_text,
    checkin_usage,
    created_text,
    joined_answer,
    left_waitlist_answer,
    no_group_text,
    not_in_answer,
    usage_text,
    waitlisted_answer,
)

GROUP_TYPES = {"group", "supergroup"}


async def event_button(
    query: CallbackQuery, callback_data: EventCB, session: AsyncSession, user: User, clock: Clock
) -> AnswerCallbackQuery:
    """Join (a seat; the waitlist when full) and Cancel my place (or leave the waitlist)."""
    chat = query.message.chat if query.message is not None else None
    try:
        deal, group = await deal_service.posted_in_chat(
            session, callback_data.deal_id, chat.id if chat is not None else 0
        )
    except deal_service.DealNotFound:
        return query.answer(not_posted_here(), show_alert=True)
    if await gatherings.get(session, deal.id) is None:
        return query.answer(not_posted_here(), show_alert=True)
    now = clock.now()
    try:
        if callback_data.action == "join":
            done = await gatherings.sign_up(session, deal, group, user.id, now, via="button")
            if done.waiting is not None:
                return query.answer(waitlisted_answer(done.waiting, done.added), show_alert=True)
            return query.answer(joined_answer(deal.title, user.started), show_alert=True)
        if callback_data.action == "cancel":
            seat = await gatherings.give_up(session, deal, group, user.id, now, via="button")
            return query.answer(
                cancelled_answer() if seat else left_waitlist_answer(), show_alert=True
            )
    except order_service.AlreadyJoined:
        return query.answer(already_in_answer(), show_alert=True)
    except order_service.NotJoined:
        return query.answer(not_in_answer(), show_alert=True)
    except order_service.OrderError as exc:
        await deal_service.fresh(session, deal)
        return query.answer(refusal(exc, deal, group), show_alert=True)
    return query.answer(not_posted_here(), show_alert=True)


async def event_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
    clock: Clock,
) -> None:
    """/event (usage and the owner's groups) · /event N <date time> <capacity> … Title | Place."""
    now = clock.now()
    groups = [g for g, _status in await admins.groups_of(session, user.id)]
    words = (command.args or "").split(maxsplit=1)
    if not words:
        await message.answer(usage_text(groups))
        return
    try:
        index = parse_int(words[0], minimum=1, maximum=999)
    except ParseError:
        index = 0
    if not groups:
        await message.answer(usage_text(groups))
        return
    if not 1 <= index <= len(groups):
        await message.answer(no_group_text(len(groups)) + "\n\n" + usage_text(groups))
        return
    group = groups[index - 1]
    rest = words[1] if len(words) > 1 else ""
    spec = gatherings.parse_spec(rest, group.timezone, group.currency, now)
    deal, event = await gatherings.create(
        session,
        admins,
        user.id,
        group,
        spec,
        now,
        card_payments="card" in settings.pay_methods,
    )
    await message.answer(created_text(deal, event, group, current_language()))


async def checkin_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    code = (command.args or "").strip()
    if not code:
        await message.answer(checkin_usage())
        return
    await _check_in(message, session, user, admins, clock, code)


async def checkin_link(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    """/start ci_<code>: an owner scanned a member's QR code."""
    await people.mark_started(session, user.id)
    code = gatherings.parse_link(command.args or "")
    if code is None:
        await message.answer(checkin_usage())
        return
    await _check_in(message, session, user, admins, clock, code)


async def _check_in(message, session, user, admins, clock, code: str) -> None:
    done = await gatherings.check_in(session, admins, code, user.id, clock.now())
    await message.answer(checked_in_text(done, done.timezone))


def router() -> Router:
    r = Router(name="gatherings")
    r.callback_query.register(event_button, EventCB.filter())
    r.message.register(
        checkin_link,
        F.chat.type == "private",
        CommandStart(deep_link=True, magic=F.args.startswith(gatherings.LINK_PREFIX)),
    )
    r.message.register(event_command, F.chat.type == "private", Command("event"))
    r.message.register(checkin_command, F.chat.type == "private", Command("checkin"))
    return r

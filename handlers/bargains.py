"""Bargains with friends (services.bargains): "✂️ Bargain" on a deal's post or private card,
Help cut and Buy on a bargain's page, `/start bargain_<code>` (the page in private chat),
the owner's `/bargain` (a deal's bargain offer) and `/bargains` (its bargains and helpers).

Refusals are domain errors, answered by the errors router (views.bargain_texts)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.methods import AnswerCallbackQuery
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.bargain_cards import page_keyboard
from bot.posts import share_link
from handlers.callbacks import BargainCB
from handlers.share import not_available, unknown_link
from handlers.teams import group_of_start
from models import User
from services import bargains, people
from services import deals as deal_service
from services.admins import AdminDirectory
from services.timezones import Clock
from views.bargain_texts import (
    bargain_usage,
    bargains_usage,
    bought_text,
    helped_text,
    list_text,
    page_text,
    rules_text,
    started_text,
)
from views.common import current_language


async def bargain_button(
    query: CallbackQuery, callback_data: BargainCB, session: AsyncSession, user: User, clock: Clock
) -> AnswerCallbackQuery:
    now = clock.now()
    if callback_data.action == "start":
        group = await group_of_start(query, session, callback_data.id, callback_data.group_id)
        if group is None:
            return query.answer(not_available(), show_alert=True)
        started = await bargains.start(
            session, deal_id=callback_data.id, user_id=user.id, group=group, now=now
        )
        me = await query.bot.me()
        # the answer opens the bargain's page in private chat (its link to forward), even
        # for a member who never started the bot
        link = share_link(me.username, bargains.link_payload(started.bargain))
        return query.answer(started_text(started), url=link)
    bargain = await bargains.get(session, callback_data.id)
    if callback_data.action == "help":
        helped = await bargains.help_(
            session,
            bargain=bargain,
            helper_id=query.from_user.id,
            is_bot=query.from_user.is_bot,
            now=now,
        )
        deal = await deal_service.get(session, bargain.deal_id)
        return query.answer(helped_text(helped, deal), show_alert=True)
    if callback_data.action == "buy":
        bought = await bargains.buy(session, bargain=bargain, user_id=user.id, now=now)
        return query.answer(bought_text(bought), show_alert=True)
    raise bargains.BargainNotFound(callback_data.id)  # an action no button has: out of date


async def bargain_link(
    message: Message, command: CommandObject, session: AsyncSession, user: User, clock: Clock
) -> None:
    """/start bargain_<code>: the bargain's page in private chat: Help cut for friends, Buy
    and the link to pass on for its starter."""
    await people.mark_started(session, user.id)
    code = bargains.parse_link(command.args or "")
    bargain = await bargains.by_code(session, code) if code is not None else None
    if bargain is None:
        await message.answer(unknown_link())
        return
    view = await bargains.view(session, bargain)
    me = await message.bot.me()
    link = share_link(me.username, bargains.link_payload(bargain))
    mine = user.id == bargain.starter_id
    text = page_text(view, clock.now(), current_language(), link if mine else None)
    await message.answer(text, reply_markup=page_keyboard(view, user.id, link))


async def bargain_rules(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    """/bargain D12 12.00 8.00 5 24 · /bargain D12 off · /bargain D12 (show)."""
    words = (command.args or "").split()
    deal_id = deal_service.parse_code(words[0]) if words else None
    if deal_id is None:
        await message.answer(bargain_usage())
        return
    deal = await deal_service.get_owned(session, deal_id, user.id, lock=True, admins=admins)
    if len(words) > 1:
        rules = bargains.parse_rules(words[1:], deal)
        await bargains.configure(session, deal, clock.now(), rules=rules)
    await message.answer(rules_text(deal, current_language()))


async def bargain_list(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
) -> None:
    """/bargains D12: the deal's bargains (newest first) and who helped each."""
    words = (command.args or "").split()
    deal_id = deal_service.parse_code(words[0]) if len(words) == 1 else None
    if deal_id is None:
        await message.answer(bargains_usage())
        return
    deal = await deal_service.get_owned(session, deal_id, user.id, admins=admins)
    views = await bargains.of_deal(session, deal.id)
    total = await bargains.count_of_deal(session, deal.id)
    await message.answer(list_text(deal, views, total, current_language()))


def router() -> Router:
    r = Router(name="bargains")
    r.callback_query.register(bargain_button, BargainCB.filter())
    r.message.register(
        bargain_link,
        F.chat.type == "private",
        CommandStart(deep_link=True, magic=F.args.startswith(bargains.LINK_PREFIX)),
    )
    r.message.register(bargain_rules, F.chat.type == "private", Command("bargain"))
    r.message.register(bargain_list, F.chat.type == "private", Command("bargains"))
    return r

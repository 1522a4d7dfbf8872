"""Lotteries (services.lotteries): the owner's `/lottery` in private chat (create, list, one
lottery's details), Enter on a lottery's post in its group and Claim on a winner's note.

Refusals are domain errors, answered by the errors router (views.lottery_texts)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.methods import AnswerCallbackQuery
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.callbacks import LotteryCB
from models import User
from services import lotteries
from services.admins import AdminDirectory
from services.parsing import ParseError, parse_int
from services.timezones import Clock
from views.common import current_language
from views.lottery_texts import (
    claim_answer,
    created_text,
    detail_text,
    entered_text,
    owner_text,
)


async def lottery_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    """/lottery (groups, recent lotteries, usage) · /lottery L3 · /lottery N <rules> <prize>."""
    now = clock.now()
    language = current_language()
    words = (command.args or "").split()
    groups = [g for g, _status in await admins.groups_of(session, user.id)]
    if not words:
        listed = await lotteries.of_groups(session, [g.id for g in groups])
        await message.answer(owner_text(groups, listed, language))
        return
    lottery_id = lotteries.parse_code(words[0])
    if lottery_id is not None and len(words) == 1:
        lottery, group = await lotteries.owned(session, admins, user.id, lottery_id)
        drawn = await lotteries.winners_of(session, lottery.id)
        await message.answer(detail_text(lottery, group, drawn, language))
        return
    try:
        index = parse_int(words[0], minimum=1, maximum=999)
    except ParseError:
        index = 0
    if not 1 <= index <= len(groups):
        await message.answer(owner_text(groups, [], language))
        return
    group = groups[index - 1]
    spec = lotteries.parse_spec(words[1:], group, now)
    lottery = await lotteries.create(session, admins, user.id, group.id, spec, now)
    await message.answer(created_text(lottery, group))


async def lottery_button(
    query: CallbackQuery, callback_data: LotteryCB, session: AsyncSession, user: User, clock: Clock
) -> AnswerCallbackQuery:
    now = clock.now()
    chat = query.message.chat if query.message is not None else None
    if callback_data.action == "enter" and chat is not None and chat.type != "private":
        entered = await lotteries.enter(
            session,
            lottery_id=callback_data.id,
            user_id=user.id,
            is_bot=query.from_user.is_bot,
            chat_id=chat.id,
            now=now,
        )
        return query.answer(entered_text(entered), show_alert=True)
    if callback_data.action == "claim" and chat is not None and chat.type == "private":
        _lottery, _winner, created = await lotteries.claim(
            session, lottery_id=callback_data.id, user_id=user.id, now=now
        )
        return query.answer(claim_answer(created), show_alert=True)
    raise lotteries.LotteryNotFound(callback_data.id)  # an action no button has: out of date


def router() -> Router:
    r = Router(name="lotteries")
    r.callback_query.register(lottery_button, LotteryCB.filter())
    r.message.register(lottery_command, F.chat.type == "private", Command("lottery"))
    return r

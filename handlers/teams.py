"""Team buys (services.teams): "Start a team" on a deal's post or private card, Join and
Leave on a team's card (in the group, or in private from its link), `/start team_<code>`
(the team in private chat) and the owner's `/teambuy` (a deal's team offer).

Refusals are domain errors, answered by the errors router (views.team_texts)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.methods import AnswerCallbackQuery
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.posts import share_link
from bot.team_cards import card_keyboard
from handlers.callbacks import TeamCB
from handlers.share import not_available, unknown_link
from models import Group, User
from services import deals as deal_service
from services import people, teams
from services import referrals as referral_service
from services.admins import AdminDirectory
from services.timezones import Clock
from views.common import current_language
from views.team_texts import (
    joined_text,
    left_text,
    private_text,
    rules_text,
    started_text,
    teambuy_usage,
)


async def team_button(
    query: CallbackQuery, callback_data: TeamCB, session: AsyncSession, user: User, clock: Clock
) -> AnswerCallbackQuery:
    now = clock.now()
    if callback_data.action == "start":
        group = await group_of_start(query, session, callback_data.id, callback_data.group_id)
        if group is None:
            return query.answer(not_available(), show_alert=True)
        await teams.start(session, deal_id=callback_data.id, user_id=user.id, group=group, now=now)
        return query.answer(started_text(), show_alert=True)
    team = await teams.get(session, callback_data.id)
    if callback_data.action == "join":
        joined = await teams.join(session, team=team, user_id=user.id, now=now)
        return query.answer(joined_text(joined), show_alert=joined.filled)
    if callback_data.action == "leave":
        await teams.leave(session, team=team, user_id=user.id, now=now)
        return query.answer(left_text())
    raise teams.TeamNotFound(callback_data.id)  # an action no button has: out of date


async def group_of_start(
    query: CallbackQuery, session: AsyncSession, deal_id: int, group_id: int
) -> Group | None:
    """The group an offer (a team, a bargain) started from this button counts in: the
    post's chat, or the group of a private card (`group_id`)."""
    if group_id:
        found = await referral_service.deal_in_group(session, deal_id, group_id)
        return found[1] if found is not None else None
    chat = query.message.chat if query.message is not None else None
    if chat is None:
        return None
    try:
        _deal, group = await deal_service.posted_in_chat(session, deal_id, chat.id)
    except deal_service.DealNotFound:
        return None
    return group


async def team_link(
    message: Message, command: CommandObject, session: AsyncSession, user: User, clock: Clock
) -> None:
    """/start team_<code>: the team's card in private chat, with Join and Leave."""
    await people.mark_started(session, user.id)
    code = teams.parse_link(command.args or "")
    team = await teams.by_code(session, code) if code is not None else None
    if team is None:
        await message.answer(unknown_link())
        return
    view = await teams.view(session, team)
    me = await message.bot.me()
    link = share_link(me.username, teams.link_payload(team))
    text = private_text(view, clock.now(), current_language(), link)
    await message.answer(text, reply_markup=card_keyboard(view, link))


async def teambuy(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    """/teambuy D12 3 8.50 24 [only] · /teambuy D12 off · /teambuy D12 (show)."""
    words = (command.args or "").split()
    deal_id = deal_service.parse_code(words[0]) if words else None
    if deal_id is None:
        await message.answer(teambuy_usage())
        return
    deal = await deal_service.get_owned(session, deal_id, user.id, lock=True, admins=admins)
    if len(words) > 1:
        rules = teams.parse_rules(words[1:], deal)
        await teams.configure(session, deal, clock.now(), rules=rules)
    await message.answer(rules_text(deal, current_language()))


def router() -> Router:
    r = Router(name="teams")
    r.callback_query.register(team_button, TeamCB.filter())
    r.message.register(
        team_link,
        F.chat.type == "private",
        CommandStart(deep_link=True, magic=F.args.startswith(teams.LINK_PREFIX)),
    )
    r.message.register(teambuy, F.chat.type == "private", Command("teambuy"))
    return r

"""Polls (services.polls): the owner's `/poll` (create) and `/polls` (list) in private chat,
Telegram's `poll_answer` (a vote, a changed vote, a retraction) and `poll` (a poll's counts)
updates, and the "Start a deal" buttons under a poll's results.

Refusals are domain errors, answered by the errors router (views.poll_texts)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, PollAnswer
from aiogram.types import Poll as TgPoll
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from handlers import deal_wizard
from handlers.callbacks import PollCB
from models import User
from services import polls
from services.admins import AdminDirectory
from services.errors import NotGroupAdmin
from services.timezones import Clock
from views.common import current_language
from views.poll_texts import created_text, groups_text, list_text, titled_note


async def poll_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    """/poll (help and the numbered groups) · /poll 1,2 3d [anon] [multi] Q? | A | B."""
    groups = [g for g, _status in await admins.groups_of(session, user.id)]
    if not (command.args or "").strip() or not groups:
        await message.answer(groups_text(groups))
        return
    spec = polls.parse_command(command.args)
    poll, chosen = await polls.create(session, admins, user.id, groups, spec, clock.now())
    await message.answer(created_text(poll, chosen, current_language()))


async def polls_command(message: Message, session: AsyncSession, user: User) -> None:
    """/polls: the owner's latest polls and their figures."""
    await message.answer(list_text(await polls.of_owner(session, user.id), current_language()))


async def poll_answer(answer: PollAnswer, session: AsyncSession, clock: Clock) -> None:
    """A vote in one of the bot's non-anonymous polls (from a person, or from the chat of an
    anonymous admin or a channel: `voter_chat`)."""
    voter = answer.user or answer.voter_chat
    if voter is None:
        return
    await polls.answer(session, answer.poll_id, voter.id, list(answer.option_ids), clock.now())


async def poll_state(poll: TgPoll, session: AsyncSession) -> None:
    """A poll's new state: Telegram's counts (the only figures of an anonymous poll)."""
    counts = [option.voter_count for option in poll.options]
    await polls.record_counts(session, poll.id, counts, poll.total_voter_count)


async def deal_button(
    query: CallbackQuery,
    callback_data: PollCB,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
    clock: Clock,
) -> None:
    """ "Start a deal: <option>" under the results: /newdeal with that title (checked now:
    someone who manages the poll, the option one it has)."""
    poll = await polls.get(session, callback_data.id)
    if not await polls.may_manage(session, admins, poll, user.id):
        raise NotGroupAdmin(0)
    options = polls.options_of(poll)
    if callback_data.action != "deal" or callback_data.option >= len(options):
        raise polls.PollNotFound(poll.id)
    await query.answer()
    title = options[callback_data.option]
    await deal_wizard.start_titled(
        query.bot, user.id, state, session, admins, settings, clock, title, titled_note(poll, title)
    )


def router() -> Router:
    r = Router(name="polls")
    r.callback_query.register(deal_button, PollCB.filter(), F.message.chat.type == "private")
    r.message.register(poll_command, F.chat.type == "private", Command("poll"))
    r.message.register(polls_command, F.chat.type == "private", Command("polls"))
    r.poll_answer.register(poll_answer)
    r.poll.register(poll_state)
    return r

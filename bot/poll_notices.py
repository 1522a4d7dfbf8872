"""The outbox rows of polls (services.polls): sendPoll into each group, stopPoll at closing
and the results to the owner; and what each send's answer records when its row is settled
(`SETTLED`): the group poll's message and poll id, the final counts of a stopped poll."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiogram.methods import SendMessage, SendPoll, StopPoll
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, InputPollOption, Message
from aiogram.types import Poll as TgPoll
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.callbacks import PollCB
from services import polls
from services.outbox import Claimed
from views.poll_texts import deal_label, results_text

if TYPE_CHECKING:
    from bot.notices import Context


async def send_poll(ctx: Context, payload: dict[str, Any]) -> SendPoll | None:
    found = await polls.post_of(ctx.session, payload["post_id"])
    if found is None:
        return None
    post, poll, group = found
    if poll.status != "open" or post.message_id is not None or not group.is_active:
        return None  # closed before it went out, already sent, or the bot left the group
    return SendPoll(
        chat_id=group.chat_id,
        question=poll.question,
        question_parse_mode=None,  # the owner's text as typed (the bot's default is HTML)
        options=[InputPollOption(text=o, text_parse_mode=None) for o in polls.options_of(poll)],
        is_anonymous=poll.anonymous,
        allows_multiple_answers=poll.multiple,
    )


async def stop_poll(ctx: Context, payload: dict[str, Any]) -> StopPoll | None:
    found = await polls.post_of(ctx.session, payload["post_id"])
    if found is None:
        return None
    post, _poll, group = found
    if post.message_id is None:
        return None
    return StopPoll(chat_id=group.chat_id, message_id=post.message_id)


def results_keyboard(found: polls.Results) -> InlineKeyboardMarkup | None:
    """A "Start a deal: <option>" button per winning option (none when nobody voted)."""
    if not found.top:
        return None
    rows = [
        [
            InlineKeyboardButton(
                text=deal_label(found.options[i]),
                callback_data=PollCB(action="deal", id=found.poll.id, option=i).pack(),
            )
        ]
        for i in found.top
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def poll_results(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    try:
        found = await polls.results(ctx.session, payload["poll_id"])
    except polls.PollNotFound:
        return None
    return SendMessage(
        chat_id=ctx.row.chat_id,
        text=results_text(found, ctx.language),
        reply_markup=results_keyboard(found),
    )


async def sent_settled(
    session: AsyncSession,
    row: Claimed,
    failure: str | None,
    transient: bool,
    result: object,
    now: datetime,
) -> None:
    """sendPoll went out: record its message and poll id (a failure leaves the group poll
    unsent; it is passed over at closing)."""
    if failure is None and isinstance(result, Message) and result.poll is not None:
        await polls.record_sent(
            session, row.payload["post_id"], result.message_id, result.poll.id, now
        )


async def stop_settled(
    session: AsyncSession,
    row: Claimed,
    failure: str | None,
    transient: bool,
    result: object,
    now: datetime,
) -> None:
    """stopPoll settled: its answer carries the final counts; sent or failed for good, the
    group poll is done (a transient failure is tried again and decides nothing yet)."""
    if failure is not None and transient:
        return
    if failure is None and isinstance(result, TgPoll):
        counts = [o.voter_count for o in result.options]
        await polls.record_counts(session, result.id, counts, result.total_voter_count)
    await polls.record_stopped(session, row.payload["post_id"], now)


RENDERERS = {polls.SEND: send_poll, polls.STOP: stop_poll, polls.RESULTS: poll_results}
SETTLED = {polls.SEND: sent_settled, polls.STOP: stop_settled}

"""Rendering the outbox rows of lotteries (services.lotteries) at send time, in the
recipient's language: the group posts (kind POST) and the private notes (kind NOTE)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.methods import SendDocument, SendMessage, TelegramMethod
from aiogram.types import BufferedInputFile

from bot.lottery_cards import claim_keyboard, enter_keyboard
from models import Group, Lottery
from services import lotteries, lottery_draw
from views import lottery_texts

if TYPE_CHECKING:
    from bot.notices import Context


async def _subject(ctx: Context, payload: dict[str, Any]) -> tuple[Lottery, Group] | None:
    lottery = await ctx.session.get(Lottery, payload["lottery_id"])
    if lottery is None:
        return None
    group = await ctx.session.get(Group, lottery.group_id)
    if group is None:
        return None
    return lottery, group


async def post(ctx: Context, payload: dict[str, Any]) -> TelegramMethod[Any] | None:
    """A lottery's post in its group: announce | closed | drawn | redraw."""
    found = await _subject(ctx, payload)
    if found is None or not found[1].is_active:
        return None
    lottery, group = found
    chat_id = ctx.row.chat_id
    what = payload["what"]
    if what == "announce":
        markup = enter_keyboard(lottery) if lottery.status == "open" else None
        text = lottery_texts.announce_text(lottery, group, ctx.language)
        return SendMessage(chat_id=chat_id, text=text, reply_markup=markup)
    if what == "closed":
        tickets = await lotteries.tickets_of(ctx.session, lottery.id)
        inline = len(tickets) <= lottery_texts.INLINE_TICKETS
        text = lottery_texts.closed_text(lottery, tickets, inline)
        if inline:
            return SendMessage(chat_id=chat_id, text=text)
        data = lottery_draw.entries_text(tickets).encode("ascii")
        return SendDocument(
            chat_id=chat_id,
            document=BufferedInputFile(data, filename=f"tickets-L{lottery.id}.txt"),
            caption=text,
        )
    if what == "drawn":
        drawn = await lotteries.winners_of(ctx.session, lottery.id)
        first = [d for d in drawn if d.winner.seq <= lottery.winners]
        return SendMessage(chat_id=chat_id, text=lottery_texts.drawn_text(lottery, first))
    if what == "redraw":
        lapsed = await lotteries.winner(ctx.session, lottery.id, payload["seq"])
        following = None
        if payload.get("next"):
            following = await lotteries.winner(ctx.session, lottery.id, payload["next"])
        return SendMessage(
            chat_id=chat_id, text=lottery_texts.redraw_text(lottery, lapsed, following)
        )
    return None


async def note(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    """A private note: won (to a winner, with Claim) | claimed (to the lottery's owner)."""
    found = await _subject(ctx, payload)
    if found is None:
        return None
    lottery, group = found
    drawn = await lotteries.winner(ctx.session, lottery.id, payload["seq"])
    if drawn is None:
        return None
    if payload["what"] == "won":
        if drawn.winner.status != "pending":
            return None  # lapsed (or claimed) before the note could go: nothing to claim
        text = lottery_texts.won_text(lottery, drawn.winner, group, ctx.language)
        return SendMessage(chat_id=ctx.row.chat_id, text=text, reply_markup=claim_keyboard(lottery))
    return SendMessage(chat_id=ctx.row.chat_id, text=lottery_texts.claimed_note(lottery, drawn))


RENDERERS = {lotteries.POST: post, lotteries.NOTE: note}

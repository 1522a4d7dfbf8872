"""Rendering the outbox rows of offline events (services.gatherings): the ticket (the
check-in code as text and a QR image of the link an owner scans to check the member in) and
the reminders before the event. A place cancelled meanwhile sends nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.methods import SendMessage, SendPhoto
from aiogram.types import BufferedInputFile

from services import gatherings
from views.event_texts import qr_png, reminder_text, ticket_caption

if TYPE_CHECKING:
    from bot.notices import Context


def _link(username: str | None, code: str) -> str:
    return f"https://t.me/{username}?start={gatherings.link_payload(code)}"


async def ticket(ctx: Context, payload: dict[str, Any]) -> SendPhoto | None:
    found = await gatherings.ticket(ctx.session, payload["order_id"])
    if found is None:
        return None
    me = await ctx.bot.me()
    png = qr_png(_link(me.username, found.order.pickup_code))
    return SendPhoto(
        chat_id=ctx.row.chat_id,
        photo=BufferedInputFile(png, filename=f"checkin-{found.order.pickup_code}.png"),
        caption=ticket_caption(found, payload.get("what", "joined"), ctx.language),
    )


async def note(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    found = await gatherings.ticket(ctx.session, payload["order_id"])
    if found is None:
        return None
    return SendMessage(
        chat_id=ctx.row.chat_id, text=reminder_text(found, payload["what"], ctx.language)
    )


RENDERERS = {gatherings.TICKET: ticket, gatherings.NOTE: note}

"""Rendering the outbox's rows (services.notices promises them) into Telegram methods, in
the recipient's language, at the moment they are sent.

`RENDERERS` maps a row's kind to a function of (context, payload) that reads what it needs
and returns the method to send, or None when there is nothing to say any more (the order
or the deal is gone). The language is the recipient's (services.locales.recipient_language):
their own choice, else the language of the group the notice is about, else the default.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from aiogram import Bot
from aiogram.methods import EditMessageText, RevokeChatInviteLink, SendMessage, TelegramMethod
from aiogram.types import ReplyParameters
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.posts import member_text, owner_text, quote
from models import Database, Deal, Group
from services import deals as deal_service
from services import notice_reads
from services.deals import Closing
from services.errors import DomainError
from services.locales import recipient_language
from services.money import format_money
from services.outbox import Claimed

MAX_TEXT = 4096


@dataclass
class Context:
    session: AsyncSession
    bot: Bot
    row: Claimed
    language: str


Renderer = Callable[[Context, dict[str, Any]], Awaitable[TelegramMethod[Any] | None]]


def _text(ctx: Context, text: str) -> SendMessage:
    return SendMessage(chat_id=ctx.row.chat_id, text=text)


async def closing_member(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    found = await notice_reads.deal_and_order(ctx.session, payload["deal_id"], payload["order_id"])
    if found is None:
        return None
    deal, order = found
    closing = Closing(deal, payload.get("outcome", deal.status), [order])
    return _text(ctx, member_text(closing, order, ctx.language))


async def closing_owner(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    try:
        closing = await deal_service.closing_of(ctx.session, payload["deal_id"])
    except DomainError:  # the deal is gone
        return None
    return _text(ctx, owner_text(closing, ctx.language))


def fulfilment_text(deal, order, state: str, language: str) -> str:
    values = {
        "title": quote(deal.title),
        "code": deal.code,
        "quantity": order.quantity,
        "pickup": f"<code>{quote(order.pickup_code)}</code>",
    }
    if state == "ready":
        text = _(
            "Your order “{title}” ({code}, ×{quantity}) is ready for pickup. "
            "Your pickup code: {pickup}"
        ).format(**values)
        if deal.pickup_note:
            text += "\n" + _("Pickup: {note}").format(note=quote(deal.pickup_note))
    elif state == "picked_up":
        text = _(
            "Your order “{title}” ({code}, ×{quantity}) was picked up ({pickup}). Thank you!"
        ).format(**values)
    else:
        text = _(
            "Your order “{title}” ({code}, ×{quantity}) was delivered ({pickup}). Thank you!"
        ).format(**values)
    if order.amount is not None:
        text += "\n" + _("Amount: {amount}").format(
            amount=format_money(order.amount, deal.currency, language)
        )
    return text


async def fulfilment(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    found = await notice_reads.order_with_deal(ctx.session, payload["order_id"])
    if found is None:
        return None
    order, deal = found
    return _text(ctx, fulfilment_text(deal, order, payload["state"], ctx.language))


def refund_text(deal, order) -> str:
    return _(
        "Your order “{title}” ({code}, ×{quantity}) was cancelled by the group's owner. "
        "Contact them about a refund if you already paid."
    ).format(title=quote(deal.title), code=deal.code, quantity=order.quantity)


async def refund(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    found = await notice_reads.order_with_deal(ctx.session, payload["order_id"])
    if found is None:
        return None
    order, deal = found
    return _text(ctx, refund_text(deal, order))


async def credit(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    from handlers.credit_texts import change_notice, see_balance

    lines = []
    for entry, deal, group in await notice_reads.credit_lines(ctx.session, payload["entry_ids"]):
        lines.append(change_notice(entry, deal, group, ctx.language))
    if not lines:
        return None
    tail = see_balance()
    kept, size = [], len(tail) + 3
    for line in lines:  # within Telegram's 4096 characters; the rest is in /mycredit
        if size + len(line) + 1 > MAX_TEXT:
            kept.append("…")
            break
        kept.append(line)
        size += len(line) + 1
    return _text(ctx, "\n".join(kept) + "\n" + tail)


async def rights(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    from handlers.invites import admin_notice

    group = await notice_reads.group(ctx.session, payload["group_id"])
    if group is None or not group.is_active:
        return None
    me = await ctx.bot.me()
    bot_name = f"@{me.username}" if me.username else quote(me.first_name)
    return _text(ctx, admin_notice(payload["reason"], quote(group.title), bot_name))


async def revoke_link(ctx: Context, payload: dict[str, Any]) -> RevokeChatInviteLink:
    return RevokeChatInviteLink(chat_id=ctx.row.chat_id, invite_link=payload["link"])


async def edit_text(ctx: Context, payload: dict[str, Any]) -> EditMessageText:
    return EditMessageText(
        chat_id=ctx.row.chat_id, message_id=payload["message_id"], text=payload["text"]
    )


def time_left(seconds: float) -> str:
    minutes = max(round(seconds / 60), 1)
    hours, mins = divmod(minutes, 60)
    if hours and not mins:
        return ngettext("{n} hour left", "{n} hours left", hours).format(n=hours)
    if hours:
        return _("{hours} h {minutes} min left").format(hours=hours, minutes=mins)
    return ngettext("{n} minute left", "{n} minutes left", mins).format(n=mins)


def reminder_text(deal: Deal, group: Group, now: datetime) -> str:
    """'⏰ Mangoes (D3): 2 hours left · 3 more to unlock CN¥9.90' in the current locale."""
    parts = [time_left((deal.closes_at - now).total_seconds())]
    upcoming = deal_service.next_tier(deal, deal.total_qty)
    missing = deal_service.missing_for_minimum(deal)
    if upcoming is not None:
        more, price = upcoming
        parts.append(
            _("{missing} more to unlock {price}").format(
                missing=more, price=format_money(price, deal.currency, group.language)
            )
        )
    elif missing:
        if deal.min_kind == "units":
            text = ngettext(
                "{n} more unit needed for the deal to go ahead",
                "{n} more units needed for the deal to go ahead",
                missing,
            )
        else:
            text = ngettext(
                "{n} more person needed for the deal to go ahead",
                "{n} more people needed for the deal to go ahead",
                missing,
            )
        parts.append(text.format(n=missing))
    title = f"<b>{escape(deal.title, quote=False)}</b> ({deal.code})"
    return f"⏰ {title}: " + " · ".join(parts)


async def reminder(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    try:
        deal = await deal_service.get(ctx.session, payload["deal_id"])
    except DomainError:
        return None
    group = await notice_reads.group(ctx.session, ctx.row.group_id or 0)
    if group is None or deal.status not in deal_service.OPEN_STATES:
        return None  # closed meanwhile: a reminder would be wrong now
    at = datetime.fromisoformat(payload["at"])
    return SendMessage(
        chat_id=ctx.row.chat_id,
        text=reminder_text(deal, group, at),
        reply_parameters=ReplyParameters(
            message_id=payload["message_id"], allow_sending_without_reply=True
        ),
    )


RENDERERS: dict[str, Renderer] = {
    "reminder": reminder,
    "edit_text": edit_text,
    "closing_member": closing_member,
    "closing_owner": closing_owner,
    "fulfilment": fulfilment,
    "refund": refund,
    "credit": credit,
    "rights": rights,
    "revoke_link": revoke_link,
}


async def render(db: Database, bot: Bot, i18n: I18n, row: Claimed) -> TelegramMethod[Any] | None:
    """The method that delivers `row`, made in its recipient's language now."""
    renderer = RENDERERS[row.kind]
    async with db.read() as session:
        user, group = await notice_reads.recipient(session, row.chat_id, row.group_id)
        language = recipient_language(user, group, i18n.default_locale)
        with i18n.context(), i18n.use_locale(language):
            return await renderer(Context(session, bot, row, language), row.payload)

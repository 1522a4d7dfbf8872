"""The texts of the notices the outbox sends (bot/notices.py renders them in the
recipient's language): fulfilment, refunds, reminders before closing, the closing reply in
the group, the note to whoever added the bot. The closing notices
are bot.posts.member_text / owner_text, beside the post they close."""

from __future__ import annotations

from datetime import datetime
from html import escape

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from models import Deal, Group
from services import deals as deal_service
from services import payments
from services.money import format_money
from views.format import quote, time_left


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


def refund_text(deal, order) -> str:
    return _(
        "Your order “{title}” ({code}, ×{quantity}) was cancelled by the group's owner. "
        "Contact them about a refund if you already paid."
    ).format(title=quote(deal.title), code=deal.code, quantity=order.quantity)


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


def closing_post_text(deal: Deal, outcome: str, link: str) -> str:
    """The outcome as a reply to the deal's post, in the group's language; for a success,
    where each member's pickup code is (`link`: the deep link to it in private chat)."""
    title = f"<b>{escape(deal.title, quote=False)}</b> ({deal.code})"
    if deal.min_kind == "units":
        have = deal.total_qty
    else:
        have = deal.participants
    need = deal.min_value or 0
    if outcome == "succeeded":
        if need:
            head = _("{title} succeeded: {have} of the {need} needed.").format(
                title=title, have=have, need=need
            )
        else:
            head = _("{title} succeeded.").format(title=title)
        if payments.is_paid(deal) and not payments.is_flash(deal):
            tail = _(
                "Joined? Pay in private chat with me within {hours} h, or your units go to "
                "the next members: {link}"
            ).format(hours=deal.pay_hours, link=link)
        else:
            tail = _("Joined? Your pickup code is in private chat with me: {link}").format(
                link=link
            )
        return f"✅ {head}\n{tail}"
    if outcome == "failed":
        return "❌ " + _(
            "{title} did not go ahead: {have} of the {need} needed. All orders are cancelled; "
            "nobody pays."
        ).format(title=title, have=have, need=need)
    if payments.is_flash(deal):
        return "🚫 " + _(
            "{title} was cancelled by the organiser. All orders are cancelled; what was paid "
            "is refunded."
        ).format(title=title)
    return "🚫 " + _(
        "{title} was cancelled by the organiser. All orders are cancelled; nobody pays."
    ).format(title=title)


def added_text(group_title: str) -> str:
    return _(
        "You added me to {title}. Use /settings to set its timezone, currency and language."
    ).format(title=quote(group_title))

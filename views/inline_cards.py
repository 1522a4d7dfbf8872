"""Texts of inline mode: the results of `@<bot> <query>` (title and description shown in the
picker; the card itself is the group post's content, bot.posts.render_inline_card) and the
answers to taps on a card in another chat."""

from __future__ import annotations

from aiogram.types import (
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InlineQueryResultCachedPhoto,
    InputTextMessageContent,
)
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from models import Deal, Group
from services import deals as deal_service
from views.format import ALERT_LIMIT, cut, money

TITLE_MAX = 64
DESCRIPTION_MAX = 120


def result_description(deal: Deal, group: Group, language: str) -> str:
    """The line under a result in the picker: price now, people in, the group."""
    price = money(deal_service.price_at(deal, deal.total_qty), deal.currency, language)
    people = ngettext("{n} person", "{n} people", deal.participants).format(n=deal.participants)
    return cut(f"{deal.code} · {price} · {people} · {group.title}", DESCRIPTION_MAX)


def result(
    deal: Deal,
    group: Group,
    result_id: str,
    text: str,
    markup: InlineKeyboardMarkup | None,
    language: str,
) -> InlineQueryResultArticle | InlineQueryResultCachedPhoto:
    """One result: the deal's photo with the card as its caption, or the card as a text."""
    title = cut(deal.title, TITLE_MAX)
    description = result_description(deal, group, language)
    if deal.photo_file_id:
        return InlineQueryResultCachedPhoto(
            id=result_id,
            photo_file_id=deal.photo_file_id,
            title=title,
            description=description,
            caption=text,
            reply_markup=markup,
        )
    return InlineQueryResultArticle(
        id=result_id,
        title=title,
        description=description,
        input_message_content=InputTextMessageContent(message_text=text),
        reply_markup=markup,
    )


def members_only(group: Group, invite: str | None) -> str:
    """A tap on a members-only card by someone not in the deal's group (an alert)."""
    if invite:
        text = _(
            "This group-buy is for members of {group}. Join the group with this link, then "
            "tap again: {link}"
        ).format(group=cut(group.title, 60), link=invite)
    else:
        text = _(
            "This group-buy is for members of {group}. Ask the member who shared it for an "
            "invite to the group, then tap again."
        ).format(group=cut(group.title, 60))
    return cut(text, ALERT_LIMIT)


def card_gone() -> str:
    return _("This deal is no longer available from this card.")

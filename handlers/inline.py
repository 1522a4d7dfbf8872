"""Inline mode: `@<bot> <query>` in any chat lists the open deals of the person's groups as
live deal cards; the cards' buttons work wherever the card was sent.

- inline_query: the person's open deals (services.inline_cards.answer: the matches, share
  links and sign-up lists of all of them in a constant number of statements), each as the
  group post's content in the person's language, with Join / ×N / Cancel buttons carrying
  the person's share code for that deal and group and Details (the share link: the deal in
  private). Personal results, cached briefly.
- chosen_inline_result: the card sent is recorded once (its inline_message_id), so it is
  kept live (bot.posts.edit_deals); a card the bot never heard of is recorded at its
  first tap instead.
- a tap on a card (a callback with inline_message_id): the one order action in the deal's
  group, attributed to the card's sharer like a share link (a click, then the order; the
  sharer's own taps credit nobody). A members-only deal asks Telegram whether the tapper is
  in the group now (cached briefly); "anyone" deals take any Telegram user.
"""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.methods import AnswerCallbackQuery, AnswerInlineQuery
from aiogram.types import CallbackQuery, ChosenInlineResult, InlineQuery
from sqlalchemy.ext.asyncio import AsyncSession

from bot.middlewares.admission import FLAG as ADMISSION
from bot.middlewares.admission import JoinRequest
from bot.posts import render_inline_card
from handlers.callbacks import CardCB
from handlers.deal_post import ORDER_ACTIONS, answer_order, button_request, tap_units
from models import Database, User
from services import inline_cards as card_service
from services import referrals as referral_service
from services.inline_cards import MembershipCheck
from services.timezones import utcnow
from views.common import current_language
from views.deal_post import stale_button
from views.inline_cards import card_gone, members_only, result

log = logging.getLogger(__name__)
CACHE_SECONDS = 10


async def inline_search(query: InlineQuery, session: AsyncSession, user: User) -> AnswerInlineQuery:
    now = utcnow()
    language = current_language()
    me = await query.bot.me()
    results = []
    for found in await card_service.answer(session, user.id, query.query, now):
        deal, group, code = found.deal, found.group, found.share.code
        text, markup = render_inline_card(
            deal, found.signups, group, now, language=language, code=code, bot_username=me.username
        )
        results.append(result(deal, group, code, text, markup, language))
    return query.answer(results, cache_time=CACHE_SECONDS, is_personal=True)


async def card_chosen(chosen: ChosenInlineResult, session: AsyncSession) -> None:
    if chosen.inline_message_id:
        await card_service.record(session, chosen.inline_message_id, chosen.result_id, utcnow())


async def card_request(query: CallbackQuery, data: dict) -> JoinRequest | None:
    """Join +1 and ×N on a card go through the admission gate too (the share code names
    the deal and group: one read)."""
    button = data.get("callback_data")
    if not isinstance(button, CardCB):
        return None
    units = tap_units(button.action, button.qty)
    if units < 1:
        return None
    db: Database = data["db"]
    async with db.read() as session:
        found = await card_service.resolve(session, button.code)
    if found is None:
        return None
    return button_request(query, found.deal.id, units, group_id=found.group.id)


async def card_button(
    query: CallbackQuery,
    callback_data: CardCB,
    session: AsyncSession,
    user: User,
    memberships: MembershipCheck,
) -> AnswerCallbackQuery:
    now = utcnow()
    found = await card_service.resolve(session, callback_data.code)
    if found is None:
        return query.answer(card_gone(), show_alert=True)
    if query.inline_message_id:  # the first tap on a card the bot has not heard of
        await card_service.record_share(session, query.inline_message_id, found.share, now)
    if callback_data.action not in ORDER_ACTIONS:
        return query.answer(stale_button(), show_alert=True)
    deal, group = found.deal, found.group
    placing = callback_data.action != "cancel"
    if placing and card_service.open_to(deal) == card_service.MEMBERS:
        if not await memberships.is_member(group.chat_id, user.id):
            invite = await card_service.invite_for(session, group.id, found.share.user_id)
            return query.answer(members_only(group, invite), show_alert=True)
    if placing:  # like opening the share link: the order is then credited to the sharer
        await referral_service.record_click(session, found.share, user.id, now)
    return await answer_order(query, session, user, deal, group, callback_data, via="card")


def router() -> Router:
    r = Router(name="inline")
    r.inline_query.register(inline_search)
    r.chosen_inline_result.register(card_chosen)
    r.callback_query.register(
        card_button, CardCB.filter(), F.message.is_(None), flags={ADMISSION: card_request}
    )
    return r

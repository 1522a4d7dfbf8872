"""A deal's post in a group: its buttons (Join +1, ×N, Cancel my order, Share, Details) and
the group commands `/buy D17 2`, `/cancel D17` and `/deals`; Join waitlist on the post of a
sold-out paid deal (services.payments.join_waitlist).

Callback data is never trusted: every button re-checks that the deal is posted in the chat
the button was pressed in, and the order rules (stock, limit, status) live in
services.orders. Answers are returned as methods, so they are sent once the update's
transaction has committed (the deal row is not held locked during a network call). After a
change the post is refreshed through the coalescing PostRefresher.
"""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.methods import AnswerCallbackQuery, SendMessage
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from sqlalchemy.ext.asyncio import AsyncSession

from bot.middlewares.admission import FLAG as ADMISSION
from bot.middlewares.admission import JoinRequest
from bot.posts import details_text, share_link, share_text
from handlers.callbacks import CardCB, DealCB, PrivateDealCB, WaitlistCB, valid_id
from models import Database, Deal, Group, User
from services import deals as deal_service
from services import groups as group_service
from services import orders as order_service
from services import payments
from services import referrals as referral_service
from services.orders import OrderError
from services.parsing import ParseError, parse_quantity
from services.timezones import utcnow
from views.deal_post import (
    buy_usage,
    cancel_usage,
    confirmation,
    not_here,
    not_posted_here,
    refusal,
    stale_button,
    waitlist_added,
    waitlist_already,
    waitlist_refused,
)
from views.deal_texts import domain_error_text
from views.format import cut, duration, money, quote

log = logging.getLogger(__name__)
GROUP_TYPES = {"group", "supergroup"}
LINK_ACTIONS = {"info", "share"}
ORDER_ACTIONS = {"join": "join", "qty": "set", "cancel": "cancel"}  # button → order action


# ---------------------------------------------------------------- texts


def _sold_out(answer):
    return lambda left: answer(domain_error_text(order_service.SoldOut(left)))


def tap_units(action: str, qty: int) -> int:
    """The units a Join +1 / ×N button asks for (0: not a joining button). The group post's,
    the private card's and the inline card's buttons share it."""
    return {"join": 1, "qty": qty}.get(action, 0)


def button_request(
    query: CallbackQuery,
    deal_id: int,
    units: int,
    *,
    chat_id: int | None = None,
    group_id: int | None = None,
) -> JoinRequest:
    """A joining button's request to the admission gate; a sold-out deal is an alert."""
    sold_out = _sold_out(lambda text: query.answer(text, show_alert=True))
    return JoinRequest(deal_id, chat_id, units, sold_out, group_id=group_id)


def tap_request(query: CallbackQuery, data: dict) -> JoinRequest | None:
    """Join +1 and ×N taps go through the admission gate (bot.middlewares.admission)."""
    callback_data = data.get("callback_data")
    if query.message is None or not isinstance(callback_data, DealCB):
        return None
    units = tap_units(callback_data.action, callback_data.qty)
    if units < 1:
        return None
    return button_request(query, callback_data.deal_id, units, chat_id=query.message.chat.id)


def buy_request(message: Message, data: dict) -> JoinRequest | None:
    """`/buy D17 2` goes through the admission gate too."""
    command = data.get("command")
    parsed = parse_buy(command.args) if command is not None else None
    if parsed is None:
        return None
    deal_id, quantity = parsed
    return JoinRequest(deal_id, message.chat.id, quantity, _sold_out(message.reply))


# ---------------------------------------------------------------- buttons


async def _posted_here(
    query: CallbackQuery, session: AsyncSession, deal_id: int
) -> tuple[Deal, Group] | None:
    """The deal of a post's button, if it is posted in the chat the button was tapped in."""
    chat = query.message.chat if query.message is not None else None
    if chat is None:
        return None
    try:
        return await deal_service.posted_in_chat(session, deal_id, chat.id)
    except deal_service.DealNotFound:
        return None


async def order_button(
    query: CallbackQuery, callback_data: DealCB, session: AsyncSession, user: User
) -> AnswerCallbackQuery:
    """Join +1, ×N (an absolute quantity) and Cancel my order."""
    found = await _posted_here(query, session, callback_data.deal_id)
    if found is None:
        return query.answer(not_posted_here(), show_alert=True)
    deal, group = found
    return await answer_order(query, session, user, deal, group, callback_data, via="button")


async def answer_order(
    query: CallbackQuery,
    session: AsyncSession,
    user: User,
    deal: Deal,
    group: Group,
    button: DealCB | PrivateDealCB | CardCB,
    *,
    via: str,
) -> AnswerCallbackQuery:
    """A Join +1 / ×N / Cancel button (of a group post, a private deal card or an inline
    card in any chat) through the
    one order action; the answer to the member who tapped."""
    action = ORDER_ACTIONS.get(button.action)
    if action is None:
        return query.answer(stale_button(), show_alert=True)
    try:
        if action == "set" and button.qty < 1:
            raise order_service.BadQuantity(button.qty)
        change = await order_service.act(
            session,
            deal_id=deal.id,
            user_id=user.id,
            action=action,
            quantity=button.qty,
            group=group,
            now=utcnow(),
            via=via,
        )
    except OrderError as exc:
        await deal_service.fresh(session, deal)
        return query.answer(refusal(exc, deal, group), show_alert=True)
    return query.answer(confirmation(change, deal.title))


async def link_button(
    query: CallbackQuery, callback_data: DealCB, session: AsyncSession, user: User
) -> AnswerCallbackQuery:
    """Details (and Share on posts sent before inline cards): the answer opens the member's
    own link t.me/<bot>?start=<code>, so the private chat shows the whole deal and the link
    ready to forward (handlers.share), even for members who never started the bot. Today's
    Share button opens Telegram's chat picker instead (bot.posts.share_button)."""
    chat = query.message.chat if query.message is not None else None
    if chat is None:
        return query.answer(not_posted_here(), show_alert=True)
    try:
        deal, group = await deal_service.posted_in_chat(session, callback_data.deal_id, chat.id)
    except deal_service.DealNotFound:
        return query.answer(not_posted_here(), show_alert=True)
    share = await referral_service.share_link(session, deal.id, group.id, user.id, utcnow())
    me = await query.bot.me()
    link = share_link(me.username, share.code)
    text = details_text(deal) if callback_data.action == "info" else share_text(deal, link)
    return query.answer(text, url=link)


async def waitlist_button(
    query: CallbackQuery, callback_data: WaitlistCB, session: AsyncSession, user: User
) -> AnswerCallbackQuery:
    """Join waitlist: the member is next when a unit of the sold-out paid deal frees up."""
    found = await _posted_here(query, session, callback_data.deal_id)
    if found is None:
        return query.answer(not_posted_here(), show_alert=True)
    deal, group = found
    try:
        added = await payments.join_waitlist(session, deal.id, user.id, group.id, utcnow())
    except payments.WaitlistRefused as exc:
        return query.answer(waitlist_refused(exc.reason), show_alert=True)
    return query.answer(waitlist_added(deal.title) if added else waitlist_already())


async def unknown_button(query: CallbackQuery) -> AnswerCallbackQuery:
    """A deal-post button whose data does not parse (forged or from an older version)."""
    return query.answer(stale_button(), show_alert=True)


# ---------------------------------------------------------------- commands


def parse_buy(args: str | None) -> tuple[int, int] | None:
    """'D17 2' → (17, 2); 'D17' → (17, 1); anything else → None."""
    parts = (args or "").split()
    if not 1 <= len(parts) <= 2:
        return None
    deal_id = deal_service.parse_code(parts[0])
    if deal_id is None or not valid_id(deal_id):
        return None
    try:
        quantity = parse_quantity(parts[1]) if len(parts) == 2 else 1
    except ParseError:
        return None
    return deal_id, quantity


async def buy_command(
    message: Message, command: CommandObject, session: AsyncSession, user: User
) -> SendMessage:
    parsed = parse_buy(command.args)
    if parsed is None:
        return message.reply(buy_usage())
    deal_id, quantity = parsed
    return await _command(message, session, user, deal_id, "set", quantity)


async def cancel_command(
    message: Message, command: CommandObject, session: AsyncSession, user: User
) -> SendMessage:
    parts = (command.args or "").split()
    deal_id = deal_service.parse_code(parts[0]) if len(parts) == 1 else None
    if deal_id is None or not valid_id(deal_id):
        return message.reply(cancel_usage())
    return await _command(message, session, user, deal_id, "cancel", 0)


async def _command(
    message: Message, session: AsyncSession, user: User, deal_id: int, action: str, quantity: int
) -> SendMessage:
    try:
        deal, group = await deal_service.posted_in_chat(session, deal_id, message.chat.id)
    except deal_service.DealNotFound:
        return message.reply(not_here(f"D{deal_id}"))
    try:
        change = await order_service.act(
            session,
            deal_id=deal.id,
            user_id=user.id,
            action=action,
            quantity=quantity,
            group=group,
            now=utcnow(),
            via="command",
        )
    except OrderError as exc:
        await deal_service.fresh(session, deal)
        return message.reply(refusal(exc, deal, group))
    return message.reply(quote(confirmation(change, deal.title)))


async def deals_command(message: Message, db: Database) -> SendMessage:
    """What is open in this group, with the codes to order by."""
    async with db.read() as session:
        group = await group_service.get_by_chat(session, message.chat.id)
        deals = await deal_service.open_in_group(session, group.id) if group else []
    if group is None or not deals:
        return message.reply(_("No deals are open in this group right now."))
    now = utcnow()
    lines = ["<b>" + _("Open deals") + "</b>"]
    for deal in deals[:30]:
        price = money(deal_service.price_at(deal, deal.total_qty), deal.currency, group.language)
        people = ngettext("{n} person", "{n} people", deal.participants).format(n=deal.participants)
        state = (
            _("paused")
            if deal.status == "paused"
            else _("closes in {duration}").format(
                duration=duration(max((deal.closes_at - now).total_seconds(), 0))
            )
        )
        title = quote(cut(deal.title, 60))
        lines.append(f"• <code>{deal.code}</code> {title} · {price} · {people} · {state}")
    lines += ["", buy_usage()]
    return message.reply("\n".join(lines))


def router() -> Router:
    r = Router(name="deal_post")
    r.message.filter(F.chat.type.in_(GROUP_TYPES))
    r.message.register(buy_command, Command("buy"), flags={ADMISSION: buy_request})
    r.message.register(cancel_command, Command("cancel"))
    r.message.register(deals_command, Command("deals"))
    r.callback_query.register(link_button, DealCB.filter(F.action.in_(LINK_ACTIONS)))
    r.callback_query.register(order_button, DealCB.filter(), flags={ADMISSION: tap_request})
    r.callback_query.register(waitlist_button, WaitlistCB.filter())
    r.callback_query.register(unknown_button, F.data.startswith(DealCB.__prefix__ + ":"))
    return r

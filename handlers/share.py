"""Deals in private chat: `/start <share code>` (a member's share link), `/start deal_<id>`
(older links and content posts), `/start orders_D<id>` (the link in a closing's reply in
the group: the member's order of that deal with its pickup code), and the Join buttons
under such a card.

Opening someone's share link records a click (services.referrals), so an order the member
then places in that group is credited to the sharer; the sharer opening their own link gets
it ready to forward instead. Unknown or revoked codes, and deals no longer posted in the
link's group, get a clear answer and record nothing. Join from private orders for the group
of the link through services.orders, exactly like a group's Join button.
"""

from __future__ import annotations

import logging
import re

from aiogram import F, Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.methods import AnswerCallbackQuery
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from sqlalchemy.ext.asyncio import AsyncSession

from bot.middlewares.admission import FLAG as ADMISSION
from bot.middlewares.admission import JoinRequest
from bot.posts import member_text, offer_rows, order_rows, render_card, share_link
from handlers.callbacks import PrivateDealCB, valid_id
from handlers.common import quote
from handlers.deal_post import answer_order, button_request, tap_units
from models import Deal, Group, User
from services import deals as deal_service
from services import notice_reads, people
from services import referrals as referral_service
from services.parsing import parse_id
from services.timezones import utcnow
from views.common import current_language
from views.format import CAPTION_LIMIT, TEXT_LIMIT, cut, tg_len

log = logging.getLogger(__name__)
DEAL_PREFIX = "deal_"
PICKUP_LINK = re.compile(r"orders_D([0-9]{1,10})")  # bot.notices.pickup_payload


def private_keyboard(deal: Deal, group_id: int) -> InlineKeyboardMarkup | None:
    def pack(action: str, qty: int) -> str:
        return PrivateDealCB(action=action, deal_id=deal.id, group_id=group_id, qty=qty).pack()

    rows = order_rows(deal, pack)
    if rows is None:
        return None
    return InlineKeyboardMarkup(inline_keyboard=offer_rows(deal, rows, group_id))


def unknown_link() -> str:
    return _(
        "This link is unknown or no longer valid. Ask the person who sent it for a new one, "
        "or send /help."
    )


def not_available() -> str:
    return _("This deal is no longer available in that group.")


async def show_deal(
    message: Message, session: AsyncSession, deal: Deal, group: Group, header: str
) -> None:
    """The deal's card in private chat with Join buttons for `group`."""
    signups = await deal_service.sign_up_list(session, deal.id)
    limit = (CAPTION_LIMIT if deal.photo_file_id else TEXT_LIMIT) - tg_len(header) - 2
    text, _buttons = render_card(deal, signups, group, utcnow(), limit=limit, private=True)
    text = f"{header}\n\n{text}"
    keyboard = private_keyboard(deal, group.id)
    if deal.photo_file_id:
        await message.answer_photo(deal.photo_file_id, caption=text, reply_markup=keyboard)
    else:
        await message.answer(text, reply_markup=keyboard)


def from_group(group: Group) -> str:
    return "👥 " + _("A group-buy in {title}").format(title=quote(group.title))


async def _deal_link(message: Message, session: AsyncSession, user: User, raw: str) -> None:
    """/start deal_<id>: the deal in private, for a group it is posted in (the member's
    first); no attribution."""
    digits = raw.removeprefix(DEAL_PREFIX)
    deal_id = parse_id(digits) or 0
    groups = (
        await referral_service.groups_of_deal(session, deal_id, user.id)
        if valid_id(deal_id)
        else []
    )
    found = await referral_service.deal_in_group(session, deal_id, groups[0].id) if groups else None
    if found is None:
        await message.answer(unknown_link())
        return
    deal, group = found
    await show_deal(message, session, deal, group, from_group(group))


async def _pickup_link(message: Message, session: AsyncSession, user: User, deal_id: int) -> None:
    """/start orders_D<id>: the member's order of that deal; once it succeeded, with the
    pickup code (the closing notice again). Anything else answers without saying more."""
    found = (
        await notice_reads.member_order(session, deal_id, user.id) if valid_id(deal_id) else None
    )
    if found is None:
        await message.answer(
            _("You have no order in this deal. Send /myorders to see your orders.")
        )
        return
    deal, order = found
    if deal.status not in deal_service.FINAL_STATES:
        await message.answer(
            _("{code} is still open: your pickup code comes here if it succeeds.").format(
                code=deal.code
            )
        )
        return
    if deal.status == "succeeded" and order.status != "confirmed":  # refunded, cancelled
        await message.answer(
            _("Your order in {code} was cancelled: there is no pickup code.").format(code=deal.code)
        )
        return
    closing = deal_service.Closing(deal, deal.status, [order])
    await message.answer(member_text(closing, order, current_language()))


async def _own_link(message: Message, deal: Deal, group: Group, code: str) -> None:
    """The sharer opened their own link: give it ready to forward."""
    me = await message.bot.me()
    link = share_link(me.username, code)
    days = group.attribution_days or 0
    title = quote(cut(deal.title, 80))
    if days > 0:
        note = ngettext(
            "This is your personal link for {title}. Forward the next message to friends: "
            "orders they place in {group} within {days} day after opening it are credited "
            "to you.",
            "This is your personal link for {title}. Forward the next message to friends: "
            "orders they place in {group} within {days} days after opening it are credited "
            "to you.",
            days,
        ).format(title=title, group=quote(group.title), days=days)
    else:
        note = _("This is your personal link for {title}. Forward the next message to friends.")
        note = note.format(title=title)
    await message.answer(note)
    await message.answer(
        f"🛒 <b>{quote(deal.title)}</b>\n"
        + _("Join the group-buy in {group}: {link}").format(group=quote(group.title), link=link)
    )


async def start_link(
    message: Message, command: CommandObject, session: AsyncSession, user: User
) -> None:
    await people.mark_started(session, user.id)
    payload = command.args or ""
    if payload.startswith(DEAL_PREFIX):
        await _deal_link(message, session, user, payload)
        return
    pickup = PICKUP_LINK.fullmatch(payload)
    if pickup is not None:
        await _pickup_link(message, session, user, int(pickup.group(1)))
        return
    share = await referral_service.find_share(session, payload)
    found = (
        await referral_service.deal_in_group(session, share.deal_id, share.group_id)
        if share is not None
        else None
    )
    if share is None or found is None:
        log.info("user %s opened an unknown or revoked link", user.id)
        await message.answer(unknown_link())
        return
    deal, group = found
    if share.user_id == user.id:
        await _own_link(message, deal, group, share.code)
        return
    await referral_service.record_click(session, share, user.id, utcnow())
    await show_deal(message, session, deal, group, from_group(group))


def private_request(query: CallbackQuery, data: dict) -> JoinRequest | None:
    """Join +1 and ×N under a private deal card go through the admission gate too."""
    callback_data = data.get("callback_data")
    if not isinstance(callback_data, PrivateDealCB):
        return None
    units = tap_units(callback_data.action, callback_data.qty)
    if units < 1:
        return None
    return button_request(query, callback_data.deal_id, units, group_id=callback_data.group_id)


async def private_order_button(
    query: CallbackQuery, callback_data: PrivateDealCB, session: AsyncSession, user: User
) -> AnswerCallbackQuery:
    """Join +1, ×N and Cancel under a deal shown in private: an order in the link's group."""
    found = await referral_service.deal_in_group(
        session, callback_data.deal_id, callback_data.group_id
    )
    if found is None:
        return query.answer(not_available(), show_alert=True)
    deal, group = found
    return await answer_order(query, session, user, deal, group, callback_data, via="private")


def router() -> Router:
    r = Router(name="share")
    r.message.filter(F.chat.type == "private")
    r.message.register(start_link, CommandStart(deep_link=True, magic=F.args != "settings"))
    r.callback_query.register(
        private_order_button, PrivateDealCB.filter(), flags={ADMISSION: private_request}
    )
    return r

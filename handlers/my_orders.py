"""/myorders in private chat: a member's open and past orders, in their language and in the
timezone of the group each order was placed in, with a Cancel button while a deal is open.

Callback data names only an order; the server re-checks that it is the member's and that its
deal is still open (services.orders decides, by the deal's state in the database).
"""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from handlers.callbacks import MyOrdersCB
from handlers.common import show
from models import User
from services import my_orders
from services.my_orders import CancelRefused
from services.timezones import utcnow
from views import my_orders as views

log = logging.getLogger(__name__)


async def my_orders_view(
    session: AsyncSession, user_id: int, page: int, default_timezone: str
) -> tuple[str, InlineKeyboardMarkup | None]:
    mine = await my_orders.of_member(session, user_id, default_timezone)
    return views.my_orders_page(mine, page, MyOrdersCB)


async def my_orders_command(
    message: Message, session: AsyncSession, user: User, settings: Settings
) -> None:
    text, keyboard = await my_orders_view(session, user.id, 0, settings.default_timezone)
    await message.answer(text, reply_markup=keyboard)


async def my_orders_button(
    query: CallbackQuery,
    callback_data: MyOrdersCB,
    session: AsyncSession,
    user: User,
    settings: Settings,
) -> None:
    if callback_data.action == "page":
        await query.answer()
    elif callback_data.action == "cancel":
        refusal, _deal_id = await _cancel(session, user, callback_data.order_id)
        if refusal is not None:
            await query.answer(refusal, show_alert=True)
            return
        await query.answer(_("Order cancelled."))
    else:
        await query.answer(_("This button is out of date. Send /myorders again."), show_alert=True)
        return
    text, keyboard = await my_orders_view(
        session, user.id, callback_data.page, settings.default_timezone
    )
    await show(query, text, keyboard)


async def _cancel(session: AsyncSession, user: User, order_id: int) -> tuple[str | None, int]:
    """Cancel the member's order: (None, deal id) when done, else (why not, 0)."""
    try:
        if not order_id > 0:
            raise CancelRefused("not_yours")
        deal = await my_orders.cancel_mine(session, user.id, order_id, utcnow())
    except CancelRefused as exc:
        if exc.reason == "not_yours":
            log.info(
                "user %s refused cancelling order %s (not theirs or unknown)", user.id, order_id
            )
        return views.cancel_refused_text(exc), 0
    log.info("user %s cancelled order %s of deal %s from /myorders", user.id, order_id, deal.id)
    return None, deal.id


def router() -> Router:
    r = Router(name="my_orders")
    r.message.filter(F.chat.type == "private")
    r.message.register(my_orders_command, Command("myorders"))
    r.callback_query.register(my_orders_button, MyOrdersCB.filter())
    return r

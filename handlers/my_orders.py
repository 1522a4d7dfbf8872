"""/myorders in private chat: a member's open and past orders, in their language and in the
timezone of the group each order was placed in, with a Cancel button while a deal is open.

Callback data names only an order; the server re-checks that it is the member's and that its
deal is still open (services.orders decides, by the deal's state in the database).
"""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from handlers.common import quote, show
from handlers.owner_orders import (
    MAX_ID,
    current_language,
    fulfilment_label,
    local_time,
    split_pages,
    status_label,
)
from models import Deal, DealPost, Group, Order, User
from services import deals as deal_service
from services import orders as order_service
from services.money import format_money
from services.timezones import utcnow

log = logging.getLogger(__name__)

PAGE_BUDGET = 3200
PAGE_ITEMS = 10
LIMIT = 100


class MyOrdersCB(CallbackData, prefix="my"):
    action: str  # page | cancel
    order_id: int = 0
    page: int = 0


def _cancellable(order: Order, deal: Deal) -> bool:
    return order.status == "active" and deal.status == "open"


async def _timezones(
    session: AsyncSession, items: list[tuple[Order, Deal]], default: str
) -> dict[int, str]:
    """Order id → the timezone of the group it was placed in (else the deal's first group)."""
    group_ids = {o.group_id for o, _d in items if o.group_id}
    deal_ids = {d.id for o, d in items if not o.group_id}
    zones = {}
    if group_ids:
        zones = dict(
            (
                await session.execute(
                    select(Group.id, Group.timezone).where(Group.id.in_(group_ids))
                )
            ).all()
        )
    by_deal: dict[int, str] = {}
    if deal_ids:
        rows = await session.execute(
            select(DealPost.deal_id, Group.timezone)
            .join(Group, Group.id == DealPost.group_id)
            .where(DealPost.deal_id.in_(deal_ids))
            .order_by(DealPost.deal_id, Group.id)
        )
        for deal_id, timezone in rows:
            by_deal.setdefault(deal_id, timezone)
    return {
        o.id: zones.get(o.group_id) if o.group_id in zones else by_deal.get(d.id, default)
        for o, d in items
    }


def _block(order: Order, deal: Deal, timezone: str) -> str:
    language = current_language()
    if order.status == "confirmed" and order.amount is not None:
        amount = format_money(order.amount, deal.currency, language)
    elif order.status == "active":
        price = deal_service.price_at(deal, deal.total_qty)
        amount = _("{amount} expected").format(
            amount=format_money(order.quantity * price, deal.currency, language)
        )
    else:
        amount = _("nothing to pay")
    details = [f"×{order.quantity}", amount, status_label(order.status)]
    if order.status == "confirmed":
        details.append(fulfilment_label(order.fulfilment))
    if deal.closed_at is not None or deal.status in deal_service.FINAL_STATES:
        when = _("Closed {time}").format(
            time=local_time(deal.closed_at or deal.closes_at, timezone)
        )
    else:
        when = _("Closes {time}").format(time=local_time(deal.closes_at, timezone))
    when += f" ({quote(timezone)})"
    return "\n".join(
        [
            f"• <b>{quote(deal.title)}</b> ({deal.code})",
            "  " + " · ".join(details),
            "  " + _("Pickup code: {code}").format(code=f"<code>{quote(order.pickup_code)}</code>"),
            "  " + when,
        ]
    )


async def my_orders_view(
    session: AsyncSession, user_id: int, page: int, default_timezone: str
) -> tuple[str, InlineKeyboardMarkup | None]:
    items = await order_service.of_user(session, user_id, limit=LIMIT)
    if not items:
        return _("You have no orders yet. Join a deal in your group to see it here."), None
    open_items = [(o, d) for o, d in items if d.status in deal_service.OPEN_STATES]
    past_items = [(o, d) for o, d in items if d.status not in deal_service.OPEN_STATES]
    ordered = open_items + past_items
    zones = await _timezones(session, ordered, default_timezone)
    blocks = [_block(o, d, zones[o.id]) for o, d in ordered]
    pages = split_pages(blocks, PAGE_BUDGET, PAGE_ITEMS)
    page = min(max(page, 0), len(pages) - 1)
    lines = [_("<b>Your orders</b>")]
    section = None
    for index in pages[page]:
        is_open = index < len(open_items)
        if is_open is not section:
            section = is_open
            lines += ["", _("<b>Open</b>") if is_open else _("<b>Past</b>")]
        lines.append(blocks[index])
    if len(pages) > 1:
        lines += ["", _("Page {page} of {pages}").format(page=page + 1, pages=len(pages))]

    keyboard: list[list[InlineKeyboardButton]] = []
    for index in pages[page]:
        order, deal = ordered[index]
        if _cancellable(order, deal):
            keyboard.append(
                [
                    InlineKeyboardButton(
                        text=_("Cancel {code} · {title}").format(
                            code=deal.code, title=deal.title[:30]
                        ),
                        callback_data=MyOrdersCB(
                            action="cancel", order_id=order.id, page=page
                        ).pack(),
                    )
                ]
            )
    nav = []
    if page > 0:
        nav.append(
            InlineKeyboardButton(
                text=_("‹ Previous"), callback_data=MyOrdersCB(action="page", page=page - 1).pack()
            )
        )
    if page < len(pages) - 1:
        nav.append(
            InlineKeyboardButton(
                text=_("Next ›"), callback_data=MyOrdersCB(action="page", page=page + 1).pack()
            )
        )
    if nav:
        keyboard.append(nav)
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=keyboard) if keyboard else None


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


def closed(deal: Deal) -> str:
    return _("{code} has closed; the order can no longer be cancelled.").format(code=deal.code)


async def _cancel(session: AsyncSession, user: User, order_id: int) -> tuple[str | None, int]:
    """Cancel the member's order: (None, deal id) when done, else (why not, 0)."""
    order = await session.get(Order, order_id) if 0 < order_id <= MAX_ID else None
    if order is None or order.user_id != user.id:
        log.info("user %s refused cancelling order %s (not theirs or unknown)", user.id, order_id)
        return _("That order is not yours or no longer exists."), 0
    deal = await deal_service.get(session, order.deal_id)
    if order.status in ("confirmed", "failed") or deal.status in deal_service.FINAL_STATES:
        return closed(deal), 0
    if order.status == "cancelled" or order.quantity == 0:
        return _("This order is already cancelled."), 0
    try:
        await order_service.act(
            session,
            deal_id=deal.id,
            user_id=user.id,
            action="cancel",
            group=None,
            now=utcnow(),
            via="myorders",
        )
    except order_service.DealClosed:
        return closed(deal), 0
    except order_service.DealPaused:
        return _("{code} is paused; try again when it resumes.").format(code=deal.code), 0
    except order_service.NotJoined:
        return _("This order is already cancelled."), 0
    except order_service.OrderError:
        return _("This order cannot be cancelled now."), 0
    log.info("user %s cancelled order %s of deal %s from /myorders", user.id, order_id, deal.id)
    return None, deal.id


def router() -> Router:
    r = Router(name="my_orders")
    r.message.filter(F.chat.type == "private")
    r.message.register(my_orders_command, Command("myorders"))
    r.callback_query.register(my_orders_button, MyOrdersCB.filter())
    return r

"""Texts and keyboards of /myorders (a member's orders); `cb` is handlers.my_orders.MyOrdersCB."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from models import Deal, Order, Payment
from services import deals as deal_service
from services import payment_books
from services.money import format_money
from services.my_orders import CancelRefused, MyOrders, cancellable, pickup_pending
from views.common import current_language
from views.format import quote
from views.owner_orders import (
    fulfilment_label,
    local_time,
    payment_state_label,
    split_pages,
    status_label,
)

PAGE_BUDGET = 3200
PAGE_ITEMS = 10


def _payment_line(order: Order, deal: Deal, payments: list[Payment], timezone: str) -> str:
    """A paid deal's order: paid, what to pay by when, or the state of its refund."""
    state = payment_books.refund_state(payments)
    if state not in (payment_books.NONE, payment_books.PAID):
        return _("Payment: {state}").format(state=payment_state_label(state))
    if order.paid_at is not None or state == payment_books.PAID:
        return _("Payment: paid")
    due = payment_books.owed(order)
    if order.status in payment_books.OWING and order.pay_by is not None and due:
        return _("To pay: {amount} by {time}").format(
            amount=format_money(due, deal.currency, current_language()),
            time=local_time(order.pay_by, timezone),
        )
    return ""


def _block(order: Order, deal: Deal, timezone: str, payments: list[Payment] | None = None) -> str:
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
    if order.coupon_discount:
        details.append(
            _("coupon −{amount}").format(
                amount=format_money(order.coupon_discount, deal.currency, language)
            )
        )
    if order.status == "confirmed":
        details.append(fulfilment_label(order.fulfilment))
    if deal.closed_at is not None or deal.status in deal_service.FINAL_STATES:
        when = _("Closed {time}").format(
            time=local_time(deal.closed_at or deal.closes_at, timezone)
        )
    else:
        when = _("Closes {time}").format(time=local_time(deal.closes_at, timezone))
    when += f" ({quote(timezone)})"
    lines = [f"• <b>{quote(deal.title)}</b> ({deal.code})", "  " + " · ".join(details)]
    if pickup_pending(order, deal):  # not for an order that can no longer be picked up
        code = f"<code>{quote(order.pickup_code)}</code>"
        lines.append("  " + _("Pickup code: {code}").format(code=code))
    if payment_books.is_paid_deal(deal):
        if paid := _payment_line(order, deal, payments or [], timezone):
            lines.append("  " + paid)
    lines.append("  " + when)
    return "\n".join(lines)


def my_orders_page(
    mine: MyOrders, page: int, cb: type[CallbackData]
) -> tuple[str, InlineKeyboardMarkup | None]:
    if not mine.ordered:
        return _("You have no orders yet. Join a deal in your group to see it here."), None
    ordered, zones = mine.ordered, mine.zones
    blocks = [_block(o, d, zones[o.id], mine.payments.get(o.id)) for o, d in ordered]
    pages = split_pages(blocks, PAGE_BUDGET, PAGE_ITEMS)
    page = min(max(page, 0), len(pages) - 1)
    lines = [_("<b>Your orders</b>")]
    section = None
    for index in pages[page]:
        is_open = index < mine.open_count
        if is_open is not section:
            section = is_open
            lines += ["", _("<b>Open</b>") if is_open else _("<b>Past</b>")]
        lines.append(blocks[index])
    if len(pages) > 1:
        lines += ["", _("Page {page} of {pages}").format(page=page + 1, pages=len(pages))]

    keyboard: list[list[InlineKeyboardButton]] = []
    for index in pages[page]:
        order, deal = ordered[index]
        if cancellable(order, deal):
            keyboard.append(
                [
                    InlineKeyboardButton(
                        text=_("Cancel {code} · {title}").format(
                            code=deal.code, title=deal.title[:30]
                        ),
                        callback_data=cb(action="cancel", order_id=order.id, page=page).pack(),
                    )
                ]
            )
    nav = []
    if page > 0:
        nav.append(
            InlineKeyboardButton(
                text=_("‹ Previous"), callback_data=cb(action="page", page=page - 1).pack()
            )
        )
    if page < len(pages) - 1:
        nav.append(
            InlineKeyboardButton(
                text=_("Next ›"), callback_data=cb(action="page", page=page + 1).pack()
            )
        )
    if nav:
        keyboard.append(nav)
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=keyboard) if keyboard else None


def closed(deal: Deal) -> str:
    return _("{code} has closed; the order can no longer be cancelled.").format(code=deal.code)


def cancel_refused_text(exc: CancelRefused) -> str:
    if exc.reason == "not_yours" or exc.deal is None:
        return _("That order is not yours or no longer exists.")
    if exc.reason == "closed":
        return closed(exc.deal)
    if exc.reason == "already":
        return _("This order is already cancelled.")
    if exc.reason == "paused":
        return _("{code} is paused; try again when it resumes.").format(code=exc.deal.code)
    return _("This order cannot be cancelled now.")

"""Texts and keyboards of the owners' order lists (/orders, an order's card, /pickup) and the
private notices their changes send: the presentation of services.owner_orders' read model.

Keyboards take the handler's callback data class (`cb`, handlers.owner_orders.OrdersCB) as
an argument: views never import handlers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from models import Deal, Order, Payment, User
from services import fulfilment as fulfilment_service
from services import payment_books
from services.fulfilment import BadTransition, Marked, NotConfirmed
from services.money import format_money
from services.notices import Audience
from services.owner_orders import DealOrders, OrderDetail
from views import payment_texts
from views.common import current_language
from views.deal_texts import status_name
from views.format import quote, wall_clock

PAGE_BUDGET = 3000  # characters of order lines per page (Telegram allows 4096 in all)
MAX_TEXT = 4000  # one message under Telegram's 4096 (counted with the HTML tags: safe side)
PAGE_ITEMS = 24  # orders per page (each may get a button)
NAME_MAX = 64  # characters of a member's name in a list line


# ---------------------------------------------------------------- shared presentation


def local_time(moment: datetime | None, timezone: str) -> str:
    return wall_clock(moment, timezone)


def status_label(status: str) -> str:
    labels = {
        "active": _("joined"),
        "confirmed": _("confirmed"),
        "failed": _("deal failed"),
        "cancelled": _("cancelled"),
    }
    return labels.get(status, status)


def fulfilment_label(state: str) -> str:
    labels = {
        "none": _("not handed over yet"),
        "ready": _("ready for pickup"),
        "picked_up": _("picked up"),
        "delivered": _("delivered"),
    }
    return labels.get(state, state)


def payment_state_label(state: str) -> str:
    """services.payment_books.refund_state() in words ("" for no payment)."""
    labels = {
        payment_books.PAID: _("paid"),
        payment_books.REFUND_PENDING: _("refund pending"),
        payment_books.REFUNDED_STATE: _("refunded"),
        payment_books.REFUND_FAILED: _("refund failed"),
        payment_books.OWED: _("refund owed"),
        payment_books.REFUNDED_OUTSIDE: _("refunded outside Telegram"),
    }
    return labels.get(state, state)


def mark_button_label(state: str) -> str:
    labels = {
        "ready": _("Ready for pickup"),
        "picked_up": _("Picked up"),
        "delivered": _("Delivered"),
    }
    return labels[state]


def mark_all_label(state: str) -> str:
    labels = {
        "ready": _("All ready"),
        "picked_up": _("All picked up"),
        "delivered": _("All delivered"),
    }
    return labels[state]


def split_pages(
    blocks: Sequence[str], budget: int = PAGE_BUDGET, max_items: int = PAGE_ITEMS
) -> list[list[int]]:
    """Indices of `blocks` per page: at most `max_items` blocks and about `budget` characters
    each (a single longer block still gets a page of its own). Always at least one page."""
    pages: list[list[int]] = [[]]
    used = 0
    for index, block in enumerate(blocks):
        size = len(block) + 1
        page = pages[-1]
        if page and (used + size > budget or len(page) >= max_items):
            pages.append([])
            used = 0
        pages[-1].append(index)
        used += size
    return pages


def member_name(user: User | None, user_id: int) -> str:
    """HTML: the member's name and @username, escaped."""
    if user is None:
        return _("user {id}").format(id=user_id)
    full = user.full_name
    name = quote(full if len(full) <= NAME_MAX else full[: NAME_MAX - 1] + "…")
    if user.username:
        name += f" (@{quote(user.username)})"
    return name


# ---------------------------------------------------------------- the list of a deal


def _amount_text(order: Order, deal: Deal, current_price: int, language: str) -> str:
    if order.status == "confirmed" and order.amount is not None:
        return format_money(order.amount, deal.currency, language)
    if order.status == "active":
        return "≈ " + format_money(order.quantity * current_price, deal.currency, language)
    return "—"


def _payment_text(order: Order, deal: Deal, payments: list[Payment], language: str) -> str:
    """A paid deal's order: paid, unpaid with what is due, or the state of its refund."""
    state = payment_books.refund_state(payments)
    if state not in (payment_books.NONE, payment_books.PAID):
        return payment_state_label(state)
    if order.paid_at is not None or state == payment_books.PAID:
        return _("paid")
    due = payment_books.owed(order)
    if order.status in payment_books.OWING and order.pay_by is not None and due:
        return _("unpaid, {amount} due").format(amount=format_money(due, deal.currency, language))
    return ""


def _order_line(
    number: int,
    order: Order,
    user: User | None,
    deal: Deal,
    price: int,
    payments: list[Payment] | None = None,
) -> str:
    language = current_language()
    parts = [
        f"{number}. {member_name(user, order.user_id)} ×{order.quantity}",
        _amount_text(order, deal, price, language),
        status_label(order.status),
    ]
    if order.status == "confirmed":
        parts.append(fulfilment_label(order.fulfilment))
    if payment_books.is_paid_deal(deal):
        if paid := _payment_text(order, deal, payments or [], language):
            parts.append(paid)
    elif order.status == "confirmed" and order.paid_at is not None:
        parts.append(_("paid"))
    parts.append(f"<code>{quote(order.pickup_code)}</code>")
    return " · ".join(parts)


def _totals(view: DealOrders) -> list[str]:
    deal = view.deal
    language = current_language()
    units = view.units
    lines = [
        _("<b>{code} · {title}</b> ({status})").format(
            code=deal.code, title=quote(deal.title), status=status_name(deal.status)
        ),
        (_("Closed: {time}") if deal.closed_at else _("Closes: {time}")).format(
            time=local_time(deal.closed_at or deal.closes_at, view.timezone)
        ),
        _("Participants: {participants} · Units: {units}").format(
            participants=len(view.rows), units=units
        ),
    ]
    if view.teams:
        lines.append(
            "👥 "
            + _("Teams: {open} open · {filled} filled · {failed} failed").format(**view.team_counts)
        )
    if deal.status == "succeeded" or (not view.is_open and view.revenue > 0):
        lines.append(
            _("Revenue: {amount} ({currency})").format(
                amount=format_money(view.revenue, deal.currency, language), currency=deal.currency
            )
        )
        lines.append(
            _(
                "Waiting {none} · ready {ready} · picked up {picked_up} · delivered {delivered}"
            ).format(**view.fulfilment_counts)
        )
    elif view.is_open:
        lines.append(
            _(
                "Expected revenue: {amount} ({currency}), {units} × {price} at the current price"
            ).format(
                amount=format_money(view.expected_revenue, deal.currency, language),
                currency=deal.currency,
                units=units,
                price=format_money(view.price, deal.currency, language),
            )
        )
    else:
        lines.append(_("No revenue: the deal did not succeed."))
    return lines


def deal_page(
    view: DealOrders, page: int, cb: type[CallbackData]
) -> tuple[str, InlineKeyboardMarkup]:
    """One page of the deal's orders with its totals, and its buttons (`cb`: OrdersCB)."""
    deal, rows = view.deal, view.rows
    lines = [
        _order_line(n, o, u, deal, view.price, view.payments.get(o.id))
        for n, (o, u) in enumerate(rows, start=1)
    ]
    pages = split_pages(lines)
    page = min(max(page, 0), len(pages) - 1)
    text_lines = _totals(view) + [""]
    if rows:
        text_lines += [lines[i] for i in pages[page]]
    else:
        text_lines.append(_("No orders yet."))
    if len(pages) > 1:
        text_lines += ["", _("Page {page} of {pages}").format(page=page + 1, pages=len(pages))]

    keyboard: list[list[InlineKeyboardButton]] = []
    succeeded = deal.status == "succeeded"
    if succeeded and rows:
        buttons = [
            InlineKeyboardButton(
                text=f"{i + 1} · {rows[i][0].pickup_code}",
                callback_data=cb(
                    action="order", deal_id=deal.id, order_id=rows[i][0].id, page=page
                ).pack(),
            )
            for i in pages[page]
            if rows[i][0].status == "confirmed"
        ]
        keyboard += [buttons[i : i + 3] for i in range(0, len(buttons), 3)]
    if len(pages) > 1:
        nav = []
        if page > 0:
            nav.append(
                InlineKeyboardButton(
                    text=_("‹ Previous"),
                    callback_data=cb(action="list", deal_id=deal.id, page=page - 1).pack(),
                )
            )
        if page < len(pages) - 1:
            nav.append(
                InlineKeyboardButton(
                    text=_("Next ›"),
                    callback_data=cb(action="list", deal_id=deal.id, page=page + 1).pack(),
                )
            )
        keyboard.append(nav)
    if rows:
        keyboard.append(
            [
                InlineKeyboardButton(
                    text=_("Export CSV"),
                    callback_data=cb(action="csv", deal_id=deal.id).pack(),
                ),
                InlineKeyboardButton(
                    text=_("Export XLSX"),
                    callback_data=cb(action="xlsx", deal_id=deal.id).pack(),
                ),
            ]
        )
    if succeeded and rows:
        keyboard.append(
            [
                InlineKeyboardButton(
                    text=mark_all_label(state),
                    callback_data=cb(action="ask", deal_id=deal.id, state=state, page=page).pack(),
                )
                for state in fulfilment_service.STATES
            ]
        )
    keyboard.append(
        [
            InlineKeyboardButton(
                text=_("Refresh"),
                callback_data=cb(action="list", deal_id=deal.id, page=page).pack(),
            )
        ]
    )
    return "\n".join(text_lines), InlineKeyboardMarkup(inline_keyboard=keyboard)


def order_card(
    view: OrderDetail, page: int, cb: type[CallbackData]
) -> tuple[str, InlineKeyboardMarkup]:
    """One order's card and its buttons (`cb`: OrdersCB)."""
    deal, order, group, timezone = view.deal, view.order, view.group, view.timezone
    lines = [
        _("<b>Order {id}</b> · {code} · {title}").format(
            id=order.id, code=deal.code, title=quote(deal.title)
        ),
        f"{member_name(view.user, order.user_id)} ×{order.quantity} · "
        + _amount_text(order, deal, view.price, current_language()),
        _("Status: {status} · {fulfilment}").format(
            status=status_label(order.status), fulfilment=fulfilment_label(order.fulfilment)
        ),
        _("Pickup code: {code}").format(code=f"<code>{quote(order.pickup_code)}</code>"),
        _("Joined: {time}").format(time=local_time(order.created_at, timezone)),
    ]
    if group is not None:
        lines.append(_("Group: {title}").format(title=quote(group.title)))
    if order.discount:
        lines.append(
            _("Credit used: {credit} · left to pay: {left}").format(
                credit=format_money(order.discount, deal.currency, current_language()),
                left=format_money(
                    max((order.amount or 0) - order.discount, 0), deal.currency, current_language()
                ),
            )
        )
    if order.coupon_discount:
        lines.append(
            _("Coupon: −{amount}").format(
                amount=format_money(order.coupon_discount, deal.currency, current_language())
            )
        )
    if order.paid_at is not None:
        lines.append(_("Paid: {time}").format(time=local_time(order.paid_at, timezone)))
    row = [
        InlineKeyboardButton(
            text=mark_button_label(state),
            callback_data=cb(
                action="mark", deal_id=deal.id, order_id=order.id, state=state, page=page
            ).pack(),
        )
        for state in fulfilment_service.STATES
        if order.status == "confirmed"
        and order.fulfilment in fulfilment_service.ALLOWED_FROM[state]
    ]
    keyboard = [row] if row else []
    if order.status == "confirmed" and deal.status == "succeeded":
        money_row = []
        if order.paid_at is None:
            money_row.append(
                InlineKeyboardButton(
                    text=_("Mark paid"),
                    callback_data=cb(
                        action="paid", deal_id=deal.id, order_id=order.id, page=page
                    ).pack(),
                )
            )
        money_row.append(
            InlineKeyboardButton(
                text=_("Refund / cancel order"),
                callback_data=cb(
                    action="rfask", deal_id=deal.id, order_id=order.id, page=page
                ).pack(),
            )
        )
        keyboard.append(money_row)
    keyboard.append(
        [
            InlineKeyboardButton(
                text=_("« All orders"),
                callback_data=cb(action="list", deal_id=deal.id, page=page).pack(),
            )
        ]
    )
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=keyboard)


def owned_deals_keyboard(deals: Sequence[Deal], cb: type[CallbackData]) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                text=f"{deal.code} · {deal.title[:40]} · {status_name(deal.status)}",
                callback_data=cb(action="list", deal_id=deal.id).pack(),
            )
        ]
        for deal in deals
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def mark_all_question(
    deal: Deal, state: str, page: int, cb: type[CallbackData]
) -> tuple[str, InlineKeyboardMarkup]:
    text = _(
        "Mark every confirmed order of {code} · {title} as “{state}”? "
        "Each member who started the bot is told privately."
    ).format(code=deal.code, title=quote(deal.title), state=fulfilment_label(state))
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("Yes, mark all"),
                    callback_data=cb(action="all", deal_id=deal.id, state=state, page=page).pack(),
                ),
                InlineKeyboardButton(
                    text=_("« Back"),
                    callback_data=cb(action="list", deal_id=deal.id, page=page).pack(),
                ),
            ]
        ]
    )
    return text, keyboard


def refund_question(
    deal: Deal, order: Order, member: User | None, page: int, cb: type[CallbackData]
) -> tuple[str, InlineKeyboardMarkup]:
    text = _(
        "Cancel order {id} of {who} (×{quantity}, {code} · {title}) as refunded? "
        "The order becomes cancelled, commission earned on it is reversed and credit "
        "spent on it goes back to the member. This cannot be undone."
    ).format(
        id=order.id,
        who=member_name(member, order.user_id),
        quantity=order.quantity,
        code=deal.code,
        title=quote(deal.title),
    )
    return text, _confirm_keyboard(deal, order, page, cb, "refund", _("Yes, cancel the order"))


def _confirm_keyboard(
    deal: Deal, order: Order, page: int, cb: type[CallbackData], action: str, text: str
) -> InlineKeyboardMarkup:
    """A refund to confirm (`action`, with the button's `text`) and « Back to the order."""

    def button(label: str, act: str) -> InlineKeyboardButton:
        data = cb(action=act, deal_id=deal.id, order_id=order.id, page=page).pack()
        return InlineKeyboardButton(text=label, callback_data=data)

    return InlineKeyboardMarkup(
        inline_keyboard=[[button(text, action), button(_("« Back"), "order")]]
    )


def card_refund_question(
    deal: Deal, order: Order, payment: Payment, page: int, cb: type[CallbackData]
) -> tuple[str, InlineKeyboardMarkup]:
    """A card-paid order: refunded in the provider's dashboard first, then confirmed here."""
    keyboard = _confirm_keyboard(
        deal, order, page, cb, "rfout", payment_texts.refund_confirm_button()
    )
    return payment_texts.refund_card_confirm_text(payment, current_language()), keyboard


def pickup_head(marked: Marked, member: User | None) -> str:
    return _("Order <code>{code}</code>: {who} ×{quantity}, {deal} · {title}.").format(
        code=quote(marked.order.pickup_code),
        who=member_name(member, marked.order.user_id),
        quantity=marked.order.quantity,
        deal=marked.deal.code,
        title=quote(marked.deal.title),
    )


def mark_all_summary(changed: int, unchanged: int, state: str) -> tuple[str, str]:
    """The short answer of a bulk mark and the longer summary shown above the list."""
    answer = ngettext("{n} order marked {state}.", "{n} orders marked {state}.", changed).format(
        n=changed, state=fulfilment_label(state)
    )
    summary = answer
    if unchanged:
        summary += " " + ngettext(
            "{n} order was left as it was (already there or past it).",
            "{n} orders were left as they were (already there or past it).",
            unchanged,
        ).format(n=unchanged)
    return answer, summary


# ---------------------------------------------------------------- who is told


def audience_text(found: Audience) -> str:
    """Whom a change promised a private message (services.notices decided it)."""
    parts = []
    if found.told:
        parts.append(
            ngettext(
                "{n} member is told privately.",
                "{n} members are told privately.",
                found.told,
            ).format(n=found.told)
        )
    if found.not_started:
        parts.append(
            ngettext(
                "{n} member has not started the bot and is not told.",
                "{n} members have not started the bot and are not told.",
                found.not_started,
            ).format(n=found.not_started)
        )
    return " ".join(parts)


# ---------------------------------------------------------------- refusals


def not_yours() -> str:
    """A deal or order that is not the person's: the same answer as one that does not exist,
    so ids and codes typed or forged reveal nothing."""
    return _("That deal or order does not exist, or it is not yours.")


def unknown_deal() -> str:
    return not_yours()


def unknown_order() -> str:
    return not_yours()


def not_confirmed_text(exc: NotConfirmed) -> str:
    if exc.deal_status != "succeeded":
        return _(
            "Only orders of a deal that succeeded can be handed over; this deal is {status}."
        ).format(status=status_name(exc.deal_status))
    return _("Only confirmed orders can be handed over; this order is {status}.").format(
        status=status_label(exc.order_status)
    )


def bad_transition_text(exc: BadTransition) -> str:
    return _("This order is already {current}; it cannot be marked {wanted}.").format(
        current=fulfilment_label(exc.current), wanted=fulfilment_label(exc.wanted)
    )


def export_titles() -> dict[str, str]:
    return {
        "order_id": _("Order"),
        "pickup_code": _("Pickup code"),
        "name": _("Name"),
        "username": _("Username"),
        "quantity": _("Quantity"),
        "unit_price": _("Unit price"),
        "amount": _("Amount"),
        "currency": _("Currency"),
        "status": _("Status"),
        "fulfilment": _("Fulfilment"),
        "joined_at": _("Joined at"),
        "group": _("Group"),
        "pay_method": _("Pay method"),
        "owed": _("Amount owed"),
        "paid_amount": _("Paid amount"),
        "charge_ids": _("Charge ids"),
        "provider_charge_ids": _("Provider charge ids"),
        "refund_state": _("Refund state"),
        "team": _("Team"),
        "bargain": _("Bargain"),
    }

"""Orders for owners, in private chat: the list per deal with totals, CSV/XLSX exports,
fulfilment (ready for pickup, picked up, delivered) with a private message to each member,
`/pickup CODE` (核销), and per order "Mark paid" and "Refund / cancel order" (commission is
credited or reversed in the same transaction; the members concerned are told after commit).

Callback data only names a deal, an order, a state and a page; every action re-checks on the
server that the user owns the deal (services.deals.get_owned / services.fulfilment).

Other routers may put `OrdersCB(action="list", deal_id=...)` on a button (e.g. the owner's
deal list) to open a deal's orders.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.methods import AnswerCallbackQuery
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.i18n import I18n, get_i18n, ngettext
from aiogram.utils.i18n import gettext as _
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.posts import PostRefresher
from handlers.common import quote, show
from handlers.deal_texts import status_name
from models import Database, Deal, Group, Order, User
from services import deals as deal_service
from services import exports, notices
from services import fulfilment as fulfilment_service
from services.deals import DealNotFound, NotDealOwner
from services.fulfilment import BadTransition, NotConfirmed, OrderNotFound
from services.money import format_money
from services.timezones import to_local, utcnow

log = logging.getLogger(__name__)

PAGE_BUDGET = 3000  # characters of order lines per page (Telegram allows 4096 in all)
MAX_TEXT = 4000  # one message under Telegram's 4096 (counted with the HTML tags: safe side)
PAGE_ITEMS = 24
NAME_MAX = (
    64  # characters of a member's name in a list line  # orders per page (each may get a button)
)
MAX_ID = 2**31 - 1  # ids are 32-bit integers; larger ones in forged data are refused early
ACTIONS = ("list", "csv", "xlsx", "order", "mark", "ask", "all", "paid", "rfask", "refund")


class OrdersCB(CallbackData, prefix="ord"):
    """action: list (page of a deal's orders) | csv | xlsx | order (one order's card) |
    mark (one order to `state`) | ask (confirm marking all) | all (mark all to `state`) |
    paid (mark one order paid) | rfask (confirm a refund) | refund (cancel a confirmed order)."""

    action: str
    deal_id: int
    order_id: int = 0
    state: str = ""
    page: int = 0


# ---------------------------------------------------------------- shared presentation


def current_language() -> str:
    return get_i18n().current_locale


def local_time(moment: datetime | None, timezone: str) -> str:
    if moment is None:
        return "—"
    return to_local(moment, timezone).strftime("%Y-%m-%d %H:%M")


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


async def _timezone_of(session: AsyncSession, deal_id: int) -> str:
    posted = await deal_service.posts(session, deal_id)
    return posted[0][1].timezone if posted else "UTC"


async def _orders_with_users(session: AsyncSession, deal_id: int) -> list[tuple[Order, User]]:
    result = await session.execute(
        select(Order, User)
        .outerjoin(User, User.id == Order.user_id)
        .where(Order.deal_id == deal_id, Order.quantity > 0)
        .order_by(Order.id)
    )
    return [(o, u) for o, u in result.all()]


def _amount_text(order: Order, deal: Deal, current_price: int, language: str) -> str:
    if order.status == "confirmed" and order.amount is not None:
        return format_money(order.amount, deal.currency, language)
    if order.status == "active":
        return "≈ " + format_money(order.quantity * current_price, deal.currency, language)
    return "—"


def _order_line(number: int, order: Order, user: User | None, deal: Deal, price: int) -> str:
    language = current_language()
    parts = [
        f"{number}. {member_name(user, order.user_id)} ×{order.quantity}",
        _amount_text(order, deal, price, language),
        status_label(order.status),
    ]
    if order.status == "confirmed":
        parts.append(fulfilment_label(order.fulfilment))
        if order.paid_at is not None:
            parts.append(_("paid"))
    parts.append(f"<code>{quote(order.pickup_code)}</code>")
    return " · ".join(parts)


def _totals(deal: Deal, rows: list[tuple[Order, User | None]], timezone: str) -> list[str]:
    language = current_language()
    units = sum(o.quantity for o, _u in rows)
    lines = [
        _("<b>{code} · {title}</b> ({status})").format(
            code=deal.code, title=quote(deal.title), status=status_name(deal.status)
        ),
        (_("Closed: {time}") if deal.closed_at else _("Closes: {time}")).format(
            time=local_time(deal.closed_at or deal.closes_at, timezone)
        ),
        _("Participants: {participants} · Units: {units}").format(
            participants=len(rows), units=units
        ),
    ]
    if deal.status == "succeeded":
        revenue = sum(o.amount or 0 for o, _u in rows if o.status == "confirmed")
        lines.append(
            _("Revenue: {amount} ({currency})").format(
                amount=format_money(revenue, deal.currency, language), currency=deal.currency
            )
        )
        counts = {state: 0 for state in ("none", "ready", "picked_up", "delivered")}
        for order, _u in rows:
            if order.status == "confirmed":
                counts[order.fulfilment] = counts.get(order.fulfilment, 0) + 1
        lines.append(
            _(
                "Waiting {none} · ready {ready} · picked up {picked_up} · delivered {delivered}"
            ).format(**counts)
        )
    elif deal.status in deal_service.OPEN_STATES:
        price = deal_service.price_at(deal, deal.total_qty)
        lines.append(
            _(
                "Expected revenue: {amount} ({currency}), {units} × {price} at the current price"
            ).format(
                amount=format_money(units * price, deal.currency, language),
                currency=deal.currency,
                units=units,
                price=format_money(price, deal.currency, language),
            )
        )
    else:
        lines.append(_("No revenue: the deal did not succeed."))
    return lines


async def deal_page(
    session: AsyncSession, deal: Deal, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    rows = await _orders_with_users(session, deal.id)
    timezone = await _timezone_of(session, deal.id)
    price = deal_service.price_at(deal, deal.total_qty)
    lines = [_order_line(n, o, u, deal, price) for n, (o, u) in enumerate(rows, start=1)]
    pages = split_pages(lines)
    page = min(max(page, 0), len(pages) - 1)
    text_lines = _totals(deal, rows, timezone) + [""]
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
                callback_data=OrdersCB(
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
                    callback_data=OrdersCB(action="list", deal_id=deal.id, page=page - 1).pack(),
                )
            )
        if page < len(pages) - 1:
            nav.append(
                InlineKeyboardButton(
                    text=_("Next ›"),
                    callback_data=OrdersCB(action="list", deal_id=deal.id, page=page + 1).pack(),
                )
            )
        keyboard.append(nav)
    if rows:
        keyboard.append(
            [
                InlineKeyboardButton(
                    text=_("Export CSV"),
                    callback_data=OrdersCB(action="csv", deal_id=deal.id).pack(),
                ),
                InlineKeyboardButton(
                    text=_("Export XLSX"),
                    callback_data=OrdersCB(action="xlsx", deal_id=deal.id).pack(),
                ),
            ]
        )
    if succeeded and rows:
        keyboard.append(
            [
                InlineKeyboardButton(
                    text=mark_all_label(state),
                    callback_data=OrdersCB(
                        action="ask", deal_id=deal.id, state=state, page=page
                    ).pack(),
                )
                for state in fulfilment_service.STATES
            ]
        )
    keyboard.append(
        [
            InlineKeyboardButton(
                text=_("Refresh"),
                callback_data=OrdersCB(action="list", deal_id=deal.id, page=page).pack(),
            )
        ]
    )
    return "\n".join(text_lines), InlineKeyboardMarkup(inline_keyboard=keyboard)


async def order_card(
    session: AsyncSession, deal: Deal, order: Order, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    user = await session.get(User, order.user_id)
    group = await session.get(Group, order.group_id) if order.group_id else None
    timezone = group.timezone if group is not None else await _timezone_of(session, deal.id)
    price = deal_service.price_at(deal, deal.total_qty)
    lines = [
        _("<b>Order {id}</b> · {code} · {title}").format(
            id=order.id, code=deal.code, title=quote(deal.title)
        ),
        f"{member_name(user, order.user_id)} ×{order.quantity} · "
        + _amount_text(order, deal, price, current_language()),
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
    if order.paid_at is not None:
        lines.append(_("Paid: {time}").format(time=local_time(order.paid_at, timezone)))
    row = [
        InlineKeyboardButton(
            text=mark_button_label(state),
            callback_data=OrdersCB(
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
                    callback_data=OrdersCB(
                        action="paid", deal_id=deal.id, order_id=order.id, page=page
                    ).pack(),
                )
            )
        money_row.append(
            InlineKeyboardButton(
                text=_("Refund / cancel order"),
                callback_data=OrdersCB(
                    action="rfask", deal_id=deal.id, order_id=order.id, page=page
                ).pack(),
            )
        )
        keyboard.append(money_row)
    keyboard.append(
        [
            InlineKeyboardButton(
                text=_("« All orders"),
                callback_data=OrdersCB(action="list", deal_id=deal.id, page=page).pack(),
            )
        ]
    )
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=keyboard)


# ---------------------------------------------------------------- showing changes


async def show_safely(
    query: CallbackQuery, text: str, keyboard: InlineKeyboardMarkup | None
) -> None:
    """Show the new state after a change; a failure to show it must not undo the change."""
    try:
        await show(query, text, keyboard)
    except TelegramAPIError as exc:
        log.warning("could not show the new state to %s: %s", query.from_user.id, exc)


def audience_text(found: notices.Audience) -> str:
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
    return _("Only the owner of that deal can see or change its orders.")


def unknown_deal() -> str:
    return _("That deal does not exist.")


def unknown_order() -> str:
    return _("That order does not exist.")


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


# ---------------------------------------------------------------- handlers


async def _owned_deals_keyboard(session: AsyncSession, owner_id: int) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                text=f"{deal.code} · {deal.title[:40]} · {status_name(deal.status)}",
                callback_data=OrdersCB(action="list", deal_id=deal.id).pack(),
            )
        ]
        for deal in await deal_service.owned_by(session, owner_id)
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def orders_command(
    message: Message, command: CommandObject, session: AsyncSession, user: User
) -> None:
    args = (command.args or "").split()
    if not args:
        keyboard = await _owned_deals_keyboard(session, user.id)
        if not keyboard.inline_keyboard:
            await message.answer(_("You have no deals yet."))
            return
        await message.answer(
            _("Choose a deal, or send <code>/orders D17</code>:"), reply_markup=keyboard
        )
        return
    deal_id = deal_service.parse_code(args[0])
    if deal_id is None:
        await message.answer(_("Usage: <code>/orders D17</code> (the deal's code)."))
        return
    try:
        deal = await deal_service.get_owned(session, deal_id, user.id)
    except DealNotFound:
        await message.answer(unknown_deal())
        return
    except NotDealOwner:
        await message.answer(not_yours())
        return
    text, keyboard = await deal_page(session, deal, 0)
    await message.answer(text, reply_markup=keyboard)


async def orders_button(
    query: CallbackQuery,
    callback_data: OrdersCB,
    session: AsyncSession,
    user: User,
    i18n: I18n,
    db: Database,
    posts: PostRefresher,
) -> AnswerCallbackQuery | None:
    """The owner's order buttons. Those that change orders return their answer, which the
    runner sends once the transaction has committed (never "Marked paid." for a change that
    then rolled back)."""
    data = callback_data
    if not (0 < data.deal_id <= MAX_ID and 0 <= data.order_id <= MAX_ID):
        await query.answer(unknown_deal(), show_alert=True)
        return
    if data.action not in ACTIONS or (
        data.action in ("mark", "ask", "all") and data.state not in fulfilment_service.STATES
    ):
        await query.answer(_("This button is out of date. Send /orders again."), show_alert=True)
        return
    try:
        deal = await deal_service.get_owned(session, data.deal_id, user.id)
    except DealNotFound:
        await query.answer(unknown_deal(), show_alert=True)
        return
    except NotDealOwner:
        log.info("user %s refused orders of deal %s", user.id, data.deal_id)
        await query.answer(not_yours(), show_alert=True)
        return

    if data.action == "list":
        await query.answer()
        text, keyboard = await deal_page(session, deal, data.page)
        await show(query, text, keyboard)
    elif data.action in ("csv", "xlsx"):
        await query.answer(_("Preparing the file…"))
        await send_export(query.bot, session, user.id, deal, data.action)
    elif data.action == "order":
        order = await session.get(Order, data.order_id)
        if order is None or order.deal_id != deal.id:
            await query.answer(unknown_order(), show_alert=True)
            return
        await query.answer()
        text, keyboard = await order_card(session, deal, order, data.page)
        await show(query, text, keyboard)
    elif data.action == "mark":
        return await _mark_one(query, data, session, user, i18n, db, posts, deal)
    elif data.action == "ask":
        await query.answer()
        text = _(
            "Mark every confirmed order of {code} · {title} as “{state}”? "
            "Each member who started the bot is told privately."
        ).format(code=deal.code, title=quote(deal.title), state=fulfilment_label(data.state))
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(
                        text=_("Yes, mark all"),
                        callback_data=OrdersCB(
                            action="all", deal_id=deal.id, state=data.state, page=data.page
                        ).pack(),
                    ),
                    InlineKeyboardButton(
                        text=_("« Back"),
                        callback_data=OrdersCB(
                            action="list", deal_id=deal.id, page=data.page
                        ).pack(),
                    ),
                ]
            ]
        )
        await show(query, text, keyboard)
    elif data.action == "all":
        return await _mark_all(query, data, session, user, i18n, db, posts, deal)
    else:  # paid | rfask | refund
        return await _money_action(query, data, session, user, i18n, db, posts, deal)


async def _mark_one(
    query: CallbackQuery,
    data: OrdersCB,
    session: AsyncSession,
    user: User,
    i18n: I18n,
    db: Database,
    posts: PostRefresher,
    deal: Deal,
) -> AnswerCallbackQuery | None:
    order = await session.get(Order, data.order_id)
    if order is None or order.deal_id != deal.id:
        await query.answer(unknown_order(), show_alert=True)
        return
    try:
        marked = await fulfilment_service.mark(session, order.id, user.id, data.state, utcnow())
    except (OrderNotFound, DealNotFound):
        await query.answer(unknown_order(), show_alert=True)
        return
    except NotDealOwner:
        await query.answer(not_yours(), show_alert=True)
        return
    except NotConfirmed as exc:
        await query.answer(not_confirmed_text(exc), show_alert=True)
        return
    except BadTransition as exc:
        await query.answer(bad_transition_text(exc), show_alert=True)
        return
    if not marked.changed:
        await query.answer(
            _("Already {state}; nothing changed.").format(state=fulfilment_label(marked.state))
        )
        return
    reply = query.answer(_("Marked {state}.").format(state=fulfilment_label(marked.state)))
    text, keyboard = await order_card(session, marked.deal, marked.order, data.page)
    await show_safely(query, text + "\n\n" + audience_text(marked.audience), keyboard)
    return reply


async def _mark_all(
    query: CallbackQuery,
    data: OrdersCB,
    session: AsyncSession,
    user: User,
    i18n: I18n,
    db: Database,
    posts: PostRefresher,
    deal: Deal,
) -> AnswerCallbackQuery | None:
    try:
        bulk = await fulfilment_service.mark_all(session, deal.id, user.id, data.state, utcnow())
    except NotDealOwner:
        await query.answer(not_yours(), show_alert=True)
        return
    except NotConfirmed as exc:
        await query.answer(not_confirmed_text(exc), show_alert=True)
        return
    summary = ngettext(
        "{n} order marked {state}.", "{n} orders marked {state}.", len(bulk.changed)
    ).format(n=len(bulk.changed), state=fulfilment_label(data.state))
    reply = query.answer(summary)
    if bulk.unchanged:
        summary += " " + ngettext(
            "{n} order was left as it was (already there or past it).",
            "{n} orders were left as they were (already there or past it).",
            bulk.unchanged,
        ).format(n=bulk.unchanged)
    if bulk.changed:
        summary += " " + audience_text(bulk.audience)
    text, keyboard = await deal_page(session, bulk.deal, data.page)
    await show_safely(query, summary + "\n\n" + text, keyboard)
    return reply


async def _money_action(
    query: CallbackQuery,
    data: OrdersCB,
    session: AsyncSession,
    user: User,
    i18n: I18n,
    db: Database,
    posts: PostRefresher,
    deal: Deal,
) -> AnswerCallbackQuery | None:
    """Mark paid, ask to confirm a refund, or refund (cancel) one confirmed order."""
    order = await session.get(Order, data.order_id)
    if order is None or order.deal_id != deal.id:
        await query.answer(unknown_order(), show_alert=True)
        return
    if data.action == "rfask":
        if order.status != "confirmed" or deal.status != "succeeded":
            await query.answer(
                not_confirmed_text(NotConfirmed(order.status, deal.status)), show_alert=True
            )
            return
        await query.answer()
        member = await session.get(User, order.user_id)
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
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(
                        text=_("Yes, cancel the order"),
                        callback_data=OrdersCB(
                            action="refund", deal_id=deal.id, order_id=order.id, page=data.page
                        ).pack(),
                    ),
                    InlineKeyboardButton(
                        text=_("« Back"),
                        callback_data=OrdersCB(
                            action="order", deal_id=deal.id, order_id=order.id, page=data.page
                        ).pack(),
                    ),
                ]
            ]
        )
        await show(query, text, keyboard)
        return
    now = utcnow()
    try:
        if data.action == "paid":
            marked = await fulfilment_service.mark_paid(session, order.id, user.id, now)
            changed, result_order = marked.changed, marked.order
            answer = _("Marked paid.") if changed else _("Already paid; nothing changed.")
        else:
            refunded = await fulfilment_service.refund(session, order.id, user.id, now)
            changed, result_order = refunded.changed, refunded.order
            answer = _("Order cancelled.") if changed else _("Already cancelled; nothing changed.")
    except (OrderNotFound, DealNotFound):
        await query.answer(unknown_order(), show_alert=True)
        return
    except NotDealOwner:
        await query.answer(not_yours(), show_alert=True)
        return
    except NotConfirmed as exc:
        await query.answer(not_confirmed_text(exc), show_alert=True)
        return
    log.info("order %s %s by %s (changed: %s)", order.id, data.action, user.id, changed)
    text, keyboard = await order_card(session, deal, result_order, data.page)
    await show_safely(query, text, keyboard)
    return query.answer(answer)


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
    }


async def send_export(bot: Bot, session: AsyncSession, chat_id: int, deal: Deal, kind: str) -> None:
    rows = await exports.rows(session, deal.id)
    if kind == "csv":
        data = exports.to_csv(rows, export_titles())
    else:
        data = exports.to_xlsx(rows, export_titles(), sheet=deal.code)
    filename = f"{deal.code}-orders.{kind}"
    caption = _("Orders of {code} · {title}: {n}").format(
        code=deal.code, title=quote(deal.title), n=len(rows)
    )
    await bot.send_document(chat_id, BufferedInputFile(data, filename=filename), caption=caption)
    log.info("export %s of deal %s sent to %s (%s rows)", kind, deal.id, chat_id, len(rows))


async def pickup_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User,
    i18n: I18n,
    db: Database,
    posts: PostRefresher,
) -> None:
    code = (command.args or "").strip()
    if not code:
        await message.answer(_("Usage: <code>/pickup CODE</code> (the member's pickup code)."))
        return
    try:
        order = await fulfilment_service.by_pickup_code(session, code, user.id)
        marked = await fulfilment_service.mark(session, order.id, user.id, "picked_up", utcnow())
    except fulfilment_service.UnknownPickupCode:
        await message.answer(
            _("No order has the pickup code {code}.").format(code=f"<code>{quote(code)}</code>")
        )
        return
    except NotDealOwner:
        await message.answer(_("That pickup code belongs to a deal you don't run."))
        return
    except NotConfirmed as exc:
        await message.answer(not_confirmed_text(exc))
        return
    except BadTransition as exc:
        await message.answer(bad_transition_text(exc))
        return
    member = await session.get(User, marked.order.user_id)
    who = member_name(member, marked.order.user_id)
    head = _("Order <code>{code}</code>: {who} ×{quantity}, {deal} · {title}.").format(
        code=quote(marked.order.pickup_code),
        who=who,
        quantity=marked.order.quantity,
        deal=marked.deal.code,
        title=quote(marked.deal.title),
    )
    if not marked.changed:
        await message.answer(head + "\n" + _("It was already picked up; nothing changed."))
        return
    await message.answer(
        head + "\n" + _("Marked picked up.") + " " + audience_text(marked.audience)
    )


def router() -> Router:
    r = Router(name="owner_orders")
    r.message.filter(F.chat.type == "private")
    r.message.register(orders_command, Command("orders"))
    r.message.register(pickup_command, Command("pickup"))
    r.callback_query.register(orders_button, OrdersCB.filter())
    return r

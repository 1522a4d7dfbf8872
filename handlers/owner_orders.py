"""Orders for owners, in private chat: the list per deal with totals, CSV/XLSX exports,
fulfilment (ready for pickup, picked up, delivered) with a private message to each member,
`/pickup CODE` (核销), and per order "Mark paid" and "Refund / cancel order" (commission is
credited or reversed in the same transaction; the members concerned are told after commit).

Callback data only names a deal, an order, a state and a page; every action re-checks on the
server that the user manages the deal now (services.rights, through services.deals.get_owned
/ services.fulfilment): its creator while an administrator of its group, else that group's
current administrators.

Other routers may put `OrdersCB(action="list", deal_id=...)` on a button (e.g. the owner's
deal list) to open a deal's orders.

Layers: services.owner_orders reads (the orders, totals, whom to tell), views.owner_orders
writes the texts and keyboards; this module parses, calls them and the fulfilment service,
and sends.
"""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.methods import AnswerCallbackQuery
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.posts import PostRefresher
from handlers.callbacks import OrdersCB
from handlers.common import quote, show
from models import Database, Deal, Order, User
from services import deals as deal_service
from services import exports
from services import fulfilment as fulfilment_service
from services import owner_orders as read
from services.admins import AdminDirectory
from services.deals import DealNotFound, NotDealOwner
from services.fulfilment import BadTransition, NotConfirmed, OrderNotFound
from services.payments import CardRefundOutside
from services.timezones import utcnow
from views import owner_orders as views
from views.format import echo
from views.owner_orders import (
    audience_text,
    bad_transition_text,
    fulfilment_label,
    not_confirmed_text,
    not_yours,
    unknown_deal,
    unknown_order,
)

log = logging.getLogger(__name__)

ACTIONS = (
    "list",
    "csv",
    "xlsx",
    "order",
    "mark",
    "ask",
    "all",
    "paid",
    "rfask",
    "refund",
    "rfout",  # refund a card-paid order the owner refunded in the provider's dashboard
)


# ---------------------------------------------------------------- pages and notices


async def deal_page(
    session: AsyncSession, deal: Deal, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    return views.deal_page(await read.deal_orders(session, deal), page, OrdersCB)


async def order_card(
    session: AsyncSession, deal: Deal, order: Order, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    return views.order_card(await read.order_detail(session, deal, order), page, OrdersCB)


async def show_safely(
    query: CallbackQuery, text: str, keyboard: InlineKeyboardMarkup | None
) -> None:
    """Show the new state after a change; a failure to show it must not undo the change."""
    try:
        await show(query, text, keyboard)
    except TelegramAPIError as exc:
        log.warning("could not show the new state to %s: %s", query.from_user.id, exc)


# ---------------------------------------------------------------- handlers


async def orders_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
) -> None:
    args = (command.args or "").split()
    if not args:
        keyboard = views.owned_deals_keyboard(
            await deal_service.owned_by(session, user.id, admins=admins), OrdersCB
        )
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
        deal = await deal_service.get_owned(session, deal_id, user.id, admins=admins)
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
    admins: AdminDirectory,
    i18n: I18n,
    db: Database,
    posts: PostRefresher,
) -> AnswerCallbackQuery | None:
    """The owner's order buttons. Those that change orders return their answer, which the
    runner sends once the transaction has committed (never "Marked paid." for a change that
    then rolled back)."""
    data = callback_data
    if data.action not in ACTIONS or (
        data.action in ("mark", "ask", "all") and data.state not in fulfilment_service.STATES
    ):
        await query.answer(_("This button is out of date. Send /orders again."), show_alert=True)
        return
    try:
        deal = await deal_service.get_owned(session, data.deal_id, user.id, admins=admins)
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
        order = await read.order_of(session, deal.id, data.order_id)
        if order is None:
            await query.answer(unknown_order(), show_alert=True)
            return
        await query.answer()
        text, keyboard = await order_card(session, deal, order, data.page)
        await show(query, text, keyboard)
    elif data.action == "mark":
        return await _mark_one(query, data, session, user, admins, deal)
    elif data.action == "ask":
        await query.answer()
        text, keyboard = views.mark_all_question(deal, data.state, data.page, OrdersCB)
        await show(query, text, keyboard)
    elif data.action == "all":
        return await _mark_all(query, data, session, user, admins, deal)
    else:  # paid | rfask | refund | rfout
        return await _money_action(query, data, session, user, admins, deal)


async def _mark_one(
    query: CallbackQuery,
    data: OrdersCB,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    deal: Deal,
) -> AnswerCallbackQuery | None:
    order = await read.order_of(session, deal.id, data.order_id)
    if order is None:
        await query.answer(unknown_order(), show_alert=True)
        return
    try:
        marked = await fulfilment_service.mark(
            session, order.id, user.id, data.state, utcnow(), admins=admins
        )
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
    admins: AdminDirectory,
    deal: Deal,
) -> AnswerCallbackQuery | None:
    try:
        bulk = await fulfilment_service.mark_all(
            session, deal.id, user.id, data.state, utcnow(), admins=admins
        )
    except NotDealOwner:
        await query.answer(not_yours(), show_alert=True)
        return
    except NotConfirmed as exc:
        await query.answer(not_confirmed_text(exc), show_alert=True)
        return
    answer, summary = views.mark_all_summary(len(bulk.changed), bulk.unchanged, data.state)
    reply = query.answer(answer)
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
    admins: AdminDirectory,
    deal: Deal,
) -> AnswerCallbackQuery | None:
    """Mark paid, ask to confirm a refund, or refund (cancel) one confirmed order."""
    order = await read.order_of(session, deal.id, data.order_id)
    if order is None:
        await query.answer(unknown_order(), show_alert=True)
        return
    if data.action == "rfask":
        if order.status != "confirmed" or deal.status != "succeeded":
            await query.answer(
                not_confirmed_text(NotConfirmed(order.status, deal.status)), show_alert=True
            )
            return
        await query.answer()
        member = await read.member(session, order.user_id)
        text, keyboard = views.refund_question(deal, order, member, data.page, OrdersCB)
        await show(query, text, keyboard)
        return
    now = utcnow()
    try:
        if data.action == "paid":
            marked = await fulfilment_service.mark_paid(
                session, order.id, user.id, now, admins=admins
            )
            changed, result_order = marked.changed, marked.order
            answer = _("Marked paid.") if changed else _("Already paid; nothing changed.")
        else:
            refunded = await fulfilment_service.refund(
                session, order.id, user.id, now, admins=admins, outside=data.action == "rfout"
            )
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
    except CardRefundOutside as exc:  # the owner refunds it in the provider's dashboard first
        await query.answer()
        text, keyboard = views.card_refund_question(deal, order, exc.payment, data.page, OrdersCB)
        await show(query, text, keyboard)
        return
    log.info("order %s %s by %s (changed: %s)", order.id, data.action, user.id, changed)
    text, keyboard = await order_card(session, deal, result_order, data.page)
    await show_safely(query, text, keyboard)
    return query.answer(answer)


async def send_export(bot: Bot, session: AsyncSession, chat_id: int, deal: Deal, kind: str) -> None:
    rows = await exports.rows(session, deal.id)
    if kind == "csv":
        data = exports.to_csv(rows, views.export_titles())
    else:
        data = exports.to_xlsx(rows, views.export_titles(), sheet=deal.code)
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
    admins: AdminDirectory,
) -> None:
    code = (command.args or "").strip()
    if not code:
        await message.answer(_("Usage: <code>/pickup CODE</code> (the member's pickup code)."))
        return
    try:
        order = await fulfilment_service.by_pickup_code(session, code, user.id, admins=admins)
        marked = await fulfilment_service.mark(
            session, order.id, user.id, "picked_up", utcnow(), admins=admins
        )
    except fulfilment_service.UnknownPickupCode:
        await message.answer(
            _("No order has the pickup code {code}.").format(code=f"<code>{echo(code)}</code>")
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
    head = views.pickup_head(marked, await read.member(session, marked.order.user_id))
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

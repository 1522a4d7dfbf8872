"""Commission in private chat.

`/commission` (owners and administrators of a group): pick a group → its commission
percentage, attribution window and whether members may spend credit, each changeable; the
members' balances with "Record payout". `/commission D17 8` / `/commission D17 off` sets or
clears one deal's own percentage (the deal's owner only).

`/mycredit` (members): balance per group and currency, the latest ledger lines, and "Use
credit on D17" where the group allows spending and an order is still to be paid.

Callback data names only a group, a member, a currency or an order; every step re-checks on
the server that the user administers the group (or owns the order). Rules live in
services.credit.
"""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.forms import PERSON_KEY
from handlers.callbacks import CommissionCB, MyCreditCB
from handlers.common import group_gone, group_of_form, group_picker, group_title, quote, show
from models import Group, User
from services import credit as credit_service
from services import deals as deal_service
from services import groups as group_service
from services import people
from services.admins import AdminDirectory
from services.credit import BadDays, BadPercent, CannotSpend, PayoutRefused
from services.deals import DealNotFound, NotDealOwner
from services.errors import GroupNotFound, NotGroupAdmin
from services.money import format_money
from services.parsing import ParseError, parse_price
from services.timezones import utcnow
from views.common import current_language
from views.credit_texts import (
    bad_days_text,
    bad_percent_text,
    cancel_keyboard,
    cannot_spend_text,
    group_card,
    kind_label,
    percent_text,
    refusal,
    stale,
)
from views.credit_texts import signed_money as signed
from views.deal_texts import parse_error_text
from views.owner_orders import local_time, member_name

log = logging.getLogger(__name__)

TEXT_BUDGET = 3500
HISTORY_LINES = 5
OFF_WORDS = {"off", "none", "clear", "default", "关", "关闭", "取消"}


class CommissionForm(StatesGroup):
    percent = State()
    days = State()
    payout = State()


# ---------------------------------------------------------------- /commission: the group


async def group_list(
    session: AsyncSession, user: User, admins: AdminDirectory
) -> tuple[str, InlineKeyboardMarkup | None]:
    groups = await admins.groups_of(session, user.id)
    if not groups:
        return (
            _(
                "You don't run any group with me yet. Add me to your group and make me an "
                "admin, then send /commission again."
            ),
            None,
        )
    keyboard = group_picker(
        (group for group, _status in groups),
        lambda group: CommissionCB(action="open", group_id=group.id).pack(),
        lambda group: f"{group_title(group, 48)} · {percent_text(group.commission_bp)}",
    )
    return _("Choose a group:"), keyboard


async def balances_view(session: AsyncSession, group: Group) -> tuple[str, InlineKeyboardMarkup]:
    language = current_language()
    balances = await credit_service.balances_in_group(session, group.id)
    people = await deal_service.people_of(session, [b.user_id for b in balances])
    lines = [_("<b>Credit balances in {title}</b>").format(title=quote(group.title))]
    rows: list[list[InlineKeyboardButton]] = []
    if not balances:
        lines.append(_("Nobody has credit here yet."))
    size = len(lines[0])
    for number, item in enumerate(balances, start=1):
        name = member_name(people.get(item.user_id), item.user_id)
        line = f"{number}. {name} · {format_money(item.amount, item.currency, language)}"
        size += len(line) + 1
        if size > TEXT_BUDGET:  # within Telegram's 4096, with room for "…"
            lines.append("…")
            break
        lines.append(line)
        if item.amount > 0:
            rows.append(
                [
                    InlineKeyboardButton(
                        text=_("Record payout · {n}").format(n=number),
                        callback_data=CommissionCB(
                            action="pay", group_id=group.id, user_id=item.user_id, cur=item.currency
                        ).pack(),
                    )
                ]
            )
    rows.append(
        [
            InlineKeyboardButton(
                text=_("« Back"),
                callback_data=CommissionCB(action="open", group_id=group.id).pack(),
            )
        ]
    )
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows)


async def commission_command(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
) -> None:
    await state.clear()
    args = (command.args or "").split()
    if not args:
        text, keyboard = await group_list(session, user, admins)
        await message.answer(text, reply_markup=keyboard)
        return
    deal_id = deal_service.parse_code(args[0])
    if deal_id is None or len(args) != 2:
        await message.answer(
            _(
                "Usage: <code>/commission</code> for your groups, "
                "<code>/commission D17 8</code> to give deal D17 its own percentage, "
                "<code>/commission D17 off</code> to use the group's again."
            )
        )
        return
    try:
        deal = await deal_service.get_owned(session, deal_id, user.id, admins=admins)
    except (DealNotFound, NotDealOwner):  # one answer: a code reveals no one else's deal
        await message.answer(_("That deal does not exist or is not yours."))
        return
    value = args[1]
    if value.lower() in OFF_WORDS:
        await credit_service.set_deal_rate(session, deal, None)
        await message.answer(
            _("{code} · {title} now uses the commission of each group it is in.").format(
                code=deal.code, title=quote(deal.title)
            )
        )
        return
    try:
        bp = credit_service.parse_percent(value)
    except BadPercent as exc:
        await message.answer(bad_percent_text(exc))
        return
    await credit_service.set_deal_rate(session, deal, bp)
    log.info("deal %s commission set to %s bp by %s", deal.id, bp, user.id)
    await message.answer(
        _("Commission for {code} · {title}: {percent}, instead of the group's.").format(
            code=deal.code, title=quote(deal.title), percent=percent_text(bp)
        )
    )


async def commission_button(
    query: CallbackQuery,
    callback_data: CommissionCB,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
) -> None:
    data = callback_data
    if data.action == "list":
        await state.clear()
        await query.answer()
        text, keyboard = await group_list(session, user, admins)
        await show(query, text, keyboard)
        return
    try:
        group = await admins.require_admin(session, data.group_id, user.id)
    except NotGroupAdmin:
        await query.answer(refusal(), show_alert=True)
        return
    except GroupNotFound:
        await query.answer(group_gone(), show_alert=True)
        return
    if data.action in ("open", "cancel"):
        await state.clear()
        await query.answer(_("Cancelled.") if data.action == "cancel" else None)
        text, keyboard = group_card(group, CommissionCB)
        await show(query, text, keyboard)
    elif data.action == "pct":
        await state.set_state(CommissionForm.percent)
        await state.set_data({"group_id": group.id})
        await query.answer()
        await query.bot.send_message(
            user.id,
            _(
                "Send the commission for {title} as a percentage from 0 to 50, for example "
                "<code>5</code> or <code>7.5</code>. It is now {percent}."
            ).format(title=quote(group.title), percent=percent_text(group.commission_bp)),
            reply_markup=cancel_keyboard(group.id, CommissionCB),
        )
    elif data.action == "days":
        await state.set_state(CommissionForm.days)
        await state.set_data({"group_id": group.id})
        await query.answer()
        await query.bot.send_message(
            user.id,
            _(
                "For how many days after someone opens a member's share link are their orders "
                "credited to that member? Send 1 to 90, for example <code>7</code>. "
                "It is now {days}."
            ).format(days=group.attribution_days),
            reply_markup=cancel_keyboard(group.id, CommissionCB),
        )
    elif data.action in ("son", "soff"):
        await credit_service.set_spendable(session, group, data.action == "son")
        log.info("group %s credit spending %s by %s", group.id, group.credit_spendable, user.id)
        await query.answer(_("Saved."))
        text, keyboard = group_card(group, CommissionCB)
        await show(query, text, keyboard)
    elif data.action == "bal":
        await query.answer()
        text, keyboard = await balances_view(session, group)
        await show(query, text, keyboard)
    elif data.action == "pay" and data.user_id > 0 and len(data.cur) == 3:
        have = await credit_service.balance(session, group.id, data.user_id, data.cur)
        if have <= 0:
            await query.answer(_("This member has no credit to pay out."), show_alert=True)
            return
        member = await people.get(session, data.user_id)
        await state.set_state(CommissionForm.payout)
        # the member under forms.PERSON_KEY: /forgetme removes them from this form
        await state.set_data({"group_id": group.id, PERSON_KEY: data.user_id, "cur": data.cur})
        await query.answer()
        await query.bot.send_message(
            user.id,
            _(
                "How much did you pay out to {name}? Their balance is {balance}. "
                "Send an amount, for example <code>{example}</code>."
            ).format(
                name=member_name(member, data.user_id),
                balance=format_money(have, data.cur, current_language()),
                example="10",
            ),
            reply_markup=cancel_keyboard(group.id, CommissionCB),
        )
    else:
        await query.answer(stale(), show_alert=True)


async def percent_typed(
    message: Message, state: FSMContext, session: AsyncSession, user: User, admins: AdminDirectory
) -> None:
    group = await group_of_form(message, state, session, user, admins, refusal)
    if group is None:
        return
    try:
        bp = credit_service.parse_percent(message.text or "")
    except BadPercent as exc:
        await message.answer(
            bad_percent_text(exc), reply_markup=cancel_keyboard(group.id, CommissionCB)
        )
        return
    await credit_service.set_group_rate(session, group, bp)
    log.info("group %s commission set to %s bp by %s", group.id, bp, user.id)
    await state.clear()
    text, keyboard = group_card(group, CommissionCB)
    await message.answer(_("Saved.") + "\n\n" + text, reply_markup=keyboard)


async def days_typed(
    message: Message, state: FSMContext, session: AsyncSession, user: User, admins: AdminDirectory
) -> None:
    group = await group_of_form(message, state, session, user, admins, refusal)
    if group is None:
        return
    try:
        days = credit_service.parse_days(message.text or "")
    except BadDays as exc:
        await message.answer(
            bad_days_text(exc), reply_markup=cancel_keyboard(group.id, CommissionCB)
        )
        return
    await credit_service.set_attribution_days(session, group, days)
    await state.clear()
    text, keyboard = group_card(group, CommissionCB)
    await message.answer(_("Saved.") + "\n\n" + text, reply_markup=keyboard)


async def payout_typed(
    message: Message, state: FSMContext, session: AsyncSession, user: User, admins: AdminDirectory
) -> None:
    group = await group_of_form(message, state, session, user, admins, refusal)
    if group is None:
        return
    data = await state.get_data()
    member_id, currency = int(data.get(PERSON_KEY) or 0), str(data.get("cur", ""))
    if member_id <= 0 or await people.get(session, member_id) is None:  # forgotten meanwhile
        await state.clear()
        await message.answer(
            _("That member is no longer known (they deleted their data): nothing was recorded.")
        )
        return
    language = current_language()
    try:
        price = parse_price(message.text or "", currency)
    except ParseError as exc:
        await message.answer(
            parse_error_text(exc), reply_markup=cancel_keyboard(group.id, CommissionCB)
        )
        return
    if price.currency != currency:
        await message.answer(
            _("This balance is in {currency}; send the amount in {currency}.").format(
                currency=currency
            ),
            reply_markup=cancel_keyboard(group.id, CommissionCB),
        )
        return
    try:
        await credit_service.record_payout(
            session, group.id, member_id, currency, price.amount, user.id, utcnow()
        )
    except PayoutRefused as exc:
        await message.answer(
            _(
                "That is more than the member's balance of {balance}; nothing was recorded. "
                "Send at most {balance}."
            ).format(balance=format_money(max(exc.balance, 0), currency, language)),
            reply_markup=cancel_keyboard(group.id, CommissionCB),
        )
        return
    await state.clear()
    member = await people.get(session, member_id)
    text, keyboard = await balances_view(session, group)
    await message.answer(
        _("Payout of {amount} to {name} recorded.").format(
            amount=format_money(price.amount, currency, language),
            name=member_name(member, member_id),
        )
        + "\n\n"
        + text,
        reply_markup=keyboard,
    )


async def not_text(message: Message) -> None:
    await message.answer(_("Please send the value as text, or tap Cancel."))


# ---------------------------------------------------------------- /mycredit


async def my_credit_view(
    session: AsyncSession, user_id: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    language = current_language()
    balances = await credit_service.balances_of_user(session, user_id)
    if not balances:
        return (
            _(
                "You have no credit yet. Share a deal's link: when an order placed through it "
                "is picked up, delivered or paid, your commission shows here."
            ),
            None,
        )
    lines = [_("<b>Your credit</b>")]
    shown_groups: set[int] = set()
    for item in balances:
        group = await group_service.get(session, item.group_id)
        if group is None:  # pragma: no cover - entries are removed with their group
            continue
        block = [
            "",
            f"<b>{quote(group.title[:64])}</b>: "
            + format_money(item.amount, item.currency, language),
        ]
        if item.group_id not in shown_groups:
            shown_groups.add(item.group_id)
            for history in await credit_service.history(
                session, user_id, item.group_id, HISTORY_LINES
            ):
                entry = history.entry
                parts = [
                    local_time(entry.created_at, group.timezone),
                    kind_label(entry),
                    signed(entry.amount, entry.currency, language),
                ]
                if history.deal_code:
                    parts.append(history.deal_code)
                block.append("  • " + " · ".join(parts))
        if len("\n".join(lines + block)) > TEXT_BUDGET:
            lines.append("…")
            break
        lines += block
    rows = [
        [
            InlineKeyboardButton(
                text=_("Use credit on {code} ({amount})").format(
                    code=deal.code,
                    amount=format_money(
                        min(have, (order.amount or 0) - order.discount - order.coupon_discount),
                        deal.currency,
                        language,
                    ),
                ),
                callback_data=MyCreditCB(action="use", order_id=order.id).pack(),
            )
        ]
        for order, deal, have in (await credit_service.spendable_orders(session, user_id))[:10]
    ]
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


async def my_credit_command(message: Message, session: AsyncSession, user: User) -> None:
    text, keyboard = await my_credit_view(session, user.id)
    await message.answer(text, reply_markup=keyboard)


async def my_credit_button(
    query: CallbackQuery, callback_data: MyCreditCB, session: AsyncSession, user: User
) -> None:
    if callback_data.action == "use" and callback_data.order_id > 0:
        try:
            entry = await credit_service.spend(session, callback_data.order_id, user.id, utcnow())
        except CannotSpend as exc:
            await query.answer(cannot_spend_text(exc), show_alert=True)
            return
        await query.answer(
            _("{amount} of credit used.").format(
                amount=format_money(-entry.amount, entry.currency, current_language())
            )
        )
    elif callback_data.action == "view":
        await query.answer()
    else:
        await query.answer(_("This button is out of date. Send /mycredit again."), show_alert=True)
        return
    text, keyboard = await my_credit_view(session, user.id)
    await show(query, text, keyboard)


def router() -> Router:
    r = Router(name="credit")
    r.message.filter(F.chat.type == "private")
    r.message.register(commission_command, Command("commission"))
    r.message.register(my_credit_command, Command("mycredit"))
    for form_state, handler in (
        (CommissionForm.percent, percent_typed),
        (CommissionForm.days, days_typed),
        (CommissionForm.payout, payout_typed),
    ):
        r.message.register(handler, StateFilter(form_state), F.text, ~F.text.startswith("/"))
    r.message.register(
        not_text,
        StateFilter(CommissionForm.percent, CommissionForm.days, CommissionForm.payout),
        ~F.text,
    )
    r.callback_query.register(commission_button, CommissionCB.filter())
    r.callback_query.register(my_credit_button, MyCreditCB.filter())
    return r

"""/deals in private chat: the owner's deals, newest first, and what can be done with each.

After publishing only what cannot hurt people already in may change (services.deals.edit):
the description, a LATER closing time, MORE stock, the reminders before closing (those
already sent are never sent again), who may join from shared inline cards (members of the
group or anyone with the card: `services.deals.set_audience`); never the price. Pause /
resume, close now and cancel (both asked to confirm first: `confirm_closing`) and duplicate
(the wizard, pre-filled, the audience too) complete the set.

Callback data carries only a deal id; every action re-checks on the server that the deal
belongs to the user (a forged or stale id is refused and nothing changes). Closing and
cancelling go through `services.deals.close_owned`, which closes the deal once and promises
the participants' notices in the outbox. After an edit a DealChanged event refreshes the
group posts once the transaction committed (bot/effects.py).

The time is the Dispatcher's `clock` (services.timezones.Clock; tests set it).
"""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from handlers import deal_wizard
from handlers.callbacks import OwnerDealCB
from handlers.common import quote
from models import Database, Deal, Group, User
from services import deals as deal_service
from services import events
from services.admins import AdminDirectory
from services.errors import DomainError
from services.parsing import (
    ParseError,
    check_note,
    parse_local_datetime,
    parse_quantity,
    parse_reminders,
)
from services.timezones import Clock
from views.deal_texts import (
    audience_button,
    audience_line,
    audience_note,
    domain_error_text,
    local_times,
    money,
    parse_error_text,
    reminders_text,
    status_name,
    units,
)
from views.owner_deals import closing_line, progress_text, reminders_note, summary

log = logging.getLogger(__name__)
PAGE = 8
# The card's switch of who may join from shared inline cards: the button names the value it
# sets (a stale button sets it again, never flips it back).
AUDIENCE_ACTIONS = {"audall": "anyone", "audmem": "members"}
MAX_DESCRIPTION = deal_wizard.MAX_DESCRIPTION


class OwnerEdit(StatesGroup):
    description = State()
    closes = State()
    stock = State()
    reminders = State()


def _button(text: str, action: str, deal_id: int = 0, page: int = 0) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=text, callback_data=OwnerDealCB(action=action, deal_id=deal_id, page=page).pack()
    )


def _timezones(groups: list[Group], settings: Settings) -> list[str]:
    return [g.timezone for g in groups] or [settings.default_timezone]


def touch_posts(session: AsyncSession, deal_id: int) -> None:
    """Refresh the deal's group posts once the transaction committed."""
    events.record(session, events.DealChanged(deal_id))


# ---------------------------------------------------------------- rendering


def card(deal: Deal, groups: list[Group], settings: Settings) -> tuple[str, InlineKeyboardMarkup]:
    tzs = _timezones(groups, settings)
    cur = deal.currency
    lines = [
        f"<b>{deal.code} · {quote(deal.title)}</b>",
        _("Status: {status}").format(status=status_name(deal.status)),
        _("Price: {price} per unit").format(price=money(deal.unit_price, cur)),
    ]
    tiers = deal_service.tiers_of(deal)
    if tiers:
        lines.append(
            _("Tiers: {tiers}").format(
                tiers=", ".join(
                    _("from {units}: {price}").format(units=units(t), price=money(p, cur))
                    for t, p in tiers
                )
            )
        )
    if deal.final_price is not None:
        lines.append(_("Final price: {price}").format(price=money(deal.final_price, cur)))
    elif tiers:
        lines.append(
            _("Price reached: {price}").format(
                price=money(deal_service.price_at(deal, deal.total_qty), cur)
            )
        )
    lines.append(_("Progress: {progress}").format(progress=progress_text(deal)))
    if deal.per_person_limit is not None:
        lines.append(_("Per person: at most {value}").format(value=units(deal.per_person_limit)))
    lines.append(_("Opens: {time}").format(time=local_times(deal.opens_at, tzs)))
    lines.append(closing_line(deal, tzs))
    if deal.pickup_note:
        lines.append(_("Pickup / delivery: {note}").format(note=quote(deal.pickup_note)))
    lines.append(_("Reminders: {value}").format(value=reminders_text(deal.reminders)))
    lines.append(audience_line(deal.audience))
    lines.append(
        _("Groups: {titles}").format(
            titles=", ".join(quote(g.title or str(g.chat_id)) for g in groups) or "—"
        )
    )
    if deal.description:
        text = deal.description if len(deal.description) <= 500 else deal.description[:500] + "…"
        lines += ["", quote(text)]
    rows: list[list[InlineKeyboardButton]] = []
    if deal.status not in deal_service.FINAL_STATES:
        rows.append([_button(_("✏️ Description"), "desc", deal.id)])
        extend = [_button(_("⏰ Later closing"), "later", deal.id)]
        if deal.stock_total is not None:
            extend.append(_button(_("➕ Stock"), "stock", deal.id))
        rows.append(extend)
        rows.append([_button(_("🔔 Reminders"), "rem", deal.id)])
        switch = "audmem" if deal.audience == "anyone" else "audall"
        rows.append([_button(audience_button(deal.audience), switch, deal.id)])
        if deal.status == "open":
            rows.append([_button(_("⏸ Pause"), "pause", deal.id)])
        elif deal.status == "paused":
            rows.append([_button(_("▶️ Resume"), "resume", deal.id)])
        rows.append(
            [
                _button(_("🏁 Close now"), "close", deal.id),
                _button(_("🗑 Cancel deal"), "cancel", deal.id),
            ]
        )
    rows.append([_button(_("📋 Duplicate"), "dup", deal.id)])
    rows.append([_button(_("« All deals"), "list")])
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows)


async def send_list(
    bot: Bot,
    session: AsyncSession,
    user_id: int,
    settings: Settings,
    page: int = 0,
    *,
    admins: AdminDirectory | None = None,
) -> None:
    page = max(page, 0)
    found = await deal_service.owned_by(
        session, user_id, limit=(page + 1) * PAGE + 1, admins=admins
    )
    items = found[page * PAGE : (page + 1) * PAGE]
    if not items:
        await bot.send_message(user_id, _("You have no deals yet. Create one with /newdeal."))
        return
    groups = await deal_service.groups_by_deal(session, [d.id for d in items])
    lines = [_("<b>Your deals</b>")]
    for deal in items:
        lines += ["", summary(deal, _timezones(groups[deal.id], settings))]
    rows = [
        [_button(f"{d.code} · {d.title[:40]}", "open", d.id)] for d in items
    ]  # fmt: skip
    nav = []
    if page > 0:
        nav.append(_button(_("« Newer"), "list", page=page - 1))
    if len(found) > (page + 1) * PAGE:
        nav.append(_button(_("Older »"), "list", page=page + 1))
    if nav:
        rows.append(nav)
    await bot.send_message(
        user_id, "\n".join(lines), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows)
    )


async def send_card(
    bot: Bot,
    session: AsyncSession,
    deal: Deal,
    settings: Settings,
    note: str | None = None,
    *,
    to: int | None = None,
) -> None:
    """The deal's card, to the person who manages it and asked (`to`; the creator if None)."""
    groups = [g for _p, g in await deal_service.posts(session, deal.id)]
    text, keyboard = card(deal, groups, settings)
    if note:
        text = note + "\n\n" + text
    await bot.send_message(to or deal.owner_id, text, reply_markup=keyboard)


# ---------------------------------------------------------------- handlers


async def deals_command(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
) -> None:
    if await state.get_state() in OwnerEdit.__all_states_names__:
        await state.clear()
    await send_list(message.bot, session, user.id, settings, admins=admins)


async def owner_button(
    query: CallbackQuery,
    callback_data: OwnerDealCB,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
    clock: Clock,
) -> None:
    bot = query.bot
    action = callback_data.action
    if action == "list":
        if await state.get_state() in OwnerEdit.__all_states_names__:
            await state.clear()
        await query.answer()
        await send_list(bot, session, user.id, settings, callback_data.page, admins=admins)
        return
    try:
        deal = await deal_service.get_owned(
            session,
            callback_data.deal_id,
            user.id,
            lock=action in {"pause", "resume"},
            admins=admins,
        )
    except DomainError as err:
        await query.answer(domain_error_text(err), show_alert=True)
        return
    moment = clock.now()
    if action == "open":
        if await state.get_state() in OwnerEdit.__all_states_names__:
            await state.clear()
        await query.answer()
        await send_card(bot, session, deal, settings, to=user.id)
    elif action == "dup":
        if not await deal_wizard.owned_groups(session, admins, user.id):
            await query.answer(deal_wizard.not_an_owner(), show_alert=True)
            return
        spec = await deal_service.duplicate(session, deal.id, user.id, admins=admins)
        await query.answer()
        await deal_wizard.start_copy(
            bot, user.id, state, session, admins, settings, clock, spec, deal.code
        )
    elif deal.status in deal_service.FINAL_STATES:
        await query.answer(domain_error_text(deal_service.DealFinished(deal.id)), show_alert=True)
    elif action in {"pause", "resume"}:
        before = deal.status
        deal = await deal_service.set_paused(
            session, deal.id, user.id, action == "pause", moment, admins=admins
        )
        if deal.status == before:
            await query.answer(
                _("Only an open deal can be paused.")
                if action == "pause"
                else _("Only a paused deal can be resumed."),
                show_alert=True,
            )
            return
        touch_posts(session, deal.id)
        await query.answer(_("Paused.") if action == "pause" else _("Resumed."))
        note = (
            _("{code} is paused: nobody can join or change orders until you resume it.")
            if action == "pause"
            else _("{code} is open again.")
        ).format(code=deal.code)
        await send_card(bot, session, deal, settings, note, to=user.id)
    elif action in {"desc", "later", "stock", "rem"}:
        await _ask_edit(query, state, session, deal, settings, action)
    elif action in {"remdef", "remoff"}:
        deal = await deal_service.set_reminders(
            session, deal.id, user.id, None if action == "remdef" else "", moment, admins=admins
        )
        if await state.get_state() in OwnerEdit.__all_states_names__:
            await state.clear()
        await query.answer(_("Saved."))
        await send_card(bot, session, deal, settings, reminders_note(deal), to=user.id)
    elif action in AUDIENCE_ACTIONS:
        deal = await deal_service.set_audience(
            session, deal.id, user.id, AUDIENCE_ACTIONS[action], moment, admins=admins
        )
        await query.answer(_("Saved."))
        await send_card(bot, session, deal, settings, audience_note(deal.code, deal.audience),
                        to=user.id)  # fmt: skip
    elif action in {"close", "cancel"}:
        await query.answer()
        text, keyboard = confirm_closing(deal, cancel=action == "cancel")
        await bot.send_message(user.id, text, reply_markup=keyboard)
    else:
        await query.answer(_("This button is out of date."), show_alert=True)


def confirm_closing(deal: Deal, *, cancel: bool) -> tuple[str, InlineKeyboardMarkup]:
    """Close now and Cancel deal both ask first: what happens, Yes (close_yes / cancel_yes,
    acted on by `close_button`) or No (back to the deal's card)."""
    if cancel:
        text = _(
            "Cancel {code} “{title}”? Every order is cancelled, the participants are told, "
            "and this cannot be undone."
        )
        yes = _button(_("Yes, cancel the deal"), "cancel_yes", deal.id)
    else:
        text = _(
            "Close {code} “{title}” now, before its closing time? It succeeds if its minimum is "
            "reached and fails otherwise, the participants are told, and this cannot be undone."
        )
        yes = _button(_("Yes, close it now"), "close_yes", deal.id)
    keyboard = [[yes, _button(_("No, keep it"), "open", deal.id)]]
    return (
        text.format(code=deal.code, title=quote(deal.title)),
        InlineKeyboardMarkup(inline_keyboard=keyboard),
    )


async def _ask_edit(
    query: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    deal: Deal,
    settings: Settings,
    action: str,
) -> None:
    groups = [g for _p, g in await deal_service.posts(session, deal.id)]
    tzs = _timezones(groups, settings)
    if action == "stock" and deal.stock_total is None:
        await query.answer(parse_error_text(ParseError("no_stock_limit")), show_alert=True)
        return
    if action == "desc":
        await state.set_state(OwnerEdit.description)
        text = _(
            "Send the new description of {code} (up to {max} characters). "
            "It replaces the current one."
        ).format(code=deal.code, max=MAX_DESCRIPTION)
    elif action == "later":
        await state.set_state(OwnerEdit.closes)
        text = _(
            "{code} closes at {time}. Send a LATER closing time in {timezone} time, for example "
            "<code>2026-12-01 20:00</code>, <code>tomorrow 20:00</code> or <code>+1d</code>. "
            "A deal can only be extended."
        ).format(code=deal.code, time=local_times(deal.closes_at, tzs), timezone=tzs[0])
    elif action == "rem":
        await state.set_state(OwnerEdit.reminders)
        text = _(
            "Reminders of {code} before it closes: {current}. Send new ones, for example "
            "<code>2h, 15m</code>, <code>90m</code> or <code>1h30m</code> (at most 3, each "
            "between 5 minutes and 7 days), or tap a button. Reminders already sent are not "
            "sent again."
        ).format(code=deal.code, current=reminders_text(deal.reminders))
    else:
        await state.set_state(OwnerEdit.stock)
        text = _(
            "{code} has {left} of {total} units left. How many units do you add? "
            "Send a number, for example <code>10</code>. Stock can only be increased."
        ).format(code=deal.code, left=deal.stock_left, total=deal.stock_total)
    await state.set_data({"deal_id": deal.id})
    await query.answer()
    rows = [[_button(_("✖ Cancel"), "open", deal.id)]]
    if action == "rem":
        rows[:0] = [
            [_button(_("Default (2 h and 15 min)"), "remdef", deal.id)],
            [_button(_("No reminders"), "remoff", deal.id)],
        ]
    await query.bot.send_message(
        query.from_user.id, text, reply_markup=InlineKeyboardMarkup(inline_keyboard=rows)
    )


async def edit_typed(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
    clock: Clock,
    raw_state: str | None = None,
) -> None:
    data = await state.get_data()
    deal_id = int(data.get("deal_id") or 0)
    text = (message.text or "").strip()
    cancel = InlineKeyboardMarkup(inline_keyboard=[[_button(_("✖ Cancel"), "open", deal_id)]])
    try:
        deal = await deal_service.get_owned(session, deal_id, user.id, admins=admins)
        if deal.status in deal_service.FINAL_STATES:
            raise deal_service.DealFinished(deal_id)
    except DomainError as err:
        await state.clear()
        await message.answer(domain_error_text(err))
        return
    moment = clock.now()
    try:
        if raw_state == OwnerEdit.description.state:
            text = check_note(text, MAX_DESCRIPTION)
            deal = await deal_service.edit(
                session, deal_id, user.id, moment, description=text, admins=admins
            )
            note = _("The description of {code} is updated.")
        elif raw_state == OwnerEdit.closes.state:
            groups = [g for _p, g in await deal_service.posts(session, deal_id)]
            tz = _timezones(groups, settings)[0]
            closes = parse_local_datetime(text, tz, moment).replace(second=0, microsecond=0)
            deal = await deal_service.edit(
                session, deal_id, user.id, moment, closes_at=closes, admins=admins
            )
            note = _("{code} now closes later.")
        elif raw_state == OwnerEdit.reminders.state:
            reminders = parse_reminders(text)
            deal = await deal_service.set_reminders(
                session, deal_id, user.id, reminders, moment, admins=admins
            )
            note = reminders_note(deal)
        else:
            try:
                add = parse_quantity(text)
            except ParseError as err:
                if err.reason == "quantity_positive":
                    raise ParseError("stock_only_up") from err
                raise
            deal = await deal_service.edit(
                session, deal_id, user.id, moment, add_stock=add, admins=admins
            )
            note = _("Stock of {code} increased.")
    except ParseError as err:
        if err.reason == "stock_only_up":
            reason = _(
                "Stock can only be increased: send how many units to add, "
                "for example <code>10</code>."
            )
        else:
            reason = parse_error_text(err)
        await message.answer(reason, reply_markup=cancel)
        return
    except DomainError as err:
        await state.clear()
        await message.answer(domain_error_text(err))
        return
    await state.clear()
    if raw_state != OwnerEdit.reminders.state:  # reminders are not shown on the posts
        touch_posts(session, deal.id)
    await send_card(message.bot, session, deal, settings, note.format(code=deal.code), to=user.id)


async def edit_not_text(message: Message) -> None:
    await message.answer(_("Please send the value as text, or tap Cancel."))


async def edit_cancel_command(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer(_("Cancelled."))


async def close_button(
    query: CallbackQuery,
    callback_data: OwnerDealCB,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    bot: Bot,
    db: Database,
    i18n: I18n,
    settings: Settings,
    clock: Clock,
) -> None:
    """Close now or cancel, once confirmed (`confirm_closing`). close_owned joins this
    update's transaction: the deal closes exactly once, and participants are told in the
    background after commit."""
    cancel = callback_data.action == "cancel_yes"  # else close_yes
    try:
        deal = await deal_service.get_owned(session, callback_data.deal_id, user.id, admins=admins)
    except DomainError as err:
        await query.answer(domain_error_text(err), show_alert=True)
        return
    if deal.status in deal_service.FINAL_STATES:
        await query.answer(domain_error_text(deal_service.DealFinished(deal.id)), show_alert=True)
        return
    try:
        closing = await deal_service.close_owned(
            session, deal.id, user.id, clock.now(), cancel=cancel, admins=admins
        )
    except DomainError as err:
        await query.answer(domain_error_text(err), show_alert=True)
        return
    if not closing:
        await query.answer(domain_error_text(deal_service.DealFinished(deal.id)), show_alert=True)
        return
    log.info("deal %s %s by its owner %s", deal.id, "cancelled" if cancel else "closed", user.id)
    await query.answer(_("Cancelled.") if cancel else _("Closed."))
    deal = await deal_service.get(session, deal.id)
    if deal.status == "cancelled":
        note = _("{code} is cancelled; the participants will be told.")
    elif deal.status == "succeeded":
        note = _("{code} is closed and succeeded; the participants will be told.")
    else:
        note = _("{code} is closed without reaching its minimum; the participants will be told.")
    await send_card(bot, session, deal, settings, note.format(code=deal.code), to=user.id)


def router() -> Router:
    r = Router(name="owner_deals")
    r.message.filter(F.chat.type == "private")
    r.callback_query.filter(F.message.chat.type == "private")
    r.message.register(deals_command, Command("deals"))
    r.message.register(edit_cancel_command, Command("cancel"), StateFilter(OwnerEdit))
    r.message.register(edit_typed, StateFilter(OwnerEdit), F.text, ~F.text.startswith("/"))
    r.message.register(edit_not_text, StateFilter(OwnerEdit), ~F.text)
    r.callback_query.register(
        close_button, OwnerDealCB.filter(F.action.in_({"close_yes", "cancel_yes"}))
    )
    r.callback_query.register(owner_button, OwnerDealCB.filter())
    return r

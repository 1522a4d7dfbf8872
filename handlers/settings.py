"""/settings in private chat: per group timezone (IANA), currency (ISO 4217) and language;
where members can pay in the chat (card or Telegram Stars offered), the group's own terms and
payment support texts too (/terms, /paysupport; plain text, "-" for the deployment's).

Every step re-checks on the server that the user administers the group: callback data only
names the group, it is never trusted.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.i18n import LocaleCache
from bot.moderation_cards import settings_button as moderation_button
from handlers.callbacks import GroupLangCB, SettingsCB
from handlers.common import group_gone, group_of_form, group_picker, quote
from models import Group, User
from services import groups as group_service
from services.admins import AdminDirectory
from services.errors import (
    GroupNotFound,
    InvalidCurrency,
    InvalidLanguage,
    InvalidTimezone,
    NotGroupAdmin,
)
from services.locales import LANGUAGE_NAMES, SUPPORTED_LANGUAGES
from services.parsing import ParseError
from views.deal_texts import parse_error_text
from views.format import echo

FIELDS = ("tz", "cur", "lang", "terms", "support")


class SettingsForm(StatesGroup):
    timezone = State()
    currency = State()
    terms = State()
    paysupport = State()


def paid(settings: Settings) -> bool:
    """Whether members can pay in the chat: then terms and payment support are settings."""
    return any(m != "cash" for m in settings.pay_methods)


def own_or_default(text: str) -> str:
    return _("own text") if text else _("default")


def refusal() -> str:
    return _("Only the owner and administrators of a group can change its settings.")


def group_card(group: Group, settings: Settings) -> tuple[str, InlineKeyboardMarkup]:
    lines = [
        _("<b>Settings of {title}</b>").format(title=quote(group.title)),
        _("Timezone: {value}").format(value=group.timezone),
        _("Currency: {value}").format(value=group.currency),
        _("Language: {value}").format(value=LANGUAGE_NAMES.get(group.language, group.language)),
    ]
    pay_rows: list[list[InlineKeyboardButton]] = []
    if paid(settings):
        lines.append(_("Terms: {value}").format(value=own_or_default(group.terms_text)))
        lines.append(
            _("Payment support: {value}").format(value=own_or_default(group.paysupport_text))
        )
        pay_rows.append(
            [
                InlineKeyboardButton(
                    text=_("Terms"),
                    callback_data=SettingsCB(action="terms", group_id=group.id).pack(),
                ),
                InlineKeyboardButton(
                    text=_("Payment support"),
                    callback_data=SettingsCB(action="support", group_id=group.id).pack(),
                ),
            ]
        )
    text = "\n".join(lines)
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("Timezone"),
                    callback_data=SettingsCB(action="tz", group_id=group.id).pack(),
                ),
                InlineKeyboardButton(
                    text=_("Currency"),
                    callback_data=SettingsCB(action="cur", group_id=group.id).pack(),
                ),
                InlineKeyboardButton(
                    text=_("Language"),
                    callback_data=SettingsCB(action="lang", group_id=group.id).pack(),
                ),
            ],
            *pay_rows,
            [moderation_button(group.id)],
            [
                InlineKeyboardButton(
                    text=_("« All groups"), callback_data=SettingsCB(action="list").pack()
                )
            ],
        ]
    )
    return text, keyboard


def cancel_keyboard(group_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("Cancel"),
                    callback_data=SettingsCB(action="cancel", group_id=group_id).pack(),
                )
            ]
        ]
    )


async def show_group_list(
    bot: Bot, user: User, session: AsyncSession, admins: AdminDirectory
) -> None:
    """The groups the user runs, as buttons (sent to the user's private chat)."""
    groups = await admins.groups_of(session, user.id)
    if not groups:
        await bot.send_message(
            user.id,
            _(
                "You don't run any group with me yet. Add me to your group and make me an admin, "
                "then send /settings again."
            ),
        )
        return
    keyboard = group_picker(
        (group for group, _status in groups),
        lambda group: SettingsCB(action="open", group_id=group.id).pack(),
    )
    await bot.send_message(user.id, _("Choose a group:"), reply_markup=keyboard)


async def settings_command(
    message: Message, state: FSMContext, session: AsyncSession, user: User, admins: AdminDirectory
) -> None:
    await state.clear()
    await show_group_list(message.bot, user, session, admins)


async def settings_button(
    query: CallbackQuery,
    callback_data: SettingsCB,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
) -> None:
    if callback_data.action == "list":
        await state.clear()
        await query.answer()
        await show_group_list(query.bot, user, session, admins)
        return
    try:
        group = await admins.require_admin(session, callback_data.group_id, user.id)
    except NotGroupAdmin:
        await query.answer(refusal(), show_alert=True)
        return
    except GroupNotFound:
        await query.answer(group_gone(), show_alert=True)
        return
    action = callback_data.action
    if action in {"open", "cancel"}:
        await state.clear()
        text, keyboard = group_card(group, settings)
        await query.answer(_("Cancelled.") if action == "cancel" else None)
        await query.bot.send_message(query.from_user.id, text, reply_markup=keyboard)
    elif action == "tz":
        await state.set_state(SettingsForm.timezone)
        await state.set_data({"group_id": group.id})
        await query.answer()
        await query.bot.send_message(
            query.from_user.id,
            _(
                "Send the timezone of {title} as an IANA name, for example "
                "<code>Asia/Shanghai</code>, <code>Europe/Berlin</code> "
                "or <code>America/New_York</code>."
            ).format(title=quote(group.title)),
            reply_markup=cancel_keyboard(group.id),
        )
    elif action == "cur":
        await state.set_state(SettingsForm.currency)
        await state.set_data({"group_id": group.id})
        await query.answer()
        await query.bot.send_message(
            query.from_user.id,
            _(
                "Send the currency of {title} as an ISO 4217 code, for example "
                "<code>CNY</code>, <code>USD</code>, <code>EUR</code> or <code>HKD</code>."
            ).format(title=quote(group.title)),
            reply_markup=cancel_keyboard(group.id),
        )
    elif action in {"terms", "support"} and paid(settings):
        terms = action == "terms"
        await state.set_state(SettingsForm.terms if terms else SettingsForm.paysupport)
        await state.set_data({"group_id": group.id})
        await query.answer()
        if terms:
            prompt = _(
                "Send the terms of sale of {title}, which /terms shows to its members (plain "
                "text, up to 1000 characters), or <code>-</code> for the default."
            )
        else:
            prompt = _(
                "Send how members of {title} get help with a payment, which /paysupport "
                "shows (plain text, up to 1000 characters), or <code>-</code> for the default."
            )
        await query.bot.send_message(
            query.from_user.id,
            prompt.format(title=quote(group.title)),
            reply_markup=cancel_keyboard(group.id),
        )
    elif action == "lang":
        await query.answer()
        rows = [
            [
                InlineKeyboardButton(
                    text=LANGUAGE_NAMES[code],
                    callback_data=GroupLangCB(group_id=group.id, code=code).pack(),
                )
                for code in SUPPORTED_LANGUAGES
            ]
        ]
        await query.bot.send_message(
            query.from_user.id,
            _("Choose the language I use in {title}:").format(title=quote(group.title)),
            reply_markup=InlineKeyboardMarkup(inline_keyboard=rows),
        )
    else:
        await query.answer(_("This button is out of date. Send /settings again."), show_alert=True)


async def group_language_chosen(
    query: CallbackQuery,
    callback_data: GroupLangCB,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    locales: LocaleCache,
    settings: Settings,
) -> None:
    try:
        group = await admins.require_admin(session, callback_data.group_id, user.id)
        await group_service.set_language(session, group, callback_data.code)
    except NotGroupAdmin:
        await query.answer(refusal(), show_alert=True)
        return
    except GroupNotFound:
        await query.answer(group_gone(), show_alert=True)
        return
    except InvalidLanguage:
        await query.answer(_("This button is out of date. Send /settings again."), show_alert=True)
        return
    locales.set_group(group.chat_id, group.language)
    await query.answer(_("Saved."))
    text, keyboard = group_card(group, settings)
    await query.bot.send_message(query.from_user.id, text, reply_markup=keyboard)


async def timezone_typed(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
) -> None:
    group = await group_of_form(message, state, session, user, admins, refusal)
    if group is None:
        return
    try:
        await group_service.set_timezone(session, group, message.text or "")
    except InvalidTimezone as exc:
        await message.answer(
            _(
                "“{value}” is not a timezone I know. Send an IANA name such as "
                "<code>Asia/Shanghai</code>, <code>Europe/Berlin</code> "
                "or <code>America/New_York</code>."
            ).format(value=echo(exc.value)),
            reply_markup=cancel_keyboard(group.id),
        )
        return
    await state.clear()
    text, keyboard = group_card(group, settings)
    await message.answer(_("Saved.") + "\n\n" + text, reply_markup=keyboard)


async def currency_typed(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
) -> None:
    group = await group_of_form(message, state, session, user, admins, refusal)
    if group is None:
        return
    try:
        await group_service.set_currency(session, group, message.text or "")
    except InvalidCurrency as exc:
        await message.answer(
            _(
                "“{value}” is not an ISO 4217 currency code. Send three letters such as "
                "<code>CNY</code>, <code>USD</code>, <code>EUR</code> or <code>HKD</code>."
            ).format(value=echo(exc.value)),
            reply_markup=cancel_keyboard(group.id),
        )
        return
    await state.clear()
    text, keyboard = group_card(group, settings)
    await message.answer(_("Saved.") + "\n\n" + text, reply_markup=keyboard)


async def policy_typed(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
) -> None:
    """The group's terms or payment support text ("-": back to the deployment's)."""
    group = await group_of_form(message, state, session, user, admins, refusal)
    if group is None:
        return
    terms = await state.get_state() == SettingsForm.terms.state
    try:
        await group_service.set_policy(
            session, group, "terms" if terms else "paysupport", message.text or ""
        )
    except ParseError as err:
        await message.answer(parse_error_text(err), reply_markup=cancel_keyboard(group.id))
        return
    await state.clear()
    text, keyboard = group_card(group, settings)
    await message.answer(_("Saved.") + "\n\n" + text, reply_markup=keyboard)


async def not_text(message: Message) -> None:
    await message.answer(_("Please send the value as text, or tap Cancel."))


def router() -> Router:
    r = Router(name="settings")
    r.message.filter(F.chat.type == "private")
    r.message.register(settings_command, Command("settings"))
    r.message.register(
        timezone_typed, StateFilter(SettingsForm.timezone), F.text, ~F.text.startswith("/")
    )
    r.message.register(
        currency_typed, StateFilter(SettingsForm.currency), F.text, ~F.text.startswith("/")
    )
    r.message.register(
        policy_typed,
        StateFilter(SettingsForm.terms, SettingsForm.paysupport),
        F.text,
        ~F.text.startswith("/"),
    )
    forms = (SettingsForm.timezone, SettingsForm.currency, SettingsForm.terms)
    r.message.register(not_text, StateFilter(*forms, SettingsForm.paysupport), ~F.text)
    r.callback_query.register(settings_button, SettingsCB.filter())
    r.callback_query.register(group_language_chosen, GroupLangCB.filter())
    return r

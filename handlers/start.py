"""Private chat basics: /start, /lang, /help, and the hint for unknown commands."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.i18n import LocaleCache
from handlers.callbacks import LangCB
from handlers.common import help_text, language_keyboard, quote
from handlers.settings import show_group_list
from models import User
from services import groups as group_service
from services import people
from services.admins import AdminDirectory
from services.errors import InvalidLanguage
from services.locales import LANGUAGE_NAMES


async def start(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
) -> None:
    await people.mark_started(session, user.id)
    if command.args == "settings":
        await show_group_list(message.bot, user, session, admins)
        return
    groups = await admins.groups_of(session, user.id)
    lines = [
        _("Hello, {name}! I am Tuan (团), your group-buy assistant.").format(
            name=quote(user.first_name)
        )
    ]
    if groups:
        lines += ["", _("Groups you run with me:")]
        for group, status in groups:
            role = _("owner") if status == "creator" else _("admin")
            lines.append(f"• {quote(group.title)} ({role})")
        lines += ["", _("Change their timezone, currency and language with /settings.")]
    else:
        lines += [
            "",
            _(
                "To run group-buys, add me to your group and make me an admin. "
                "Members can join deals right in the chat."
            ),
        ]
    lines += ["", _("Choose your language:")]
    await message.answer("\n".join(lines), reply_markup=language_keyboard())


async def lang_command(message: Message) -> None:
    await message.answer(_("Choose your language:"), reply_markup=language_keyboard())


async def lang_chosen(
    query: CallbackQuery,
    callback_data: LangCB,
    session: AsyncSession,
    user: User,
    i18n: I18n,
    locales: LocaleCache,
) -> None:
    try:
        await people.set_language(session, user.id, callback_data.code)
    except InvalidLanguage:
        await query.answer(_("This button is out of date. Send /lang again."), show_alert=True)
        return
    locales.set_user(user.id, callback_data.code)
    with i18n.use_locale(callback_data.code):
        text = _("Language set to {language}.").format(language=LANGUAGE_NAMES[callback_data.code])
        await query.answer(text)
        await query.bot.send_message(
            query.from_user.id, text + "\n" + _("Send /help to see what I can do.")
        )


async def help_private(
    message: Message, session: AsyncSession, user: User, settings: Settings
) -> None:
    owned = await group_service.groups_administered(session, user.id)
    await message.answer(
        help_text(private=True, is_owner=bool(owned), is_admin=user.id in settings.admin_ids)
    )


async def unknown_command(message: Message) -> None:
    await message.answer(_("I don't know that command. Send /help to see what I can do."))


async def plain_text(message: Message) -> None:
    await message.answer(_("Send /help to see what I can do."))


async def stale_button(query: CallbackQuery) -> None:
    """A button no handler took (an old message, a removed feature, data that does not
    parse): every router relies on this one answer, so the client never keeps waiting."""
    await query.answer(_("This button is out of date."), show_alert=True)


def router() -> Router:
    r = Router(name="start")
    r.message.filter(F.chat.type == "private")
    r.message.register(start, CommandStart())
    r.message.register(lang_command, Command("lang"))
    r.message.register(help_private, Command("help"))
    r.callback_query.register(lang_chosen, LangCB.filter())
    return r


def fallback_router() -> Router:
    """Last in the chain: what no other handler took (messages in private chat, and any
    button)."""
    r = Router(name="fallback")
    r.message.filter(F.chat.type == "private")
    r.message.register(unknown_command, F.text.startswith("/"))
    r.message.register(plain_text)
    r.callback_query.register(stale_button)
    return r

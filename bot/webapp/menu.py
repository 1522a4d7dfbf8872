"""The private chat's menu button opens the Mini App (set at start when WEBAPP_URL is set;
@BotFather's Menu Button setting does the same by hand)."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.types import MenuButtonWebApp, WebAppInfo
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

log = logging.getLogger(__name__)


def app_url(webapp_url: str) -> str:
    return f"{webapp_url}/app/"


async def set_menu_button(bot: Bot, webapp_url: str, i18n: I18n, language: str) -> bool:
    """The default menu button of private chats: 🛍 Shop, opening the app (its page lists the
    person's groups). A failure is logged: the bot runs without it."""
    with i18n.context(), i18n.use_locale(language):
        text = "🛍 " + _("Shop")
    button = MenuButtonWebApp(text=text, web_app=WebAppInfo(url=app_url(webapp_url)))
    try:
        return bool(await bot.set_chat_menu_button(menu_button=button))
    except Exception as exc:
        log.warning("the menu button could not be set: %s", exc)
        return False

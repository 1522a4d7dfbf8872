"""Construction of the Bot object and translation of aiogram types into service types."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramNetworkError
from aiogram.types import ChatMemberAdministrator, ChatMemberOwner
from aiogram.types import User as TgUser

from bot.config import TELEGRAM_API_DEFAULT, Settings
from services.admins import AdminFetcher
from services.groups import AdminInfo
from services.inline_cards import MemberFetcher
from services.people import Person

log = logging.getLogger(__name__)


def make_bot(settings: Settings, session: BaseSession | None = None) -> Bot:
    """The Bot, talking to Telegram or to a self-hosted Bot API server (TELEGRAM_API_URL)."""
    if session is None:
        session = AiohttpSession()
        if settings.telegram_api_url != TELEGRAM_API_DEFAULT:
            session.api = TelegramAPIServer.from_base(settings.telegram_api_url)
    return Bot(
        token=settings.token,
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def person(user: TgUser) -> Person:
    return Person(
        id=user.id,
        first_name=user.first_name or "",
        last_name=user.last_name,
        username=user.username,
        is_bot=user.is_bot,
        language_code=user.language_code,
    )


def admin_info(member) -> AdminInfo | None:
    if isinstance(member, ChatMemberOwner):
        return AdminInfo(member.user.id, "creator", True, member.user.is_bot)
    if isinstance(member, ChatMemberAdministrator):
        return AdminInfo(
            member.user.id, "administrator", bool(member.can_invite_users), member.user.is_bot
        )
    return None


PRESENT_STATUSES = frozenset({"creator", "administrator", "member", "restricted"})


def member_fetcher(bot: Bot) -> MemberFetcher:
    """getChatMember: is the user in the chat now (a restricted member only while still
    in it)? None when Telegram could not be asked."""

    async def fetch(chat_id: int, user_id: int) -> bool | None:
        try:
            member = await bot.get_chat_member(chat_id, user_id)
        except TelegramBadRequest:  # "user not found", "chat not found"
            return False
        except (TelegramAPIError, TelegramNetworkError) as exc:
            log.warning("getChatMember(%s) failed: %s", chat_id, type(exc).__name__)
            return None
        if member.status == "restricted":
            return bool(getattr(member, "is_member", False))
        return member.status in PRESENT_STATUSES

    return fetch


def admin_fetcher(bot: Bot) -> AdminFetcher:
    async def fetch(chat_id: int) -> Sequence[AdminInfo] | None:
        try:
            members = await bot.get_chat_administrators(chat_id)
        except (TelegramAPIError, TelegramNetworkError) as exc:
            log.warning("getChatAdministrators(%s) failed: %s", chat_id, type(exc).__name__)
            return None
        return [a for a in (admin_info(m) for m in members) if a is not None]

    return fetch

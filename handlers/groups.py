"""The bot's life in groups: being added or removed, administrators and members changing,
supergroup upgrades, and /help in a group."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.types import ChatMemberUpdated, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.i18n import LocaleCache
from bot.moderation import ModerationGate
from bot.telegram import admin_info
from handlers import invites
from handlers import moderation as moderation_hooks
from handlers.common import help_text, quote
from models import Group, User
from services import events, notices, people
from services import groups as group_service
from services.admins import AdminDirectory
from services.groups import AdminInfo, Defaults
from services.locales import from_telegram
from services.timezones import Clock

log = logging.getLogger(__name__)
GROUP_TYPES = {"group", "supergroup"}
PRESENT = {"member", "administrator", "creator", "restricted"}


def _defaults(settings: Settings) -> Defaults:
    return Defaults(settings.default_timezone, settings.default_currency, settings.default_language)


async def bot_membership_changed(
    event: ChatMemberUpdated,
    bot: Bot,
    session: AsyncSession,
    user: User | None,
    settings: Settings,
    admins: AdminDirectory,
    i18n: I18n,
    locales: LocaleCache,
    clock: Clock,
) -> None:
    chat = event.chat
    old, new = event.old_chat_member.status, event.new_chat_member.status
    if new in PRESENT:
        group, created = await group_service.register(
            session,
            chat_id=chat.id,
            title=chat.title or "",
            chat_type=chat.type,
            added_by=event.from_user.id if event.from_user else None,
            defaults=_defaults(settings),
            language=from_telegram(event.from_user.language_code) if event.from_user else None,
            now=clock.now(),
        )
        locales.set_group(chat.id, group.language)
        await admins.refresh(session, group)
        await moderation_hooks.record_rights(session, group, event.new_chat_member)
        if old in PRESENT:
            log.info("bot status in chat %s changed %s -> %s", chat.id, old, new)
            return
        log.info("bot added to chat %s (group %s, new=%s)", chat.id, group.id, created)
        with i18n.use_locale(group.language):
            greeting = _(
                "Hello, {title}! I am Tuan (团). I run group-buys and sign-up lists here.\n"
                "Owners and admins: open a private chat with me to set me up (/settings)."
            ).format(title=quote(chat.title))
            if new != "administrator":
                greeting += "\n" + _(
                    "Please make me an administrator so I can see new members and count activity."
                )
            try:
                await bot.send_message(chat.id, greeting)
            except TelegramAPIError as exc:
                log.warning("could not greet chat %s: %s", chat.id, exc)
        if user is not None and not user.is_bot:
            # Promised, not sent: someone who has not started the bot yet gets it at /start.
            await notices.added_note(session, user.id, group.id, event.date, clock.now())
    else:
        group = await group_service.deactivate(session, chat.id)
        log.info("bot removed from chat %s (%s); group kept inactive", chat.id, group and group.id)


async def bot_blocked_in_private(
    event: ChatMemberUpdated, session: AsyncSession, user: User | None
) -> None:
    """The user blocked or unblocked the bot in private chat (unblocking releases what
    waited for them, like /start)."""
    if user is None:
        return
    started = event.new_chat_member.status not in {"kicked", "left"}
    await people.set_started(session, user.id, started)


async def member_changed(
    event: ChatMemberUpdated,
    session: AsyncSession,
    user: User | None,
    admins: AdminDirectory,
    moderation: ModerationGate,
    clock: Clock,
) -> None:
    """A member joined, left, or had their rights changed (needs the bot to be an admin)."""
    group = await group_service.get_by_chat(session, event.chat.id)
    if group is None:
        return
    member = event.new_chat_member
    old_status = event.old_chat_member.status
    info = admin_info(member)
    if info is not None or old_status in {"creator", "administrator"}:
        await group_service.set_admin(
            session,
            group,
            info or AdminInfo(member.user.id, member.status, False, member.user.is_bot),
        )
        events.record(session, events.RulesChanged(event.chat.id))  # admins are exempt
    await invites.credit_from(event, session, group)  # before the membership is recorded
    if not member.user.is_bot:
        await group_service.record_membership(session, group, member.user.id, member.status)
        _count_join_or_leave(session, event)
        if member.status in PRESENT and event.old_chat_member.status not in PRESENT:
            await moderation_hooks.member_joined(
                session, group, member.user.id, admins, moderation, clock.now()
            )


def _count_join_or_leave(session: AsyncSession, event: ChatMemberUpdated) -> None:
    """Absent → present is a join, present → absent a leave (counted once committed)."""
    was, now = event.old_chat_member.status in PRESENT, event.new_chat_member.status in PRESENT
    if was == now:
        return
    kind = events.MemberJoined if now else events.MemberLeft
    events.record(session, kind(event.chat.id, event.new_chat_member.user.id, event.date))


def _follow_language(locales: LocaleCache, old: int, new: int, group: Group | None) -> None:
    """The new chat speaks the group's language at once: its cache entry may hold nothing
    (looked up before the migration) or a duplicate row's language (merged away)."""
    locales.forget_group(old)
    if group is not None:
        locales.set_group(new, group.language)
    else:
        locales.forget_group(new)


async def migrated_to(message: Message, session: AsyncSession, locales: LocaleCache) -> None:
    old, new = message.chat.id, message.migrate_to_chat_id
    group = await group_service.migrate(session, old, new)
    _follow_language(locales, old, new, group)
    log.info("chat %s upgraded to supergroup %s (group %s)", old, new, group and group.id)


async def migrated_from(message: Message, session: AsyncSession, locales: LocaleCache) -> None:
    old, new = message.migrate_from_chat_id, message.chat.id
    group = await group_service.migrate(session, old, new)
    _follow_language(locales, old, new, group)
    log.info("supergroup %s created from chat %s (group %s)", new, old, group and group.id)


async def help_group(
    message: Message, session: AsyncSession, user: User, admins: AdminDirectory
) -> None:
    group = await group_service.get_by_chat(session, message.chat.id)
    is_owner = group is not None and user.id in await admins.admins_of(session, group)
    await message.answer(help_text(private=False, is_owner=is_owner, is_admin=False))


async def settings_in_group(
    message: Message, bot: Bot, session: AsyncSession, user: User, admins: AdminDirectory
) -> None:
    group = await group_service.get_by_chat(session, message.chat.id)
    if group is None or user.id not in await admins.admins_of(session, group):
        await message.answer(
            _("Only the owner and administrators of this group can change its settings.")
        )
        return
    me = await bot.me()
    await message.answer(
        _("Settings are changed in private chat with me: {link}").format(
            link=f"https://t.me/{me.username}?start=settings"
        )
    )


def router() -> Router:
    r = Router(name="groups")
    in_group = F.chat.type.in_(GROUP_TYPES)
    r.my_chat_member.register(bot_membership_changed, in_group)
    r.my_chat_member.register(bot_blocked_in_private, F.chat.type == "private")
    r.chat_member.register(member_changed, in_group)
    r.message.register(migrated_to, F.migrate_to_chat_id)
    r.message.register(migrated_from, F.migrate_from_chat_id)
    r.message.register(help_group, Command("help"), in_group)
    r.message.register(settings_in_group, Command("settings"), in_group)
    return r

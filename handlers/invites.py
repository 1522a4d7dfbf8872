"""Personal invite links: `/invite` (private, or a button from `/invite` in a group) gives a
member their own link to a group, `/invites` shows owners who invited whom, and
`credit_from` (called by handlers.groups.member_changed) credits the inviter of a join.

When Telegram refuses to create a link because the bot is not an administrator, or lacks the
"Invite users via link" right, the member is told and so are the group's administrators (in
private, through the sender, at most once per group and reason a day), with what to change.
"""

from __future__ import annotations

import logging
from datetime import UTC

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    CallbackQuery,
    ChatMemberAdministrator,
    ChatMemberOwner,
    ChatMemberUpdated,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.posts import PostRefresher
from handlers.callbacks import InviteCB, InvitesCB, valid_id
from handlers.common import group_picker, quote
from models import Database, Group, User
from services import groups as group_service
from services import notices as notice_service
from services import people
from services import referrals as referral_service
from services.admins import AdminDirectory
from services.errors import GroupNotFound, NotGroupAdmin
from services.parsing import parse_id
from services.timezones import utcnow
from views.invites import link_text, member_refusal, not_in_group, report

log = logging.getLogger(__name__)
GROUP_TYPES = {"group", "supergroup"}
TOP = 10
RECENT = 30
START_PREFIX = "inv_"


# ---------------------------------------------------------------- crediting joins


def _present(member) -> bool:
    if member.status in {"member", "administrator", "creator"}:
        return True
    return member.status == "restricted" and bool(getattr(member, "is_member", False))


async def credit_from(event: ChatMemberUpdated, session: AsyncSession, group: Group) -> None:
    """A chat_member update: if it is a join through one of our invite links, credit the
    inviter (services.referrals.credit_join decides). Call before recording the membership."""
    if _present(event.old_chat_member) or not _present(event.new_chat_member):
        return
    member = event.new_chat_member.user
    link = event.invite_link.invite_link if event.invite_link is not None else None
    at = event.date if event.date.tzinfo is not None else event.date.replace(tzinfo=UTC)
    credit = await referral_service.credit_join(
        session, group, member_id=member.id, member_is_bot=member.is_bot, link=link, at=at
    )
    if credit is not None:
        log.info(
            "group %s: member %s joined through the link of %s",
            group.id, member.id, credit.inviter_id,
        )  # fmt: skip


# ---------------------------------------------------------------- keyboards


def pick_keyboard(groups: list[Group], factory: type[CallbackData]) -> InlineKeyboardMarkup:
    return group_picker(groups, lambda group: factory(group_id=group.id).pack())


# ---------------------------------------------------------------- issuing links


async def _missing_right(bot: Bot, chat_id: int) -> str:
    """Why Telegram refused: the bot is not an administrator, or lacks the invite right."""
    try:
        me = await bot.get_chat_member(chat_id, (await bot.me()).id)
    except TelegramAPIError:
        return "not_admin"
    if isinstance(me, (ChatMemberAdministrator, ChatMemberOwner)):
        return "no_right"
    return "not_admin"


async def _tell_admins(
    session: AsyncSession,
    i18n: I18n,
    admins: AdminDirectory,
    posts: PostRefresher,
    group: Group,
    reason: str,
    requester: int,
    bot_name: str,
) -> bool:
    """Tell the group's administrators (who started the bot) what to change, once a day
    each (the outbox key): True when they are told now or were told earlier today."""
    ids = (await admins.admins_of(session, group)) - {requester}
    if not ids:
        return False
    told = await notice_service.rights(session, group.id, ids, reason, utcnow())
    log.info("group %s: told %d admins the bot cannot create invite links (%s)",
             group.id, told, reason)  # fmt: skip
    return told > 0


async def issue(
    bot: Bot,
    session: AsyncSession,
    i18n: I18n,
    admins: AdminDirectory,
    posts: PostRefresher,
    group: Group,
    user: User,
) -> str:
    """The member's link to the group (reused, else created), or why there is none."""
    existing = await referral_service.active_invite(session, group.id, user.id)
    if existing is not None:
        return link_text(group, existing.link)
    name = referral_service.invite_name(user.full_name)
    try:
        created = await bot.create_chat_invite_link(group.chat_id, name=name or None)
    except (TelegramForbiddenError, TelegramBadRequest) as exc:
        reason = (
            "not_admin"
            if isinstance(exc, TelegramForbiddenError)
            else await _missing_right(bot, group.chat_id)
        )
        log.info("group %s: createChatInviteLink refused (%s): %s", group.id, reason, exc.message)
    except TelegramAPIError as exc:
        log.warning("group %s: createChatInviteLink failed: %s", group.id, exc)
        return _("Telegram did not answer. Please try again in a minute.")
    else:
        row = await referral_service.save_invite(
            session, group.id, user.id, created.invite_link, name, utcnow()
        )
        return link_text(group, row.link)
    me = await bot.me()
    bot_name = f"@{me.username}" if me.username else quote(me.first_name)
    told = await _tell_admins(session, i18n, admins, posts, group, reason, user.id, bot_name)
    return member_refusal(reason, quote(group.title), bot_name, told)


async def _member_group(bot: Bot, session: AsyncSession, group_id: int, user_id: int):
    """The active group, if the user is in it (as we know it, else as Telegram says)."""
    if not valid_id(group_id):  # from a deep link (a button's id is bounded already)
        return None
    group = await group_service.get(session, group_id)
    if group is None or not group.is_active:
        return None
    if await referral_service.is_member(session, group.id, user_id):
        return group
    try:
        member = await bot.get_chat_member(group.chat_id, user_id)
    except TelegramAPIError:
        return None
    if not _present(member):
        return None
    await group_service.record_membership(session, group, user_id, member.status)
    return group


# ---------------------------------------------------------------- who invited whom


async def _report_for(session: AsyncSession, group: Group) -> str:
    total = await referral_service.referral_count(session, group.id)
    top = await referral_service.top_inviters(session, group.id, TOP)
    recent = await referral_service.recent_referrals(session, group.id, RECENT)
    return report(group, total, top, recent)


# ---------------------------------------------------------------- router


def router() -> Router:
    r = Router(name="invites")

    async def invite_command(
        message: Message,
        bot: Bot,
        session: AsyncSession,
        user: User,
        i18n: I18n,
        admins: AdminDirectory,
        posts: PostRefresher,
    ) -> None:
        groups = await referral_service.member_groups(session, user.id)
        if not groups:
            await message.answer(
                _(
                    "I have not seen you in any of my groups yet. Send /invite in your group "
                    "and I will give you a button for your link."
                )
            )
        elif len(groups) == 1:
            text = await issue(bot, session, i18n, admins, posts, groups[0], user)
            await message.answer(text)
        else:
            await message.answer(
                _("Which group do you want an invite link for?"),
                reply_markup=pick_keyboard(groups, InviteCB),
            )

    async def invite_chosen(
        query: CallbackQuery,
        callback_data: InviteCB,
        bot: Bot,
        session: AsyncSession,
        user: User,
        i18n: I18n,
        admins: AdminDirectory,
        posts: PostRefresher,
    ) -> None:
        group = await _member_group(bot, session, callback_data.group_id, user.id)
        if group is None:
            await query.answer(not_in_group(), show_alert=True)
            return
        await query.answer()
        text = await issue(bot, session, i18n, admins, posts, group, user)
        await bot.send_message(user.id, text)

    async def invite_deep_link(
        message: Message,
        command: CommandObject,
        bot: Bot,
        session: AsyncSession,
        user: User,
        i18n: I18n,
        admins: AdminDirectory,
        posts: PostRefresher,
    ) -> None:
        await people.mark_started(session, user.id)
        raw = (command.args or "").removeprefix(START_PREFIX)
        group_id = parse_id(raw) or 0
        group = await _member_group(bot, session, group_id, user.id)
        if group is None:
            await message.answer(not_in_group())
            return
        await message.answer(await issue(bot, session, i18n, admins, posts, group, user))

    r.message.register(invite_command, Command("invite"), F.chat.type == "private")
    r.message.register(
        invite_deep_link,
        CommandStart(deep_link=True, magic=F.args.startswith(START_PREFIX)),
        F.chat.type == "private",
    )
    r.message.register(invite_in_group, Command("invite"), F.chat.type.in_(GROUP_TYPES))
    r.message.register(invites_command, Command("invites"), F.chat.type == "private")
    r.callback_query.register(invite_chosen, InviteCB.filter())
    r.callback_query.register(invites_chosen, InvitesCB.filter())
    return r


async def invite_in_group(message: Message, bot: Bot, db: Database) -> None:
    """In a group: a button that opens the private chat with this group's link."""
    async with db.read() as session:
        group = await group_service.get_by_chat(session, message.chat.id)
    if group is None:
        return
    me = await bot.me()
    url = f"https://t.me/{me.username}?start={START_PREFIX}{group.id}"
    await message.reply(
        _("Get your personal invite link to this group in private chat:"),
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text=_("Get my invite link"), url=url)]]
        ),
    )


async def invites_command(
    message: Message, session: AsyncSession, user: User, admins: AdminDirectory
) -> None:
    groups = [g for g, _status in await admins.groups_of(session, user.id)]
    if not groups:
        await message.answer(
            _("Only owners and administrators of a group can see who invited whom.")
        )
    elif len(groups) == 1:
        await message.answer(await _report_for(session, groups[0]))
    else:
        await message.answer(
            _("Which group's invites do you want to see?"),
            reply_markup=pick_keyboard(groups, InvitesCB),
        )


async def invites_chosen(
    query: CallbackQuery,
    callback_data: InvitesCB,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
) -> None:
    try:
        group = await admins.require_admin(session, callback_data.group_id, user.id)
    except (NotGroupAdmin, GroupNotFound):
        await query.answer(
            _("Only owners and administrators of a group can see who invited whom."),
            show_alert=True,
        )
        return
    await query.answer()
    await query.bot.send_message(user.id, await _report_for(session, group))


__all__ = ["credit_from", "issue", "router"]

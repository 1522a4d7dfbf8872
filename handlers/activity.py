"""Leaderboards and members: /top in a group, /hideme and /showme anywhere, and the owner's
/members in private chat (core and dormant members, and the core threshold).

Counting itself happens elsewhere (bot/middlewares/activity.py and services/activity.py);
these handlers only read the day tables. Callback data only names a group and a number:
every step re-checks on the server that the user administers the group.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.methods import AnswerCallbackQuery, SendMessage
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.callbacks import MembersCB
from handlers.common import group_gone, group_picker, quote, show
from models import Database, Group, User
from services import activity as activity_service
from services import groups as group_service
from services.activity import (
    CORE_MAX,
    CORE_MIN,
    CORE_WINDOW_DAYS,
    LEADERBOARD_WINDOWS,
    BadCoreDays,
)
from services.admins import AdminDirectory
from services.errors import GroupNotFound, NotGroupAdmin
from services.parsing import ParseError, parse_int
from views.activity import (
    core_usage,
    members_usage,
    no_groups,
    not_admin,
    report_text,
    top_text,
    top_usage,
)

GROUP_TYPES = {"group", "supergroup"}


# ---------------------------------------------------------------- keyboards


def report_keyboard(group: Group, *, many: bool) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                text=_("Core threshold: {n} days").format(n=group.core_min_days),
                callback_data=MembersCB(action="core", group_id=group.id).pack(),
            )
        ]
    ]
    if many:
        rows.append(
            [
                InlineKeyboardButton(
                    text=_("« All groups"), callback_data=MembersCB(action="list").pack()
                )
            ]
        )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def threshold_keyboard(group: Group) -> InlineKeyboardMarkup:
    buttons = [
        InlineKeyboardButton(
            text=f"✓ {n}" if n == group.core_min_days else str(n),
            callback_data=MembersCB(action="core", group_id=group.id, n=n).pack(),
        )
        for n in range(CORE_MIN, CORE_MAX + 1)
    ]
    back = InlineKeyboardButton(
        text=_("« Back"), callback_data=MembersCB(action="open", group_id=group.id).pack()
    )
    return InlineKeyboardMarkup(inline_keyboard=[buttons[:7], buttons[7:], [back]])


def picker(groups: list[tuple[Group, str]], n: int = 0) -> InlineKeyboardMarkup:
    action = "core" if n else "open"
    return group_picker(
        (group for group, _status in groups),
        lambda group: MembersCB(action=action, group_id=group.id, n=n).pack(),
    )


# ---------------------------------------------------------------- /top and /hideme


def parse_window(args: str | None) -> int | None:
    raw = (args or "").strip().lower().removesuffix("d")
    if not raw:
        return LEADERBOARD_WINDOWS[0]
    try:
        days = parse_int(raw, maximum=max(LEADERBOARD_WINDOWS))
    except ParseError:
        return None
    return days if days in LEADERBOARD_WINDOWS else None


async def top_command(message: Message, command: CommandObject, db: Database) -> SendMessage:
    """Read only: no write transaction for a leaderboard."""
    days = parse_window(command.args)
    if days is None:
        return message.reply(top_usage())
    async with db.read() as session:
        group = await group_service.get_by_chat(session, message.chat.id)
        if group is None:
            return message.reply(_("No activity has been counted in this group yet."))
        board = await activity_service.leaderboard(session, group, days)
    return message.reply(top_text(board))


async def hide_command(message: Message, session: AsyncSession, user: User) -> SendMessage:
    await activity_service.set_hidden(session, user, True)
    return message.reply(
        _("Done: your name will not appear on leaderboards (/top). Send /showme to undo.")
    )


async def show_command(message: Message, session: AsyncSession, user: User) -> SendMessage:
    await activity_service.set_hidden(session, user, False)
    return message.reply(
        _("Done: your name can appear on leaderboards (/top) again. Send /hideme to hide it.")
    )


# ---------------------------------------------------------------- /members (owners, private)


async def _report(
    session: AsyncSession, group: Group, admins: AdminDirectory, user: User
) -> tuple[str, InlineKeyboardMarkup]:
    report = await activity_service.member_report(session, group)
    many = len(await admins.groups_of(session, user.id)) > 1
    return report_text(report), report_keyboard(group, many=many)


async def members_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
) -> SendMessage:
    parts = (command.args or "").split()
    n = 0
    if parts:
        if parts[0].lower() != "core" or len(parts) != 2:
            return message.answer(members_usage())
        try:
            n = activity_service.parse_core_days(parts[1])
        except BadCoreDays:
            return message.answer(core_usage())
    groups = await admins.groups_of(session, user.id)
    if not groups:
        return message.answer(no_groups())
    if len(groups) > 1:
        prompt = (
            _("Set the core threshold to {n} days for which group?").format(n=n)
            if n
            else _("Choose a group:")
        )
        return message.answer(prompt, reply_markup=picker(groups, n))
    group = groups[0][0]
    notice = ""
    if n:
        await activity_service.set_core_min_days(session, group, n)
        notice = _("Core threshold set to {n} days.").format(n=n) + "\n\n"
    text, keyboard = await _report(session, group, admins, user)
    return message.answer(notice + text, reply_markup=keyboard)


async def members_button(
    query: CallbackQuery,
    callback_data: MembersCB,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
) -> AnswerCallbackQuery:
    if query.message is None:
        return query.answer()
    if callback_data.action == "list":
        groups = await admins.groups_of(session, user.id)
        if not groups:
            return query.answer(no_groups(), show_alert=True)
        await show(query, _("Choose a group:"), picker(groups))
        return query.answer()
    if callback_data.action not in {"open", "core"}:
        return query.answer(_("This button is out of date."), show_alert=True)
    try:
        group = await admins.require_admin(session, callback_data.group_id, user.id)
    except GroupNotFound:
        return query.answer(group_gone(), show_alert=True)
    except NotGroupAdmin:
        return query.answer(not_admin(), show_alert=True)
    if callback_data.action == "core" and callback_data.n == 0:
        await show(
            query,
            _("Core members of {title} are active on at least how many of the last {window} days?")
            .format(title=quote(group.title), window=CORE_WINDOW_DAYS),
            threshold_keyboard(group),
        )  # fmt: skip
        return query.answer()
    notice = None
    if callback_data.action == "core":
        try:
            await activity_service.set_core_min_days(session, group, callback_data.n)
        except BadCoreDays:
            return query.answer(core_usage(html=False), show_alert=True)  # alerts: plain text
        notice = _("Core threshold set to {n} days.").format(n=callback_data.n)
    text, keyboard = await _report(session, group, admins, user)
    await show(query, text, keyboard)
    return query.answer(notice)


def router() -> Router:
    r = Router(name="activity")
    in_group = F.chat.type.in_(GROUP_TYPES)
    private = F.chat.type == "private"
    r.message.register(top_command, Command("top"), in_group)
    r.message.register(hide_command, Command("hideme"))
    r.message.register(show_command, Command("showme"))
    r.message.register(members_command, Command("members"), private)
    r.callback_query.register(members_button, MembersCB.filter(), F.message.chat.type == "private")
    return r

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
from aiogram.utils.i18n import ngettext
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
    DORMANT_DAYS,
    LEADERBOARD_WINDOWS,
    BadCoreDays,
    Member,
    Ranked,
)
from services.admins import AdminDirectory
from services.errors import GroupNotFound, NotGroupAdmin

GROUP_TYPES = {"group", "supergroup"}
NAME_CHARS = 40
LIST_BUDGET = 1600  # characters per list of names: two lists stay far below 4096


# ---------------------------------------------------------------- texts


def top_usage() -> str:
    return _("Usage: {usage} (the last 7 days) or {usage30} (the last 30 days)").format(
        usage="<code>/top</code>", usage30="<code>/top 30</code>"
    )


def core_usage(*, html: bool = True) -> str:
    example = "/members core 5"
    return _(
        "The core threshold is a whole number of days from {low} to {high}, for example {example}."
    ).format(low=CORE_MIN, high=CORE_MAX, example=f"<code>{example}</code>" if html else example)


def members_usage() -> str:
    return _("Usage: {usage}, or {core} to set the core threshold").format(
        usage="<code>/members</code>", core="<code>/members core 5</code>"
    )


def no_groups() -> str:
    return _(
        "You don't run any group with me yet. Add me to your group and make me an admin, "
        "then send /members again."
    )


def not_admin() -> str:
    return _("Only the owner and administrators of a group can see its members.")


def _cut(name: str) -> str:
    name = " ".join(name.split())
    return quote(name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…")


def _ranking(title: str, rows: list[Ranked]) -> list[str]:
    lines = [f"<b>{title}</b>"]
    if not rows:
        lines.append(_("Nobody yet."))
    lines += [f"{i}. {_cut(r.name)} · {r.count}" for i, r in enumerate(rows, 1)]
    return lines


def top_text(board: activity_service.Leaderboard) -> str:
    lines = _ranking(
        ngettext(
            "Most active in the last {n} day", "Most active in the last {n} days", board.days
        ).format(n=board.days),
        board.active,
    )
    lines.append("")
    lines += _ranking(
        ngettext(
            "Top inviters in the last {n} day", "Top inviters in the last {n} days", board.days
        ).format(n=board.days),
        board.inviters,
    )
    lines += [
        "",
        _("Activity counts messages and sign-ups. Send /hideme to keep your name off this list."),
    ]
    return "\n".join(lines)


def _names(members: list[Member], *, with_days: bool) -> str:
    """Names, comma separated, within LIST_BUDGET characters; the rest as '… and N more'."""
    parts: list[str] = []
    used = 0
    for member in members:
        part = _cut(member.first_name)
        if with_days:
            part += f" ({member.days})"
        if used + len(part) + 2 > LIST_BUDGET:
            break
        parts.append(part)
        used += len(part) + 2
    text = ", ".join(parts)
    rest = len(members) - len(parts)
    if rest:
        text += " " + ngettext("… and {n} more", "… and {n} more", rest).format(n=rest)
    return text


def report_text(report: activity_service.MemberReport) -> str:
    lines = [
        _("<b>Members of {title}</b>").format(title=quote(report.group.title)),
        "",
        _("<b>Core members</b> (active on at least {n} of the last {window} days): {count}").format(
            n=report.core_min_days, window=CORE_WINDOW_DAYS, count=len(report.core)
        ),
    ]
    if report.core:
        lines.append(_names(report.core, with_days=True))
    lines += [
        "",
        _("<b>Dormant members</b> (no activity in the last {days} days): {count}").format(
            days=DORMANT_DAYS, count=len(report.dormant)
        ),
    ]
    if report.dormant:
        lines.append(_names(report.dormant, with_days=False))
    lines += [
        "",
        _(
            "Activity: messages, sign-ups and confirmed orders. I know the members I have seen "
            "join or write since I became an admin."
        ),
    ]
    return "\n".join(lines)


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
    if raw.isdecimal() and int(raw) in LEADERBOARD_WINDOWS:
        return int(raw)
    return None


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

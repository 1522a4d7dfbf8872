"""/digest in private chat: the digest of each group the user runs (text + chart), for
yesterday or a date or range; `/digest settings` (per group: on/off, the user's subscription,
the time); `/digest time N HH:MM`; `/digest all` for the operators (ADMIN_IDS).

Callback data only names a group: every button re-checks on the server that the user
administers it.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from handlers.callbacks import DigestCB
from handlers.common import quote
from models import Database, Group, User
from services import digest as digest_service
from services.admins import AdminDirectory
from services.digest import DigestArgError, InvalidDigestTime
from services.errors import GroupNotFound, NotGroupAdmin
from services.parsing import ParseError, parse_int
from services.timezones import Clock, utcnow
from views import digest_texts as texts

GROUPS_PER_DIGEST = 10


async def send_digest(message: Message, digest: digest_service.GroupDigest) -> None:
    await message.answer(texts.group_text(digest))
    png = await texts.group_chart(digest)
    await message.answer_photo(
        BufferedInputFile(png, filename=f"digest-{digest.group_id}.png"),
        caption=quote(texts.chart_title(digest)),
    )


def _word(command: CommandObject) -> str:
    args = (command.args or "").strip()
    return args.split()[0].lower() if args else ""


async def digest_settings_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
) -> None:
    """`/digest settings` and `/digest time N HH:MM`: they change things, in the update's
    transaction."""
    if _word(command) == "settings":
        await show_settings(message, session, user, admins)
    else:
        await set_time(message, session, user, admins, (command.args or "").split()[1:])


async def digest_command(
    message: Message,
    command: CommandObject,
    db: Database,
    admins: AdminDirectory,
    settings: Settings,
    clock: Clock,
) -> None:
    """Digests are read-only: built and sent outside any write transaction (on SQLite a
    writer would hold the database's one write lock while charts render and messages go
    out). Only the administrator check may write (a stale admin list is refreshed), in a
    short transaction of its own."""
    if message.from_user is None:
        return
    user_id = message.from_user.id
    args = (command.args or "").strip()
    if _word(command) == "all":
        if user_id not in settings.admin_ids:
            await message.answer(_("Only the operators of this bot get the all-groups digest."))
            return
        async with db.read() as session:
            admin = await digest_service.build_admin(session, utcnow())
        await message.answer(texts.admin_text(admin))
        return
    async with db.transaction() as session:
        groups = [g for g, _status in await admins.groups_of(session, user_id)]
    if not groups:
        await message.answer(
            _(
                "You don't run any group with me yet. Add me to your group and make me an "
                "admin; its digest then comes every morning."
            )
        )
        return
    now = clock.now()
    try:  # validated once, against the furthest-ahead group's today
        digest_service.parse_period(
            args, max(digest_service.local_today(now, g.timezone) for g in groups)
        )
    except DigestArgError as err:
        await message.answer(texts.arg_error_text(err))
        return
    later: list[Group] = []  # registered after the period: no digest of days before it
    for group in groups[:GROUPS_PER_DIGEST]:
        today = digest_service.local_today(now, group.timezone)
        try:
            period = digest_service.parse_period(args, today)
        except DigestArgError:  # a date that is already today elsewhere but not here yet
            period = digest_service.Period(today, today)
        covered = digest_service.since_registration(group, period)
        if covered is None:
            later.append(group)
            continue
        async with db.read() as session:
            digest = await digest_service.build(session, group, covered, clock.now())
        await send_digest(message, digest)
    if later:
        await message.answer(
            _(
                "No digest of {titles} for that time: I was added there later. A group's "
                "first digest covers the day I was added."
            ).format(titles=", ".join(quote(g.title or str(g.chat_id)) for g in later))
        )
    if len(groups) > GROUPS_PER_DIGEST:
        await message.answer(
            _("…and {n} more groups: see /digest settings.").format(
                n=len(groups) - GROUPS_PER_DIGEST
            )
        )


async def settings_view(
    session: AsyncSession, user: User, groups: list[Group]
) -> tuple[str, InlineKeyboardMarkup]:
    lines = ["⚙️ <b>" + _("Daily digest settings") + "</b>", ""]
    rows = []
    for n, group in enumerate(groups, 1):
        subscribed = await digest_service.is_subscribed(session, group, user.id)
        state = _("on") if group.digest_enabled else _("off")
        mine = _("you get it") if subscribed else _("you don't get it")
        lines.append(
            f"{n}. <b>{quote(group.title)}</b>: "
            + _("{time} ({timezone}), {state}, {mine}").format(
                time=group.digest_time, timezone=group.timezone, state=state, mine=mine
            )
        )
        rows.append(
            [
                InlineKeyboardButton(
                    text=f"{n}. " + (_("🔕 Stop sending me") if subscribed else _("🔔 Send me")),
                    callback_data=DigestCB(
                        action="unsub" if subscribed else "sub", group_id=group.id
                    ).pack(),
                ),
                InlineKeyboardButton(
                    text=f"{n}. "
                    + (_("⏸ Turn off for all") if group.digest_enabled else _("▶️ Turn on")),
                    callback_data=DigestCB(
                        action="off" if group.digest_enabled else "on", group_id=group.id
                    ).pack(),
                ),
            ]
        )
    lines += [
        "",
        _(
            "Change the time (the group's local time): <code>/digest time 1 08:30</code> "
            "(group number, then HH:MM)."
        ),
    ]
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows)


async def show_settings(
    message: Message, session: AsyncSession, user: User, admins: AdminDirectory
) -> None:
    groups = [g for g, _status in await admins.groups_of(session, user.id)]
    if not groups:
        await message.answer(_("You don't run any group with me yet."))
        return
    text, keyboard = await settings_view(session, user, groups)
    await message.answer(text, reply_markup=keyboard)


async def set_time(
    message: Message,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    parts: list[str],
) -> None:
    groups = [g for g, _status in await admins.groups_of(session, user.id)]
    example = _(
        "Send the group's number from /digest settings and a time, for example "
        "<code>/digest time 1 08:30</code>."
    )
    try:
        index = parse_int(parts[0], maximum=999) if len(parts) == 2 else 0
    except ParseError:
        index = 0
    if not index:
        await message.answer(example)
        return
    if not 1 <= index <= len(groups):
        await message.answer(
            _("There is no group number {n} in your list.").format(n=index) + "\n" + example
        )
        return
    group = groups[index - 1]
    try:
        value = await digest_service.set_time(session, group, parts[1])
    except InvalidDigestTime as err:
        await message.answer(texts.time_error_text(err.value))
        return
    await message.answer(
        _("The digest of {title} now comes at {time} ({timezone}).").format(
            title=quote(group.title), time=value, timezone=group.timezone
        )
    )


async def digest_button(
    query: CallbackQuery,
    callback_data: DigestCB,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
) -> None:
    try:
        group = await admins.require_admin(session, callback_data.group_id, user.id)
    except NotGroupAdmin:
        await query.answer(
            _("Only the owner and administrators of a group get its digest."), show_alert=True
        )
        return
    except GroupNotFound:
        await query.answer(_("That group is unknown or I am no longer in it."), show_alert=True)
        return
    now = utcnow()
    action = callback_data.action
    if action in {"sub", "unsub"}:
        await digest_service.set_subscribed(session, group.id, user.id, action == "sub", now)
    elif action in {"on", "off"}:
        await digest_service.set_enabled(session, group, action == "on")
    else:
        await query.answer()
        return
    groups = [g for g, _status in await admins.groups_of(session, user.id)]
    text, keyboard = await settings_view(session, user, groups)
    await query.answer(_("Saved."))
    if query.message is not None:
        await query.bot.edit_message_text(
            text, chat_id=user.id, message_id=query.message.message_id, reply_markup=keyboard
        )


def router() -> Router:
    r = Router(name="digest")
    r.message.filter(F.chat.type == "private")
    r.message.register(
        digest_settings_command,
        Command("digest", magic=F.args.regexp(r"(?i)^\s*(settings|time)\b")),
    )
    r.message.register(digest_command, Command("digest"))
    r.callback_query.register(digest_button, DigestCB.filter())
    return r

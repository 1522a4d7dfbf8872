"""/schedule: the content calendar in private chat, for owners of a group.

`/schedule` (or `/schedule new`) creates a post step by step, each step with Back and Cancel:

    groups → content (text, or a photo with a caption) → button to a deal (optional) →
    kind (once / daily / weekly / cron) → weekdays (weekly only) → when → preview (Save)

A one-off time is read in the first chosen group's timezone; a recurring post runs at its
wall-clock time in each group's own timezone (services.calendar computes the runs). Every
refused input stays on its step, says why with an example, and saves nothing.

`/schedule list` shows the owner's posts with their next run (local time) and buttons to
pause / resume, edit, or delete. Edit offers the text, the schedule (kind → weekdays → when,
the same steps and checks as creating; each group's next run is recomputed in its timezone)
and the target groups (only groups the owner administers, at least one). An edit in progress
keeps `edit` (the post id) in the FSM data next to its draft; it is saved at its last step,
and a refused input changes nothing. Every button re-checks ownership on the server.
`now()` is this module's clock (tests freeze it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.common import quote
from models import Group, User
from services import calendar
from services import deals as deal_service
from services.admins import AdminDirectory
from services.calendar import PostSpec
from services.parsing import ParseError, parse_local_datetime
from services.timezones import utcnow
from views.deal_texts import local_time, parse_error_text

FLOW = ("groups", "content", "button", "kind", "days", "when", "preview")
KIND_NAMES = ("once", "daily", "weekly", "cron")


def now() -> datetime:
    return utcnow()


class ScheduleWizard(StatesGroup):
    groups = State()
    content = State()
    button = State()
    kind = State()
    days = State()
    when = State()
    preview = State()
    edit_text = State()


class ScheduleCB(CallbackData, prefix="sw"):
    step: str
    action: str  # toggle | done | back | cancel | deal | nodeal | kind | day | save
    value: str = ""


class ScheduleItemCB(CallbackData, prefix="si"):
    action: str  # pause | resume | edit | etext | etime | egroups | delete | new | list
    post_id: int = 0


def weekday_names() -> list[str]:
    return [_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun")]


def schedule_error_text(err: ParseError) -> str:
    d = err.detail
    reason = err.reason
    if reason == "post_empty":
        return _("The post is empty. Send a text, for example <code>Fresh mangoes today!</code>")
    if reason == "post_too_long":
        return _(
            "That post is {length} characters long; Telegram allows at most {max}. "
            "Shorten it, or split it into two posts."
        ).format(length=d.get("length"), max=d.get("max"))
    if reason == "caption_too_long":
        return _(
            "A photo's caption can have at most {max} characters; this one has {length}. "
            "Shorten it, or send the text without the photo (up to 4096)."
        ).format(length=d.get("length"), max=d.get("max"))
    if reason == "clock_format":
        return _("Send the time as HH:MM, for example <code>09:00</code> or <code>18:30</code>.")
    if reason == "clock_invalid":
        return _(
            "That time does not exist: hours go from 00 to 23 and minutes from 00 to 59. "
            "For example <code>09:00</code>."
        )
    if reason == "cron_seconds":
        return _(
            "Cron expressions with seconds are not supported: use five fields (minute hour "
            "day month weekday), for example <code>0 9 * * 1-5</code>."
        )
    if reason == "cron_format":
        return _(
            "That is not a cron expression I understand. Use five fields (minute hour day "
            "month weekday), for example <code>0 9 * * 1-5</code> (09:00 on weekdays)."
        )
    if reason == "cron_never":
        return _(
            "That cron expression never fires (for example, February has no 30th). "
            "Try <code>0 9 1 * *</code> (09:00 on the 1st of each month)."
        )
    if reason == "cron_too_often":
        return _(
            "That would post more often than once every {minutes} minutes, which floods the "
            "group. Choose a slower schedule, for example <code>0 */2 * * *</code> (every two "
            "hours)."
        ).format(minutes=d.get("minutes", 5))
    if reason == "weekdays_empty":
        return _("Choose at least one day of the week, then tap Done.")
    if reason == "deal_unknown":
        return _(
            "That is not one of your deals. Send a deal code like <code>D12</code>, or tap "
            "No button."
        )
    if reason == "groups_empty":
        return _("Choose at least one group, then tap Done.")
    if reason == "groups_not_yours":
        return _("You can only choose groups you administer. Choose them again, then tap Done.")
    return parse_error_text(err)


def not_an_owner() -> str:
    return _(
        "Only owners and administrators of a group can schedule posts. Add me to your group "
        "and make me an administrator, then send /schedule again."
    )


# ---------------------------------------------------------------- helpers


def _b(text: str, step: str, action: str, value: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=text, callback_data=ScheduleCB(step=step, action=action, value=value).pack()
    )


def _nav(step: str, back: bool = True) -> list[InlineKeyboardButton]:
    row = [_b("« " + _("Back"), step, "back")] if back else []
    return row + [_b("✖ " + _("Cancel"), step, "cancel")]


async def _owned(session: AsyncSession, admins: AdminDirectory, user_id: int) -> list[Group]:
    return [g for g, _status in await admins.groups_of(session, user_id)]


async def _chosen(session: AsyncSession, draft: dict[str, Any]) -> list[Group]:
    ids = [int(i) for i in draft.get("group_ids") or []]
    if not ids:
        return []
    found = {g.id: g for g in await session.scalars(select(Group).where(Group.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


def _spec(draft: dict[str, Any]) -> PostSpec:
    run_at = draft.get("run_at")
    days = draft.get("weekdays") or []
    return PostSpec(
        text=draft.get("text") or "",
        kind=draft.get("kind") or "once",
        group_ids=[int(i) for i in draft.get("group_ids") or []],
        photo_file_id=draft.get("photo"),
        deal_id=draft.get("deal_id"),
        run_at=datetime.fromisoformat(run_at) if run_at else None,
        at_time=draft.get("at_time"),
        weekdays=",".join(str(d) for d in sorted(days)) if days else None,
        cron=draft.get("cron"),
    )


def describe(kind: str, at_time: str | None, weekdays: str | None, cron: str | None) -> str:
    if kind == "daily":
        return _("daily at {time}").format(time=at_time)
    if kind == "weekly":
        names = weekday_names()
        days = ", ".join(names[int(d)] for d in (weekdays or "").split(",") if d)
        return _("every {days} at {time}").format(days=days, time=at_time)
    if kind == "cron":
        return _("cron {expr}").format(expr=f"<code>{quote(cron)}</code>")
    return _("once")


def _step_before(step: str, draft: dict[str, Any]) -> str | None:
    i = FLOW.index(step) - 1
    if i >= 0 and FLOW[i] == "days" and draft.get("kind") != "weekly":
        i -= 1
    return FLOW[i] if i >= 0 else None


# ---------------------------------------------------------------- showing steps


async def show(
    bot: Bot, user: User, step: str, state: FSMContext, session: AsyncSession, admins
) -> None:
    data = await state.get_data()
    draft = data.get("draft", {})
    await state.set_state(getattr(ScheduleWizard, step))
    chat = user.id
    editing = data.get("edit")
    if step == "groups" and editing:
        groups = await _owned(session, admins, user.id)
        chosen = [int(i) for i in draft.get("group_ids") or []]
        rows = [
            [_b(("✅ " if g.id in chosen else "▫️ ") + g.title, "groups", "toggle", str(g.id))]
            for g in groups
        ]
        rows.append([_b(_("Done"), "groups", "done")])
        rows.append(_nav("groups", back=False))
        text = _("Post #{id}: which groups get it? Tap to choose, then Done.").format(id=editing)
        await bot.send_message(chat, text, reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))
    elif step == "groups":
        groups = await _owned(session, admins, user.id)
        chosen = [int(i) for i in draft.get("group_ids") or []]
        rows = [
            [_b(("✅ " if g.id in chosen else "▫️ ") + g.title, "groups", "toggle", str(g.id))]
            for g in groups
        ]
        rows.append([_b(_("Done"), "groups", "done")])
        rows.append(_nav("groups", back=False))
        text = _("New scheduled post. Which groups get it? Tap to choose, then Done.")
        await bot.send_message(chat, text, reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))
    elif step == "content":
        text = _(
            "Send the post: a text (up to 4096 characters), or a photo with a caption (up to "
            "1024 characters)."
        )
        markup = InlineKeyboardMarkup(inline_keyboard=[_nav("content")])
        await bot.send_message(chat, text, reply_markup=markup)
    elif step == "button":
        deals = [
            d
            for d in await deal_service.owned_by(session, user.id, limit=10)
            if d.status in ("scheduled", "open", "paused")
        ][:6]
        rows = [[_b(f"{d.code} · {d.title}"[:60], "button", "deal", str(d.id))] for d in deals]
        rows.append([_b(_("No button"), "button", "nodeal")])
        rows.append(_nav("button"))
        text = _(
            "Add a button that opens one of your deals? Tap a deal or send its code (for "
            "example <code>D12</code>), or tap No button."
        )
        await bot.send_message(chat, text, reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))
    elif step == "kind":
        rows = [
            [_b(_("Once"), "kind", "kind", "once"), _b(_("Daily"), "kind", "kind", "daily")],
            [
                _b(_("Weekly"), "kind", "kind", "weekly"),
                _b(_("Cron expression"), "kind", "kind", "cron"),
            ],
            _nav("kind"),
        ]
        text = _("When should it be posted?")
        if editing:
            text = _("Post #{id}: new schedule.").format(id=editing) + "\n" + text
        await bot.send_message(chat, text, reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))
    elif step == "days":
        chosen = set(draft.get("weekdays") or [])
        names = weekday_names()
        row = [
            _b(("✅" if i in chosen else "") + names[i], "days", "day", str(i)) for i in range(7)
        ]
        rows = [row[:4], row[4:], [_b(_("Done"), "days", "done")], _nav("days")]
        text = _("On which days of the week? Tap to choose, then Done.")
        await bot.send_message(chat, text, reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))
    elif step == "when":
        groups = await _chosen(session, draft)
        zone = groups[0].timezone if groups else "UTC"
        kind = draft.get("kind")
        if kind == "once":
            text = _(
                "When? Send the local time in {zone}, for example <code>2026-12-01 20:00</code> "
                "or <code>tomorrow 09:00</code>."
            ).format(zone=zone)
        elif kind == "cron":
            text = _(
                "Send a cron expression with five fields (minute hour day month weekday), in "
                "each group's local time, for example <code>0 9 * * 1-5</code> (09:00 on "
                "weekdays). At most one post every 5 minutes."
            )
        else:
            text = _(
                "At what time? Send HH:MM in each group's local time, for example "
                "<code>09:00</code>."
            )
        markup = InlineKeyboardMarkup(inline_keyboard=[_nav("when")])
        await bot.send_message(chat, text, reply_markup=markup)
    elif step == "preview":
        await show_preview(bot, user, draft, session)


async def render_post(bot: Bot, chat_id: int, draft: dict[str, Any]) -> None:
    """The post as the groups will see it."""
    from html import escape

    markup = None
    if draft.get("deal_id"):
        me = await bot.me()
        link = f"https://t.me/{me.username}?start=deal_{draft['deal_id']}"
        label = "🛒 " + _("Open deal D{id}").format(id=draft["deal_id"])
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text=label, url=link)]]
        )
    text = escape(draft.get("text") or "", quote=False)
    if draft.get("photo"):
        await bot.send_photo(chat_id, draft["photo"], caption=text or None, reply_markup=markup)
    else:
        await bot.send_message(chat_id, text, reply_markup=markup)


async def show_preview(bot: Bot, user: User, draft: dict[str, Any], session: AsyncSession) -> None:
    groups = await _chosen(session, draft)
    spec = _spec(draft)
    await render_post(bot, user.id, draft)
    runs = calendar.preview_runs(spec, groups, now())
    lines = [
        "<b>" + _("Preview") + "</b>",
        _("Groups: {groups}").format(groups=", ".join(quote(g.title) for g in groups)),
        _("Schedule: {schedule}").format(
            schedule=describe(spec.kind, spec.at_time, spec.weekdays, spec.cron)
        ),
    ]
    for group, moment in runs:
        lines.append(
            _("Next run in {group}: {when}").format(
                group=quote(group.title), when=local_time(moment, group.timezone)
            )
        )
    rows = [[_b("💾 " + _("Save"), "preview", "save")], _nav("preview")]
    await bot.send_message(
        user.id, "\n".join(lines), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows)
    )


# ---------------------------------------------------------------- commands


async def schedule_command(
    message: Message,
    command: CommandObject,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
) -> None:
    arg = (command.args or "").strip().lower()
    if arg == "list":
        await state.clear()
        await send_list(bot, user, session)
        return
    groups = await _owned(session, admins, user.id)
    if not groups:
        await state.clear()
        await message.answer(not_an_owner())
        return
    draft: dict[str, Any] = {"group_ids": [groups[0].id] if len(groups) == 1 else []}
    await state.set_data({"draft": draft})
    await show(bot, user, "groups", state, session, admins)


async def send_list(bot: Bot, user: User, session: AsyncSession) -> None:
    items = await calendar.owned(session, user.id)
    new_row = [
        InlineKeyboardButton(
            text="➕ " + _("New post"), callback_data=ScheduleItemCB(action="new").pack()
        )
    ]
    if not items:
        await bot.send_message(
            user.id,
            _("You have no scheduled posts. Send /schedule to create one."),
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[new_row]),
        )
        return
    lines = ["<b>" + _("Your scheduled posts") + "</b>"]
    rows = []
    for item in items:
        post = item.post
        head = f"#{post.id} · " + describe(post.kind, post.at_time, post.weekdays, post.cron)
        if post.paused:
            head += " · ⏸ " + _("paused")
        if item.next_run is not None:
            group, moment = item.next_run
            head += " · " + _("next: {when}").format(when=local_time(moment, group.timezone))
        elif not post.paused:
            head += " · " + _("done")
        snippet = (post.text or _("(photo)")).strip().splitlines()[0] if post.text else _("(photo)")
        lines.append(head)
        lines.append(
            "   " + quote(snippet[:60]) + " → " + ", ".join(quote(g.title) for g in item.groups)
        )

        def button(text: str, action: str, post_id: int = post.id) -> InlineKeyboardButton:
            return InlineKeyboardButton(
                text=text, callback_data=ScheduleItemCB(action=action, post_id=post_id).pack()
            )

        toggle = (
            button("▶ " + _("Resume") + f" #{post.id}", "resume")
            if post.paused
            else button("⏸ " + _("Pause") + f" #{post.id}", "pause")
        )
        rows.append(
            [
                toggle,
                button("✏️ " + _("Edit") + f" #{post.id}", "edit"),
                button("🗑 " + _("Delete") + f" #{post.id}", "delete"),
            ]
        )
    rows.append(new_row)
    await bot.send_message(
        user.id, "\n".join(lines), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows)
    )


async def cancel_command(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer(_("Cancelled; nothing was saved."))


# ---------------------------------------------------------------- typed input


async def content_typed(
    message: Message, bot: Bot, state: FSMContext, session: AsyncSession, user: User, admins
) -> None:
    data = await state.get_data()
    draft = data.get("draft", {})
    photo = message.photo[-1].file_id if message.photo else None
    raw = message.caption if photo else message.text
    try:
        text = calendar.check_text(raw or "", photo=photo is not None)
    except ParseError as err:
        await message.answer(schedule_error_text(err))
        return
    draft["text"], draft["photo"] = text, photo
    await state.update_data(draft=draft)
    await show(bot, user, "button", state, session, admins)


async def text_typed(
    message: Message, bot: Bot, state: FSMContext, session: AsyncSession, user: User, admins
) -> None:
    raw_state = await state.get_state() or ""
    step = raw_state.split(":", 1)[-1]
    data = await state.get_data()
    draft = data.get("draft", {})
    text = (message.text or "").strip()
    try:
        if step == "button":
            deal_id = deal_service.parse_code(text)
            if deal_id is None:
                raise ParseError("deal_unknown")
            await calendar.owner_deal(session, deal_id, user.id)
            draft["deal_id"] = deal_id
            following = "kind"
        elif step == "when":
            groups = await _chosen(session, draft)
            zone = groups[0].timezone if groups else "UTC"
            kind = draft.get("kind")
            if kind == "once":
                moment = parse_local_datetime(text, zone, now()).replace(second=0, microsecond=0)
                if moment <= now():
                    raise ParseError("time_past")
                draft["run_at"] = moment.isoformat()
            elif kind == "cron":
                draft["cron"] = calendar.check_cron(text, zone, now())
            else:
                draft["at_time"] = calendar.parse_clock(text)
            if data.get("edit"):
                await save_schedule(bot, user, session, state, int(data["edit"]), draft)
                return
            following = "preview"
        elif step == "edit_text":
            post_id = int(data.get("post_id") or 0)
            await calendar.edit_text(session, post_id, user.id, text, now())
            await state.clear()
            await message.answer(_("Text of post #{id} updated.").format(id=post_id))
            return
        else:
            await message.answer(_("Please use the buttons above, or /cancel."))
            return
    except ParseError as err:
        await message.answer(schedule_error_text(err))
        return
    except calendar.PostNotFound:
        await state.clear()
        await message.answer(_("That post no longer exists."))
        return
    await state.update_data(draft=draft)
    await show(bot, user, following, state, session, admins)


# ---------------------------------------------------------------- buttons


async def wizard_button(
    query: CallbackQuery,
    callback_data: ScheduleCB,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
) -> None:
    raw_state = await state.get_state() or ""
    current = raw_state.split(":", 1)[-1] if raw_state.startswith("ScheduleWizard:") else None
    cb = callback_data
    if cb.action == "cancel":
        await state.clear()
        await query.answer()
        await bot.send_message(user.id, _("Cancelled; nothing was saved."))
        return
    numeric = cb.action in {"toggle", "deal", "day"}
    if current != cb.step or (numeric and not (cb.value.isdigit() and len(cb.value) < 10)):
        await query.answer(_("This button is out of date."), show_alert=True)
        return
    data = await state.get_data()
    draft = data.get("draft", {})
    following: str | None = None
    if cb.action == "back":
        following = _step_before(cb.step, draft) or cb.step
        if data.get("edit") and following in ("groups", "content", "button"):
            await state.clear()
            await query.answer()
            await send_edit_menu(bot, user, int(data["edit"]))
            return
    elif cb.step == "groups" and cb.action == "toggle":
        owned = {g.id for g in await _owned(session, admins, user.id)}
        gid = int(cb.value)
        chosen = [int(i) for i in draft.get("group_ids") or []]
        if gid not in owned:
            await query.answer(_("You do not administer that group."), show_alert=True)
            return
        chosen = [i for i in chosen if i != gid] if gid in chosen else [*chosen, gid]
        draft["group_ids"] = chosen
        following = "groups"
    elif cb.step == "groups" and cb.action == "done" and data.get("edit"):
        owned = {g.id for g in await _owned(session, admins, user.id)}
        post_id = int(data["edit"])
        try:
            await calendar.edit_groups(
                session, post_id, user.id, draft.get("group_ids") or [], owned, now()
            )
        except ParseError as err:
            await query.answer(schedule_error_text(err)[:200], show_alert=True)
            return
        except calendar.PostNotFound:
            await state.clear()
            await query.answer(_("That post no longer exists."), show_alert=True)
            return
        await state.clear()
        await query.answer(_("Saved"))
        await send_runs(bot, user, session, post_id, _("Groups of post #{id} updated."))
        return
    elif cb.step == "groups" and cb.action == "done":
        owned = {g.id for g in await _owned(session, admins, user.id)}
        draft["group_ids"] = [i for i in draft.get("group_ids") or [] if i in owned]
        if not draft["group_ids"]:
            await query.answer(schedule_error_text(ParseError("groups_empty")), show_alert=True)
            return
        following = "content"
    elif cb.step == "button" and cb.action == "deal":
        try:
            await calendar.owner_deal(session, int(cb.value), user.id)
        except ParseError as err:
            await query.answer(schedule_error_text(err)[:200], show_alert=True)
            return
        draft["deal_id"] = int(cb.value)
        following = "kind"
    elif cb.step == "button" and cb.action == "nodeal":
        draft["deal_id"] = None
        following = "kind"
    elif cb.step == "kind" and cb.action == "kind" and cb.value in KIND_NAMES:
        draft["kind"] = cb.value
        for key in ("run_at", "at_time", "cron"):
            draft.pop(key, None)
        following = "days" if cb.value == "weekly" else "when"
    elif cb.step == "days" and cb.action == "day":
        day = int(cb.value)
        days = set(draft.get("weekdays") or [])
        days.symmetric_difference_update({day})
        draft["weekdays"] = sorted(d for d in days if 0 <= d <= 6)
        following = "days"
    elif cb.step == "days" and cb.action == "done":
        if not draft.get("weekdays"):
            await query.answer(schedule_error_text(ParseError("weekdays_empty")), show_alert=True)
            return
        following = "when"
    elif cb.step == "preview" and cb.action == "save":
        owned = {g.id for g in await _owned(session, admins, user.id)}
        spec = _spec(draft)
        spec.group_ids = [i for i in spec.group_ids if i in owned]
        try:
            post = await calendar.create(session, user.id, spec, now())
        except ParseError as err:
            await query.answer()
            await bot.send_message(user.id, schedule_error_text(err))
            return
        await state.clear()
        await query.answer(_("Saved"))
        await bot.send_message(
            user.id,
            _("Scheduled as post #{id}. /schedule list shows your posts.").format(id=post.id),
        )
        return
    else:
        await query.answer()
        return
    await query.answer()
    await state.update_data(draft=draft)
    await show(bot, user, following, state, session, admins)


async def item_button(
    query: CallbackQuery,
    callback_data: ScheduleItemCB,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
) -> None:
    cb = callback_data
    if cb.action == "new":
        groups = await _owned(session, admins, user.id)
        await query.answer()
        if not groups:
            await bot.send_message(user.id, not_an_owner())
            return
        await state.set_data({"draft": {"group_ids": [groups[0].id] if len(groups) == 1 else []}})
        await show(bot, user, "groups", state, session, admins)
        return
    try:
        if cb.action in ("pause", "resume"):
            await calendar.set_paused(session, cb.post_id, user.id, cb.action == "pause", now())
            await query.answer(_("Paused") if cb.action == "pause" else _("Resumed"))
        elif cb.action == "delete":
            await calendar.remove(session, cb.post_id, user.id)
            await query.answer(_("Deleted"))
        elif cb.action == "edit":
            await calendar.get_owned(session, cb.post_id, user.id)
            if await state.get_state() in ScheduleWizard.__all_states_names__:
                await state.clear()
            await query.answer()
            await send_edit_menu(bot, user, cb.post_id)
            return
        elif cb.action == "etime":
            post = await calendar.get_owned(session, cb.post_id, user.id)
            runs = await calendar.target_runs(session, cb.post_id)
            days = [int(d) for d in (post.weekdays or "").split(",") if d]
            draft = {"group_ids": [g.id for g, _at in runs], "weekdays": days}
            await state.set_data({"edit": cb.post_id, "draft": draft})
            await query.answer()
            await show(bot, user, "kind", state, session, admins)
            return
        elif cb.action == "egroups":
            await calendar.get_owned(session, cb.post_id, user.id)
            owned = {g.id for g in await _owned(session, admins, user.id)}
            runs = await calendar.target_runs(session, cb.post_id)
            draft = {"group_ids": [g.id for g, _at in runs if g.id in owned]}
            await state.set_data({"edit": cb.post_id, "draft": draft})
            await query.answer()
            await show(bot, user, "groups", state, session, admins)
            return
        elif cb.action == "list":
            if await state.get_state() in ScheduleWizard.__all_states_names__:
                await state.clear()
            await query.answer()
        elif cb.action == "etext":
            await calendar.get_owned(session, cb.post_id, user.id)
            await state.set_state(ScheduleWizard.edit_text)
            await state.set_data({"post_id": cb.post_id})
            await query.answer()
            await bot.send_message(
                user.id, _("Send the new text for post #{id}.").format(id=cb.post_id)
            )
            return
        else:
            await query.answer()
            return
    except calendar.PostNotFound:
        await query.answer(_("That post no longer exists."), show_alert=True)
        return
    await send_list(bot, user, session)


async def send_edit_menu(bot: Bot, user: User, post_id: int) -> None:
    def button(text: str, action: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(
            text=text, callback_data=ScheduleItemCB(action=action, post_id=post_id).pack()
        )

    rows = [
        [
            button("📝 " + _("Text"), "etext"),
            button("🕒 " + _("Schedule"), "etime"),
            button("👥 " + _("Groups"), "egroups"),
        ],
        [button("« " + _("Back"), "list")],
    ]
    await bot.send_message(
        user.id,
        _("Post #{id}: what do you want to change?").format(id=post_id),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=rows),
    )


async def send_runs(bot: Bot, user: User, session: AsyncSession, post_id: int, note: str) -> None:
    """After an edit: the post's schedule and its next run in each group."""
    post = await calendar.get_owned(session, post_id, user.id)
    lines = [
        note.format(id=post_id),
        _("Schedule: {schedule}").format(
            schedule=describe(post.kind, post.at_time, post.weekdays, post.cron)
        ),
    ]
    for group, moment in await calendar.target_runs(session, post_id):
        when = local_time(moment, group.timezone) if moment is not None else _("none")
        lines.append(_("Next run in {group}: {when}").format(group=quote(group.title), when=when))
    if post.paused:
        lines.append("⏸ " + _("paused"))
    await bot.send_message(user.id, "\n".join(lines))


async def save_schedule(
    bot: Bot,
    user: User,
    session: AsyncSession,
    state: FSMContext,
    post_id: int,
    draft: dict[str, Any],
) -> None:
    """The edited schedule of a post (ParseError / PostNotFound: nothing changed)."""
    spec = _spec(draft)
    await calendar.edit_schedule(
        session,
        post_id,
        user.id,
        now(),
        kind=spec.kind,
        run_at=spec.run_at,
        at_time=spec.at_time,
        weekdays=spec.weekdays,
        cron=spec.cron,
    )
    await state.clear()
    await send_runs(bot, user, session, post_id, _("Schedule of post #{id} updated."))


async def other_content(message: Message) -> None:
    await message.answer(_("Please use the buttons above, or /cancel."))


def router() -> Router:
    r = Router(name="schedule")
    r.message.filter(F.chat.type == "private")
    r.callback_query.filter(F.message.chat.type == "private")
    r.message.register(schedule_command, Command("schedule"))
    r.message.register(cancel_command, Command("cancel"), StateFilter(ScheduleWizard))
    r.message.register(
        content_typed,
        StateFilter(ScheduleWizard.content),
        F.photo | (F.text & ~F.text.startswith("/")),
    )
    r.message.register(
        text_typed,
        StateFilter(ScheduleWizard.button, ScheduleWizard.when, ScheduleWizard.edit_text),
        F.text,
        ~F.text.startswith("/"),
    )
    r.message.register(other_content, StateFilter(ScheduleWizard), ~F.text.startswith("/"))
    r.callback_query.register(wizard_button, ScheduleCB.filter())
    r.callback_query.register(item_button, ScheduleItemCB.filter())
    return r

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

This module is the presentation: one state per step (`ScheduleWizard`), a handler per state
and a fallback per state that shows the step's hint again. What a step accepts is the
draft's business (services.post_draft.PostDraft, with services.calendar's rules); texts and
keyboards are in handlers.schedule_views; Back and Cancel are shared with /newdeal
(handlers.wizard). The time is the Dispatcher's `clock` (services.timezones.Clock; tests
set it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from handlers import schedule_views as views
from handlers.callbacks import ScheduleCB, ScheduleItemCB
from handlers.schedule_views import schedule_error_text
from handlers.wizard import Wizard, number, out_of_date
from models import Group, User
from services import calendar
from services.admins import AdminDirectory
from services.drafts import UnknownChoice
from services.errors import NotGroupAdmin
from services.parsing import ParseError
from services.post_draft import STEPS, PostDraft, chosen_groups, deal_code, linkable_deals
from services.timezones import Clock

__all__ = ["ScheduleCB", "ScheduleItemCB", "router"]


class ScheduleWizard(StatesGroup):
    groups = State()
    content = State()
    button = State()
    kind = State()
    days = State()
    when = State()
    preview = State()
    edit_text = State()


async def _owned(session: AsyncSession, admins: AdminDirectory, user_id: int) -> list[Group]:
    return [g for g, _status in await admins.groups_of(session, user_id)]


async def _zone(session: AsyncSession, draft: PostDraft) -> str:
    groups = await chosen_groups(session, draft.group_ids)
    return groups[0].timezone if groups else "UTC"


# ---------------------------------------------------------------- showing steps


async def step_view(
    step: str, draft: PostDraft, session: AsyncSession, user: User, admins: AdminDirectory
) -> tuple[str, InlineKeyboardMarkup]:
    """The text and buttons of a step (the preview's are in `show_preview`)."""
    if step == "groups":
        return views.groups_step(draft, await _owned(session, admins, user.id))
    if step == "content":
        return views.content_step()
    if step == "button":
        return views.button_step(await linkable_deals(session, user.id, admins=admins))
    if step == "kind":
        return views.kind_step(draft)
    if step == "days":
        return views.days_step(draft)
    return views.when_step(draft, await _zone(session, draft))


async def show(
    bot: Bot,
    user: User,
    step: str,
    state: FSMContext,
    session: AsyncSession,
    admins: AdminDirectory,
    clock: Clock,
    *,
    draft: PostDraft | None = None,
    note: str | None = None,
) -> None:
    """Move to `step` and show it (after `note`). A `draft` given is stored first."""
    if draft is None:
        draft = PostDraft.from_data(await state.get_data())
    else:
        await state.set_data(draft.to_data())
    await state.set_state(getattr(ScheduleWizard, step))
    if step == "preview":
        await show_preview(bot, user, draft, session, clock, note=note)
        return
    text, keyboard = await step_view(step, draft, session, user, admins)
    await bot.send_message(user.id, f"{note}\n\n{text}" if note else text, reply_markup=keyboard)


async def show_preview(
    bot: Bot,
    user: User,
    draft: PostDraft,
    session: AsyncSession,
    clock: Clock,
    *,
    note: str | None = None,
) -> None:
    """The post as the groups will see it, then its groups, schedule and next runs."""
    groups = await chosen_groups(session, draft.group_ids)
    username = (await bot.me()).username if draft.deal_id else None
    text, markup = views.post_view(draft, username)
    if draft.photo:
        await bot.send_photo(user.id, draft.photo, caption=text or None, reply_markup=markup)
    else:
        await bot.send_message(user.id, text, reply_markup=markup)
    summary, keyboard = views.preview_step(
        draft, groups, calendar.preview_runs(draft.spec(), groups, clock.now())
    )
    await bot.send_message(
        user.id, f"{note}\n\n{summary}" if note else summary, reply_markup=keyboard
    )


async def refuse(
    bot: Bot,
    user: User,
    step: str,
    draft: PostDraft,
    session: AsyncSession,
    admins: AdminDirectory,
    err: ParseError,
) -> None:
    """Say why the input was refused and stay on the step (its buttons again)."""
    _text, keyboard = await step_view(step, draft, session, user, admins)
    await bot.send_message(user.id, schedule_error_text(err), reply_markup=keyboard)


async def send_edit_menu(bot: Bot, user: User, post_id: int) -> None:
    text, keyboard = views.edit_menu(post_id)
    await bot.send_message(user.id, text, reply_markup=keyboard)


async def send_list(
    bot: Bot, user: User, session: AsyncSession, admins: AdminDirectory | None = None
) -> None:
    text, keyboard = views.post_list(await calendar.owned(session, user.id, admins=admins))
    await bot.send_message(user.id, text, reply_markup=keyboard)


async def send_runs(
    bot: Bot,
    user: User,
    session: AsyncSession,
    post_id: int,
    note: str,
    admins: AdminDirectory | None = None,
) -> None:
    """After an edit: the post's schedule and its next run in each group."""
    post = await calendar.get_owned(session, post_id, user.id, admins=admins)
    schedule = views.describe(post.kind, post.at_time, post.weekdays, post.cron)
    runs = await calendar.target_runs(session, post_id)
    await bot.send_message(
        user.id, views.runs_text(note, post_id, schedule, runs, bool(post.paused))
    )


# ---------------------------------------------------------------- Back and Cancel


async def _show(step: str, query: CallbackQuery, state: FSMContext, **data: Any) -> None:
    await show(query.bot, data["user"], step, state, data["session"], data["admins"], data["clock"])


async def _leave(step: str, query: CallbackQuery, state: FSMContext, **data: Any) -> bool:
    """Back on the first step of an edit returns to the post's menu."""
    draft = PostDraft.from_data(await state.get_data())
    if draft.edit is None:
        return False
    await state.clear()
    await query.answer()
    await send_edit_menu(query.bot, data["user"], draft.edit)
    return True


def _previous(step: str, data: dict[str, Any]) -> str | None:
    return PostDraft.from_data(data).prev_step(step)


WIZARD = Wizard(
    states=ScheduleWizard,
    cb=ScheduleCB,
    cancelled=views.cancelled,
    earlier=out_of_date,
    closed=out_of_date,
    previous=_previous,
    show=_show,
    leave=_leave,
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
    clock: Clock,
) -> None:
    arg = (command.args or "").strip().lower()
    if arg == "list":
        await state.clear()
        await send_list(bot, user, session, admins)
        return
    await start_new(bot, state, session, user, admins, clock, message.answer)


async def start_new(
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
    refuse_with: Callable[[str], Awaitable[Any]],
) -> None:
    groups = await _owned(session, admins, user.id)
    if not groups:
        await state.clear()
        await refuse_with(views.not_an_owner())
        return
    draft = PostDraft(group_ids=[groups[0].id] if len(groups) == 1 else [])
    await show(bot, user, "groups", state, session, admins, clock, draft=draft)


# ---------------------------------------------------------------- typed input, per state


async def content_typed(
    message: Message,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    draft = PostDraft.from_data(await state.get_data())
    photo = message.photo[-1].file_id if message.photo else None
    try:
        following = draft.set_content(message.caption if photo else message.text, photo)
    except ParseError as err:
        await refuse(bot, user, "content", draft, session, admins, err)
        return
    await show(bot, user, following or "button", state, session, admins, clock, draft=draft)


async def button_typed(
    message: Message,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    draft = PostDraft.from_data(await state.get_data())
    try:
        following = await draft.choose_deal(
            session, user.id, deal_code(message.text or ""), admins=admins
        )
    except ParseError as err:
        await refuse(bot, user, "button", draft, session, admins, err)
        return
    await show(bot, user, following or "kind", state, session, admins, clock, draft=draft)


async def when_typed(
    message: Message,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    draft = PostDraft.from_data(await state.get_data())
    try:
        zone = await _zone(session, draft)
        following = draft.apply("when", message.text or "", zone, clock.now())
        if following is None and draft.edit is not None:  # an edit's last step: saved now
            await save_schedule(bot, user, session, state, draft.edit, draft, clock, admins)
            return
    except ParseError as err:
        await refuse(bot, user, "when", draft, session, admins, err)
        return
    except calendar.PostNotFound:
        await state.clear()
        await message.answer(views.post_gone())
        return
    await show(bot, user, following or "preview", state, session, admins, clock, draft=draft)


async def edit_text_typed(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    post_id = int((await state.get_data()).get("post_id") or 0)
    text = (message.text or "").strip()
    try:
        await calendar.edit_text(session, post_id, user.id, text, clock.now(), admins=admins)
    except ParseError as err:
        await message.answer(schedule_error_text(err))
        return
    except calendar.PostNotFound:
        await state.clear()
        await message.answer(views.post_gone())
        return
    await state.clear()
    await message.answer(views.text_updated(post_id))


def stray_at(step: str) -> Callable[..., Awaitable[None]]:
    """The fallback of `step`: anything it does not accept gets the step's hint again."""

    async def stray(
        message: Message,
        bot: Bot,
        state: FSMContext,
        session: AsyncSession,
        user: User,
        admins: AdminDirectory,
        clock: Clock,
    ) -> None:
        await show(bot, user, step, state, session, admins, clock, note=views.use_buttons())

    stray.__name__ = f"{step}_stray"
    return stray


async def edit_text_stray(message: Message, state: FSMContext, session: AsyncSession) -> None:
    post_id = int((await state.get_data()).get("post_id") or 0)
    await message.answer(views.use_buttons() + "\n\n" + views.edit_text_prompt(post_id))


# ---------------------------------------------------------------- buttons, per state


async def _go(
    query: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
    draft: PostDraft,
    step: str | None,
) -> None:
    await query.answer()
    await show(query.bot, user, step or "preview", state, session, admins, clock, draft=draft)


async def _alert(query: CallbackQuery, text: str) -> None:
    await query.answer(text[:200], show_alert=True)


def _number(value: str) -> int:
    found = number(value)
    if found is None:
        raise UnknownChoice(value)
    return found


async def groups_button(
    query: CallbackQuery,
    callback_data: ScheduleCB,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    """Groups: toggle one the owner administers; Done (at least one; an edit is saved)."""
    draft = PostDraft.from_data(await state.get_data())
    owned = {g.id for g in await _owned(session, admins, user.id)}
    try:
        if callback_data.action == "toggle":
            following = draft.toggle_group(_number(callback_data.value), owned)
        elif draft.edit is None:
            following = draft.confirm_groups(owned)
        else:
            await calendar.edit_groups(
                session, draft.edit, user.id, draft.group_ids, owned, clock.now(), admins=admins
            )
            await state.clear()
            await query.answer(_("Saved"))
            await send_runs(
                query.bot, user, session, draft.edit, views.groups_updated(), admins=admins
            )
            return
    except NotGroupAdmin:
        await _alert(query, views.not_your_group())
        return
    except UnknownChoice:
        await _alert(query, out_of_date())
        return
    except ParseError as err:
        await _alert(query, schedule_error_text(err))
        return
    except calendar.PostNotFound:
        await state.clear()
        await _alert(query, views.post_gone())
        return
    await _go(query, state, session, user, admins, clock, draft, following)


async def deal_button(
    query: CallbackQuery,
    callback_data: ScheduleCB,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    """Button: one of the owner's deals (checked on the server)."""
    draft = PostDraft.from_data(await state.get_data())
    try:
        following = await draft.choose_deal(
            session, user.id, _number(callback_data.value), admins=admins
        )
    except UnknownChoice:
        await _alert(query, out_of_date())
        return
    except ParseError as err:
        await _alert(query, schedule_error_text(err))
        return
    await _go(query, state, session, user, admins, clock, draft, following)


def button_at(step: str) -> Callable[..., Awaitable[None]]:
    """The handler of `step`'s own buttons (kind, weekdays, No button)."""

    async def pressed(
        query: CallbackQuery,
        callback_data: ScheduleCB,
        state: FSMContext,
        session: AsyncSession,
        user: User,
        admins: AdminDirectory,
        clock: Clock,
    ) -> None:
        draft = PostDraft.from_data(await state.get_data())
        try:
            following = draft.choose(step, callback_data.action, callback_data.value)
        except UnknownChoice:
            await _alert(query, out_of_date())
            return
        except ParseError as err:
            await _alert(query, schedule_error_text(err))
            return
        await _go(query, state, session, user, admins, clock, draft, following)

    pressed.__name__ = f"{step}_button"
    return pressed


async def save_button(
    query: CallbackQuery,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    draft = PostDraft.from_data(await state.get_data())
    spec = draft.spec()
    owned = {g.id for g in await _owned(session, admins, user.id)}
    spec.group_ids = [i for i in spec.group_ids if i in owned]
    try:
        post = await calendar.create(session, user.id, spec, clock.now(), admins=admins)
    except ParseError as err:
        await query.answer()
        await bot.send_message(user.id, schedule_error_text(err))
        return
    await state.clear()
    await query.answer(_("Saved"))
    await bot.send_message(user.id, views.saved(post.id))


async def save_schedule(
    bot: Bot,
    user: User,
    session: AsyncSession,
    state: FSMContext,
    post_id: int,
    draft: PostDraft,
    clock: Clock,
    admins: AdminDirectory | None = None,
) -> None:
    """The edited schedule of a post (ParseError / PostNotFound: nothing changed)."""
    spec = draft.spec()
    await calendar.edit_schedule(
        session,
        post_id,
        user.id,
        clock.now(),
        kind=spec.kind,
        run_at=spec.run_at,
        at_time=spec.at_time,
        weekdays=spec.weekdays,
        cron=spec.cron,
        admins=admins,
    )
    await state.clear()
    await send_runs(bot, user, session, post_id, views.schedule_updated(), admins=admins)


# ---------------------------------------------------------------- the list of posts


async def item_button(
    query: CallbackQuery,
    callback_data: ScheduleItemCB,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    cb = callback_data
    if cb.action == "new":
        await query.answer()
        await start_new(
            bot, state, session, user, admins, clock, lambda t: bot.send_message(user.id, t)
        )
        return
    try:
        if cb.action in ("pause", "resume"):
            await calendar.set_paused(
                session, cb.post_id, user.id, cb.action == "pause", clock.now(), admins=admins
            )
            await query.answer(_("Paused") if cb.action == "pause" else _("Resumed"))
        elif cb.action == "delete":
            await calendar.remove(session, cb.post_id, user.id, admins=admins)
            await query.answer(_("Deleted"))
        elif cb.action == "edit":
            await calendar.get_owned(session, cb.post_id, user.id, admins=admins)
            if await state.get_state() in ScheduleWizard.__all_states_names__:
                await state.clear()
            await query.answer()
            await send_edit_menu(bot, user, cb.post_id)
            return
        elif cb.action == "etime":
            post = await calendar.get_owned(session, cb.post_id, user.id, admins=admins)
            runs = await calendar.target_runs(session, cb.post_id)
            days = [int(d) for d in (post.weekdays or "").split(",") if d]
            draft = PostDraft(group_ids=[g.id for g, _at in runs], weekdays=days, edit=cb.post_id)
            await query.answer()
            await show(bot, user, "kind", state, session, admins, clock, draft=draft)
            return
        elif cb.action == "egroups":
            await calendar.get_owned(session, cb.post_id, user.id, admins=admins)
            owned = {g.id for g in await _owned(session, admins, user.id)}
            runs = await calendar.target_runs(session, cb.post_id)
            draft = PostDraft(group_ids=[g.id for g, _at in runs if g.id in owned], edit=cb.post_id)
            await query.answer()
            await show(bot, user, "groups", state, session, admins, clock, draft=draft)
            return
        elif cb.action == "list":
            if await state.get_state() in ScheduleWizard.__all_states_names__:
                await state.clear()
            await query.answer()
        elif cb.action == "etext":
            await calendar.get_owned(session, cb.post_id, user.id, admins=admins)
            await state.set_state(ScheduleWizard.edit_text)
            await state.set_data({"post_id": cb.post_id})
            await query.answer()
            await bot.send_message(user.id, views.edit_text_prompt(cb.post_id))
            return
        else:
            await query.answer()
            return
    except calendar.PostNotFound:
        await query.answer(views.post_gone(), show_alert=True)
        return
    await send_list(bot, user, session, admins)


# ---------------------------------------------------------------- the router


def router() -> Router:
    r = Router(name="schedule")
    r.message.filter(F.chat.type == "private")
    r.callback_query.filter(F.message.chat.type == "private")
    r.message.register(schedule_command, Command("schedule"))
    WIZARD.register_nav(r)  # /cancel, Cancel and Back
    not_a_command = ~F.text.startswith("/")
    text = (F.text, not_a_command)
    r.message.register(content_typed, ScheduleWizard.content, F.photo | (F.text & not_a_command))
    r.message.register(button_typed, ScheduleWizard.button, *text)
    r.message.register(when_typed, ScheduleWizard.when, *text)
    r.message.register(edit_text_typed, ScheduleWizard.edit_text, *text)
    for step in STEPS:
        r.message.register(
            stray_at(step), StateFilter(getattr(ScheduleWizard, step)), not_a_command
        )
    r.message.register(edit_text_stray, ScheduleWizard.edit_text, not_a_command)

    def at(step: str, *actions: str) -> tuple[Any, ...]:
        state = StateFilter(getattr(ScheduleWizard, step))
        return (state, ScheduleCB.filter(F.step == step), ScheduleCB.filter(F.action.in_(actions)))

    cb = r.callback_query
    cb.register(groups_button, *at("groups", "toggle", "done"))
    cb.register(deal_button, *at("button", "deal"))
    for step in ("button", "kind", "days"):
        state = StateFilter(getattr(ScheduleWizard, step))
        cb.register(button_at(step), state, ScheduleCB.filter(F.step == step))
    cb.register(save_button, *at("preview", "save"))
    WIZARD.register_stale(r)  # buttons of another step, or of no open wizard
    cb.register(item_button, ScheduleItemCB.filter())
    return r

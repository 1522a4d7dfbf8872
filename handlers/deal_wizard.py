"""/newdeal: the deal wizard in private chat, one step at a time, for owners of a group.

Steps, in order (each with Back and Cancel; optional ones with Skip; a step that already has
a value — after Back, or in a copied deal — shows it and offers "Keep current"):

    title → target groups → description → photo → how members pay (cash / card / Telegram
    Stars, only when more than cash is offered; Stars: "is it a digital item?") → unit price
    (in Stars for Stars) → price tiers → minimum (units / participants, then how many) →
    payment deadline in hours (card and Stars with a minimum) or a flash sale's hold in
    minutes (without one) → stock → per-person limit → closes-at →
    opens-at ("Now" or later) → reminders before closing (default 2 h and 15 min) →
    pickup / delivery note → preview (who may join from shared cards: members / anyone;
    Publish / Back / Cancel)

Target groups come right after the title, before anything that depends on them: the unit
price is read in the currency of the FIRST group chosen, and only in it (a price naming
another currency, `¥12.5` in a EUR group, is refused with the reason: the group's members
pay in its currency; the owner changes it in /settings first), and typed times are read in
that group's timezone. Choosing
groups again with another first currency drops the price and tiers entered before, so a
price is never silently re-read in another currency. An owner with a single group finds it
already selected and only taps Done.

This module is the presentation: one state per step (`DealWizard`), a handler per state for
what it accepts and a fallback per state that shows the step's hint again. What a step
accepts and what it changes is the draft's business (services.deal_draft.DealDraft: the
same parsers and rules as services.deals); texts and keyboards are in
handlers.deal_wizard_views; Back and Cancel are shared with /schedule (handlers.wizard).

The draft lives in FSM data as JSON values only (money in minor units, times as ISO strings
in UTC) in the SQL storage, so it survives a restart; its writes join the update's
transaction. Callback data names the step it belongs to: a button of an earlier step is
refused as out of date instead of acting on the current one. Group choices and the final
publication are re-checked on the server against the groups the user administers.

Publishing creates the deal in the update's transaction; posting it to the groups runs only
after that transaction committed (`bot.posts.publish`, through the app's `posts` refresher
when the Dispatcher has one). A deal that opens later is created
"scheduled" and posted by the scheduler when it opens.

The time is the Dispatcher's `clock` (services.timezones.Clock; tests set it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from handlers import deal_wizard_views as views
from handlers.callbacks import WizardCB
from handlers.deal_wizard_views import not_an_owner
from handlers.wizard import Wizard, number, out_of_date
from models import Group, User
from services import deals as deal_service
from services import events
from services.admins import AdminDirectory
from services.deal_draft import (
    BUTTON_ONLY,
    MAX_DESCRIPTION,
    STEPS,
    TYPED,
    DealDraft,
    Targets,
    load_targets,
)
from services.deals import DealSpec
from services.drafts import UnknownChoice
from services.errors import NotGroupAdmin
from services.parsing import ParseError
from services.timezones import Clock
from views.deal_texts import local_times, parse_error_text

__all__ = ["MAX_DESCRIPTION", "WizardCB", "not_an_owner", "router", "start_copy"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- states


class DealWizard(StatesGroup):
    title = State()
    groups = State()
    description = State()
    photo = State()
    pay = State()
    digital = State()
    price = State()
    tiers = State()
    minimum = State()
    min_value = State()
    pay_time = State()
    stock = State()
    limit = State()
    closes = State()
    opens = State()
    reminders = State()
    pickup = State()
    preview = State()


def state_of(step: str) -> State:
    return getattr(DealWizard, step)


async def owned_groups(session: AsyncSession, admins: AdminDirectory, user_id: int) -> list[Group]:
    return [g for g, _status in await admins.groups_of(session, user_id)]


async def targets_of(session: AsyncSession, draft: DealDraft, settings: Settings) -> Targets:
    return await load_targets(
        session, draft.group_ids, settings.default_timezone, settings.default_currency
    )


async def show_step(
    bot: Bot,
    user_id: int,
    step: str,
    state: FSMContext,
    session: AsyncSession,
    admins: AdminDirectory,
    settings: Settings,
    clock: Clock,
    *,
    note: str | None = None,
    draft: DealDraft | None = None,
) -> None:
    """Move to `step` and send its prompt and buttons (after `note`, e.g. why input failed).
    A `draft` given is stored; without one the stored draft is shown as it is."""
    save = draft is not None
    if draft is None:
        draft = DealDraft.from_data(await state.get_data())
    owned = None
    if step == "groups":
        owned = await owned_groups(session, admins, user_id)
        save = draft.preselect([g.id for g in owned]) or save  # the only group: selected
    await state.set_state(state_of(step))
    if save:
        await state.set_data(draft.to_data())
    targets = await targets_of(session, draft, settings)
    moment = clock.now()
    text = views.step_prompt(step, draft, targets, moment)
    if note:
        text = note + "\n\n" + text
    keyboard = views.step_keyboard(step, draft, targets, moment, owned)
    await bot.send_message(user_id, text, reply_markup=keyboard)


async def refuse(
    bot: Bot,
    user_id: int,
    step: str,
    draft: DealDraft,
    targets: Targets,
    reason: str,
    moment: datetime,
) -> None:
    """Say why the input was refused and stay on the step (its buttons again)."""
    keyboard = views.step_keyboard(step, draft, targets, moment)
    await bot.send_message(user_id, reason, reply_markup=keyboard)


async def _show(step: str, event: Message | CallbackQuery, state: FSMContext, **data: Any) -> None:
    await show_step(
        event.bot, data["user"].id, step, state, data["session"], data["admins"], data["settings"],
        data["clock"],
    )  # fmt: skip


def _previous(step: str, data: dict[str, Any]) -> str | None:
    return DealDraft.from_data(data).prev_step(step)


WIZARD = Wizard(
    states=DealWizard,
    cb=WizardCB,
    cancelled=views.discarded,
    earlier=views.earlier_step,
    closed=views.no_draft,
    previous=_previous,
    show=_show,
)


# ---------------------------------------------------------------- starting


async def start_wizard(
    bot: Bot,
    user_id: int,
    state: FSMContext,
    session: AsyncSession,
    admins: AdminDirectory,
    settings: Settings,
    clock: Clock,
) -> None:
    draft = DealDraft(methods=list(settings.pay_methods))  # the ways to pay offered now
    await show_step(bot, user_id, "title", state, session, admins, settings, clock, draft=draft)


async def start_titled(
    bot: Bot,
    user_id: int,
    state: FSMContext,
    session: AsyncSession,
    admins: AdminDirectory,
    settings: Settings,
    clock: Clock,
    title: str,
    note: str | None = None,
) -> None:
    """Start the wizard with its title filled in (a poll's winning option, handlers.polls):
    the next step is asked (a title the draft refuses is asked again). Replaces an unfinished
    draft, as Restart does."""
    draft = DealDraft(methods=list(settings.pay_methods))
    targets = await targets_of(session, draft, settings)
    try:
        step = draft.apply("title", title, targets, clock.now())
    except ParseError:
        step, note = "title", None
    await show_step(
        bot, user_id, step, state, session, admins, settings, clock, note=note, draft=draft
    )


async def newdeal_command(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
    clock: Clock,
) -> None:
    if not await owned_groups(session, admins, user.id):
        await state.clear()
        await message.answer(not_an_owner())
        return
    draft = DealDraft.from_data(await state.get_data())
    if WIZARD.step(await state.get_state()) is not None and draft.title:
        text, keyboard = views.unfinished(draft.title)
        await message.answer(text, reply_markup=keyboard)
        return
    await start_wizard(message.bot, user.id, state, session, admins, settings, clock)


async def resume_or_restart(
    query: CallbackQuery,
    callback_data: WizardCB,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
    clock: Clock,
) -> None:
    if not await owned_groups(session, admins, user.id):
        await state.clear()
        await query.answer(not_an_owner(), show_alert=True)
        return
    await query.answer()
    step = WIZARD.step(await state.get_state())
    if callback_data.action == "resume" and step is not None:
        await show_step(query.bot, user.id, step, state, session, admins, settings, clock)
    else:
        await start_wizard(query.bot, user.id, state, session, admins, settings, clock)


async def start_copy(
    bot: Bot,
    user_id: int,
    state: FSMContext,
    session: AsyncSession,
    admins: AdminDirectory,
    settings: Settings,
    clock: Clock,
    spec: DealSpec,
    code: str,
) -> None:
    """Start the wizard from a copied deal: only the new closing time is asked, then the
    preview (Back reaches every other step, each offering to keep its value)."""
    draft = DealDraft.from_spec(spec)
    draft.keep_owned([g.id for g in await owned_groups(session, admins, user_id)])
    ask = draft.offer(settings.pay_methods)  # a way to pay no longer offered: asked again
    step = "groups" if not draft.group_ids else ask or "closes"
    note = views.copy_note(code, groups=not draft.group_ids)
    await show_step(
        bot, user_id, step, state, session, admins, settings, clock, note=note, draft=draft
    )


# ---------------------------------------------------------------- typed input, per state

Handler = Callable[..., Awaitable[None]]


def typed_at(step: str) -> Handler:
    """The handler of text typed at `step`: the draft reads it, or it is refused."""

    async def typed(
        message: Message, state: FSMContext, session: AsyncSession, user: User, **data: Any
    ) -> None:
        settings: Settings = data["settings"]
        clock: Clock = data["clock"]
        draft = DealDraft.from_data(await state.get_data())
        targets = await targets_of(session, draft, settings)
        moment = clock.now()
        try:
            following = draft.apply(step, message.text or "", targets, moment)
        except ParseError as err:
            reason = parse_error_text(err)
            await refuse(message.bot, user.id, step, draft, targets, reason, moment)
            return
        await show_step(
            message.bot, user.id, following, state, session, data["admins"], settings, clock,
            draft=draft,
        )  # fmt: skip

    typed.__name__ = f"{step}_typed"
    return typed


def stray_at(step: str) -> Handler:
    """The fallback of `step`: anything it does not accept gets the step's hint again."""

    async def stray(
        message: Message, state: FSMContext, session: AsyncSession, user: User, **data: Any
    ) -> None:
        data["session"] = session
        if step == "photo":
            reason = parse_error_text(ParseError("photo_expected"))
        elif step in BUTTON_ONLY and message.text:
            reason = parse_error_text(ParseError("use_buttons"))
        else:
            reason = views.not_text()
        await show_step(
            message.bot, user.id, step, state, data["session"], data["admins"], data["settings"],
            data["clock"], note=reason,
        )  # fmt: skip

    stray.__name__ = f"{step}_stray"
    return stray


async def photo_sent(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
    clock: Clock,
) -> None:
    draft = DealDraft.from_data(await state.get_data())
    following = draft.set_photo(message.photo[-1].file_id)  # the largest size
    await show_step(
        message.bot, user.id, following, state, session, admins, settings, clock, draft=draft
    )


# ---------------------------------------------------------------- buttons, per state


def button_at(step: str) -> Handler:
    """The handler of `step`'s own buttons (Skip, Keep current, quick picks…): the draft
    takes the choice, or refuses it and the step stays."""

    async def pressed(
        query: CallbackQuery,
        callback_data: WizardCB,
        state: FSMContext,
        session: AsyncSession,
        user: User,
        admins: AdminDirectory,
        settings: Settings,
        clock: Clock,
    ) -> None:
        draft = DealDraft.from_data(await state.get_data())
        targets = await targets_of(session, draft, settings)
        action, value = callback_data.action, callback_data.value
        moment = clock.now()
        try:
            following = draft.choose(step, action, value, targets, moment)
        except UnknownChoice:
            await query.answer(out_of_date(), show_alert=True)
            return
        except ParseError as err:
            await query.answer()
            reason = parse_error_text(err)
            await refuse(query.bot, user.id, step, draft, targets, reason, moment)
            return
        await query.answer()
        await show_step(
            query.bot, user.id, following, state, session, admins, settings, clock, draft=draft
        )

    pressed.__name__ = f"{step}_button"
    return pressed


async def group_button(
    query: CallbackQuery,
    callback_data: WizardCB,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
    clock: Clock,
) -> None:
    """Groups: toggle one (only a group the user runs), or Done (at least one)."""
    draft = DealDraft.from_data(await state.get_data())
    owned = await owned_groups(session, admins, user.id)
    if callback_data.action == "done":
        try:
            following = draft.confirm_groups({g.id: g.currency for g in owned})
        except ParseError as err:
            await query.answer(parse_error_text(err), show_alert=True)
            return
        await query.answer()
        await show_step(
            query.bot, user.id, following, state, session, admins, settings, clock, draft=draft
        )
        return
    try:
        draft.toggle_group(number(callback_data.value) or 0, [g.id for g in owned])
    except NotGroupAdmin:
        await query.answer(views.not_your_group(), show_alert=True)
        return
    await state.set_data(draft.to_data())
    await query.answer()
    keyboard = views.step_keyboard("groups", draft, Targets([], "", ""), clock.now(), owned)
    if isinstance(query.message, Message):
        try:
            await query.message.edit_reply_markup(reply_markup=keyboard)
            return
        except TelegramBadRequest:
            pass
    await query.bot.send_message(user.id, views.choose_groups(), reply_markup=keyboard)


async def publish_button(
    query: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
    clock: Clock,
) -> None:
    bot = query.bot
    draft = DealDraft.from_data(await state.get_data())
    if not draft.keep_owned([g.id for g in await owned_groups(session, admins, user.id)]):
        await query.answer()
        await show_step(
            bot, user.id, "groups", state, session, admins, settings, clock,
            note=views.groups_lost(), draft=draft,
        )  # fmt: skip
        return
    missing = draft.missing_step()
    if missing is not None:  # pragma: no cover - the steps filled them in
        await query.answer()
        await show_step(bot, user.id, missing, state, session, admins, settings, clock)
        return
    wanted = list(draft.group_ids or [])
    moment = clock.now()
    try:
        deal = await deal_service.create(session, user.id, draft.spec(), moment)
    except ParseError as err:
        await query.answer()
        step = draft.step_for_error(err, moment)
        draft.fix(step)  # a time that passed meanwhile: only it is asked, then the preview
        await show_step(
            bot, user.id, step, state, session, admins, settings, clock,
            note=parse_error_text(err), draft=draft,
        )  # fmt: skip
        return
    await state.clear()
    deal_id, code = deal.id, deal.code
    log.info("deal %s created by %s (%s)", deal_id, user.id, deal.status)
    if deal.status == "open":  # posted to its groups once this commits (bot/effects.py)
        events.record(session, events.DealOpened(deal_id))
        text = ngettext(
            "Deal {code} is created and is being posted to {n} group.",
            "Deal {code} is created and is being posted to {n} groups.",
            len(wanted),
        ).format(code=code, n=len(wanted))
    else:
        targets = await targets_of(session, draft, settings)
        text = _("Deal {code} is scheduled: it will be posted at {time}.").format(
            code=code, time=local_times(deal.opens_at, targets.timezones)
        )
    await query.answer(_("Done."))
    await bot.send_message(user.id, text + "\n" + _("See and manage your deals with /deals."))


# ---------------------------------------------------------------- the router


def router() -> Router:
    r = Router(name="deal_wizard")
    r.message.filter(F.chat.type == "private")
    r.callback_query.filter(F.message.chat.type == "private")
    r.message.register(newdeal_command, Command("newdeal"))
    WIZARD.register_nav(r)  # /cancel, Cancel and Back
    not_a_command = ~F.text.startswith("/")
    r.message.register(photo_sent, StateFilter(DealWizard.photo), F.photo)
    for step in TYPED:
        r.message.register(typed_at(step), StateFilter(state_of(step)), F.text, not_a_command)
    for step in STEPS:
        r.message.register(stray_at(step), StateFilter(state_of(step)), not_a_command)

    def at(step: str, *actions: str) -> tuple[Any, ...]:
        return (StateFilter(state_of(step)), WizardCB.filter(F.step == step), WizardCB.filter(
            F.action.in_(actions)))  # fmt: skip

    cb = r.callback_query
    cb.register(resume_or_restart, WizardCB.filter(F.step == "-"))
    cb.register(group_button, *at("groups", "toggle", "done"))
    cb.register(publish_button, *at("preview", "publish"))
    cb.register(button_at("preview"), *at("preview", "audience"))
    for step in STEPS:
        if step not in ("groups", "preview"):
            cb.register(
                button_at(step), StateFilter(state_of(step)), WizardCB.filter(F.step == step)
            )
    WIZARD.register_stale(r)  # buttons of another step, or of no open draft
    return r

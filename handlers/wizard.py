"""What the two private wizards (/newdeal: handlers.deal_wizard, /schedule: handlers.schedule)
share: Back and Cancel.

Every step's keyboard ends with the same row (`nav_row`: « Back, ✖ Cancel). Cancel — the
button at any step or /cancel — ends the wizard with nothing saved (`Wizard.cancelled`
says so); Back goes to the step before, as the draft's order of steps says
(`Wizard.previous`), or, on the first step, says so (or `Wizard.leave` takes over: an edit
of a scheduled post returns to the post's menu). A button is acted on only at the step it
belongs to (`AtItsStep`); a button of another step, or of a wizard that is over, is answered
with an alert and changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, Filter, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, Message, TelegramObject
from aiogram.utils.i18n import gettext as _

from services.parsing import ParseError, parse_int


def button(
    text: str, cb: type[CallbackData], step: str, action: str, value: str = ""
) -> InlineKeyboardButton:
    """A wizard button: callback data naming its step, an action and a value."""
    return InlineKeyboardButton(
        text=text,
        callback_data=cb(step=step, action=action, value=value).pack(),  # type: ignore[call-arg]
    )


def nav_row(cb: type[CallbackData], step: str, *, back: bool = True) -> list[InlineKeyboardButton]:
    """The last row of every step's keyboard: « Back (unless `back` is False), ✖ Cancel."""
    row = [button(_("« Back"), cb, step, "back")] if back else []
    return [*row, button(_("✖ Cancel"), cb, step, "cancel")]


def number(value: str) -> int | None:
    """A number carried by a button (an id, a weekday); None if forged."""
    try:
        return parse_int(value)
    except ParseError:
        return None


def step_of(group: type[StatesGroup], raw_state: str | None) -> str | None:
    """'DealWizard:price' → 'price' (None: not in this wizard)."""
    prefix = group.__full_group_name__ + ":"
    if not raw_state or not raw_state.startswith(prefix):
        return None
    step = raw_state.removeprefix(prefix)
    return step if hasattr(group, step) else None


class AtItsStep(Filter):
    """The button's step (callback data `step`) is the step the user is at."""

    def __init__(self, group: type[StatesGroup]) -> None:
        self.group = group

    async def __call__(
        self, event: TelegramObject, raw_state: str | None = None, callback_data: Any = None
    ) -> bool:
        step = getattr(callback_data, "step", None)
        return step is not None and step_of(self.group, raw_state) == step


Show = Callable[..., Awaitable[None]]
Leave = Callable[..., Awaitable[bool]]


@dataclass
class Wizard:
    """Back and Cancel of one wizard.

    `previous(step, data)`: the step before `step` for the draft in the FSM data (None: the
    first); `show(step, query, state, **data)` shows a step; `leave(step, query, state,
    **data)`, if given, may take Back on the first step elsewhere (True: it did, and
    answered the query)."""

    states: type[StatesGroup]
    cb: type[CallbackData]
    cancelled: Callable[[], str]  # the message after Cancel
    earlier: Callable[[], str]  # alert: a button of another step
    closed: Callable[[], str]  # alert: a button when the wizard is over
    previous: Callable[[str, dict[str, Any]], str | None]
    show: Show
    leave: Leave | None = None

    def step(self, raw_state: str | None) -> str | None:
        return step_of(self.states, raw_state)

    def register_nav(self, router: Router) -> None:
        """Cancel (the command, the button at any step) and Back (at its step)."""
        router.message.register(self.cancel_command, Command("cancel"), StateFilter(self.states))
        router.callback_query.register(
            self.cancel_button, self.cb.filter(F.action == "cancel"), StateFilter(self.states)
        )
        router.callback_query.register(
            self.back, self.cb.filter(F.action == "back"), AtItsStep(self.states)
        )

    def register_stale(self, router: Router) -> None:
        """After the steps' own handlers: a button the step does not offer, a button of
        another step, or of no open wizard."""
        router.callback_query.register(self.not_offered, self.cb.filter(), AtItsStep(self.states))
        router.callback_query.register(
            self.earlier_step, self.cb.filter(), StateFilter(self.states)
        )
        router.callback_query.register(self.no_wizard, self.cb.filter())

    # `session` and `user` (unused here) make the update one transaction with the FSM write.

    async def cancel_command(
        self, message: Message, state: FSMContext, session: Any, user: Any
    ) -> None:
        await state.clear()
        await message.answer(self.cancelled())

    async def cancel_button(
        self, query: CallbackQuery, state: FSMContext, session: Any, user: Any
    ) -> None:
        await state.clear()
        await query.answer(_("Cancelled."))
        await query.bot.send_message(query.from_user.id, self.cancelled())

    async def back(
        self,
        query: CallbackQuery,
        callback_data: Any,
        state: FSMContext,
        session: Any,
        user: Any,
        **data: Any,
    ) -> None:
        previous = self.previous(callback_data.step, await state.get_data())
        if previous is not None:
            await query.answer()
            await self.show(previous, query, state, session=session, user=user, **data)
        elif self.leave is not None and await self.leave(
            callback_data.step, query, state, session=session, user=user, **data
        ):
            pass  # left the wizard (and answered)
        else:
            await query.answer(_("This is the first step."))

    async def not_offered(self, query: CallbackQuery) -> None:
        await query.answer(out_of_date(), show_alert=True)

    async def earlier_step(self, query: CallbackQuery) -> None:
        await query.answer(self.earlier(), show_alert=True)

    async def no_wizard(self, query: CallbackQuery) -> None:
        await query.answer(self.closed(), show_alert=True)


def out_of_date() -> str:
    return _("This button is out of date.")

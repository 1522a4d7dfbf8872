"""/mydata and /forgetme in private chat: a copy of everything stored about the user, and
forgetting them (services.privacy decides what is deleted and what is anonymised).

In the transaction of /forgetme: the revocation of the user's invite links at Telegram and
the edit of the question into its outcome are promised in the outbox (services.notices), and
a MemberForgotten event makes the effects map (bot/effects.py) drop the user from every
in-memory cache once it committed (LocaleCache, Sender, the activity buffer's counts not yet
flushed). Other people's unfinished forms that name the user lose the id (bot.forms), and the
deals they ordered in get a new version, so their group posts are re-rendered without the
name (at once, or by the catch-up at the next start).
"""

from __future__ import annotations

import json
import logging

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.methods import AnswerCallbackQuery
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot import forms
from handlers.callbacks import ForgetCB
from models import User
from services import events, notices, privacy
from services.timezones import utcnow
from views.privacy import forget_text

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- /mydata


async def my_data(message: Message, session: AsyncSession, user: User) -> None:
    data = await privacy.export(session, user.id)
    payload = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
    rows = sum(len(r) for r in data["tables"].values())
    caption = _(
        "Everything I store about you: {rows} records in {tables} tables. "
        "I never store the text of your messages. /forgetme deletes your personal data."
    ).format(rows=rows, tables=len(data["tables"]))
    await message.answer_document(
        BufferedInputFile(payload, filename=f"tuan-mydata-{user.id}.json"), caption=caption
    )
    log.info("user %s exported their data (%s rows)", user.id, rows)


# ---------------------------------------------------------------- /forgetme


def forget_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("Delete my data"), callback_data=ForgetCB(action="confirm").pack()
                ),
                InlineKeyboardButton(
                    text=_("Cancel"), callback_data=ForgetCB(action="cancel").pack()
                ),
            ]
        ]
    )


async def forget_me(message: Message) -> None:
    await message.answer(forget_text(), reply_markup=forget_keyboard())


async def _edit(query: CallbackQuery, text: str) -> None:
    message = query.message
    try:
        if isinstance(message, Message):
            await message.edit_text(text, reply_markup=None)
        else:
            await query.bot.send_message(query.from_user.id, text)
    except Exception:
        log.warning("could not show the /forgetme outcome to user %s", query.from_user.id)


async def forget_button(
    query: CallbackQuery,
    callback_data: ForgetCB,
    session: AsyncSession,
    user: User,
    state: FSMContext,
) -> AnswerCallbackQuery | None:
    if callback_data.action == "cancel":
        await _edit(query, _("Nothing was deleted."))
        return query.answer(_("Cancelled."))
    if callback_data.action != "confirm":
        return query.answer(_("This button is out of date."), show_alert=True)
    user_id = user.id  # the row is about to go
    await state.clear()  # the FSM storage may live outside the database (Redis)
    # Out of other people's unfinished forms too (an owner's payout form to them), before
    # the commit: once the forgetting is committed, no form holds the id.
    await forms.forget_person(state.storage, user_id)
    summary = await privacy.forget(session, user_id)
    orders = summary.anonymised.get("orders.user_id", 0)  # their own, not referred ones
    done = _(
        "Done: your personal data is deleted. Orders kept in the owners' books without your "
        "name or id: {orders}. Goodbye!"
    ).format(orders=orders)
    now = utcnow()
    events.record(session, events.MemberForgotten(user_id))
    await notices.revoke_links(session, summary.invite_links, now)
    if isinstance(query.message, Message):  # the outcome replaces the question, once committed
        await notices.edit_text(session, user_id, query.message.message_id, done, now)
    log.info(
        "user %s forgotten: %s rows deleted, %s anonymised",
        user_id,
        sum(summary.deleted.values()),
        sum(summary.anonymised.values()),
    )
    # Answered by the runner once the transaction committed.
    return query.answer(_("Your data is deleted."))


def router() -> Router:
    r = Router(name="privacy")
    r.message.filter(F.chat.type == "private")
    r.callback_query.filter(F.message.chat.type == "private")
    r.message.register(my_data, Command("mydata"))
    r.message.register(forget_me, Command("forgetme"))
    r.callback_query.register(forget_button, ForgetCB.filter())
    return r

"""/mydata and /forgetme in private chat: a copy of everything stored about the user, and
forgetting them (services.privacy decides what is deleted and what is anonymised).

After /forgetme commits: the user's invite links are revoked at Telegram (best effort, through
the sender; failures are logged and recorded only) and every app-wide object of the
Dispatcher (`Dispatcher(**data)`) that has a `forget_user(user_id)` method is told, so
in-memory caches drop the user (LocaleCache, Sender; the activity buffer implements the same
method to drop counts not yet flushed).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.methods import AnswerCallbackQuery, RevokeChatInviteLink
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.sender import Sender
from handlers.callbacks import ForgetCB
from models import User
from models.db import after_commit
from services import privacy
from views.privacy import forget_text

log = logging.getLogger(__name__)

BACKGROUND: set[asyncio.Future[Any]] = set()


def spawn(awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
    """Run in the background, keeping a reference until done (tests await `drain()`)."""
    task = asyncio.ensure_future(awaitable)
    BACKGROUND.add(task)
    task.add_done_callback(BACKGROUND.discard)
    return task


async def drain() -> None:
    """Wait for every background task started here (used by tests)."""
    while BACKGROUND:
        await asyncio.gather(*list(BACKGROUND), return_exceptions=True)


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


async def _revoke(sender: Sender | None, query: CallbackQuery, links: list[tuple[int, str]]):
    for chat_id, link in links:
        method = RevokeChatInviteLink(chat_id=chat_id, invite_link=link)
        try:
            if sender is not None:
                result = await sender.send(method, chat_id=chat_id)
            else:
                result = await query.bot(method)
        except Exception as exc:
            result = None
            log.warning("revoking an invite link in chat %s failed: %s", chat_id, exc)
        if result is None:
            log.warning("an invite link in chat %s could not be revoked", chat_id)


def _forget_in_memory(data: dict[str, Any], user_id: int) -> None:
    seen: set[int] = set()
    for value in data.values():
        hook = getattr(value, "forget_user", None)
        if hook is None or not callable(hook) or id(value) in seen:
            continue
        seen.add(id(value))
        try:
            hook(user_id)
        except Exception:
            log.exception("%s.forget_user failed", type(value).__name__)


async def forget_button(
    query: CallbackQuery,
    callback_data: ForgetCB,
    session: AsyncSession,
    user: User,
    state: FSMContext,
    **data: Any,
) -> AnswerCallbackQuery | None:
    if callback_data.action == "cancel":
        await _edit(query, _("Nothing was deleted."))
        return query.answer(_("Cancelled."))
    if callback_data.action != "confirm":
        return query.answer(_("This button is out of date."), show_alert=True)
    user_id = user.id  # the row is about to go
    await state.clear()  # the FSM storage may live outside the database (Redis)
    summary = await privacy.forget(session, user_id)
    orders = summary.anonymised.get("orders.user_id", 0)  # their own, not referred ones
    done = _(
        "Done: your personal data is deleted. Orders kept in the owners' books without your "
        "name or id: {orders}. Goodbye!"
    ).format(orders=orders)
    sender = data.get("sender")

    def committed() -> None:
        _forget_in_memory(data, user_id)
        spawn(_edit(query, done))
        if summary.invite_links:
            spawn(_revoke(sender, query, summary.invite_links))

    after_commit(session, committed)
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

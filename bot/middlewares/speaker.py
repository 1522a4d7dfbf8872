"""Who is speaking: only a real member's own account orders, signs up, earns credit, invites
or votes.

Telegram delivers group messages that no person of the group wrote as themselves: anonymous
administrators (from `GroupAnonymousBot`, `sender_chat` = the group), posts on behalf of a
channel or of the group (`sender_chat` set), automatic forwards from a linked channel (from
the service account 777000), bots, and the odd message without `from` at all. Their
`from_user` is nobody's account, so nothing may be recorded for it.

Registered as an inner middleware on the message and callback_query observers, before the
admission gate and the transaction, so it runs after the filters chose a handler. A handler
that needs a person (it takes `user` or `session`, like the TransactionMiddleware decides)
does not run for such a speaker: a command, or anything in private chat, is answered with
what to do instead (write from your own account); other messages are left alone. Nothing is
written: no order, no sign-up, no credit, no invite, no update id. Service messages (a
member joined, the group migrated…) pass: their handlers read the chat, not the speaker.
Handlers that only show something and touch no database (group /help) still answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, ReplyParameters, TelegramObject
from aiogram.types import User as TgUser
from aiogram.utils.i18n import gettext as _

from bot.middlewares.database import DB_PARAMS

log = logging.getLogger(__name__)

TELEGRAM_SERVICE = 777000  # "Telegram": notifications, automatic forwards from channels
GROUP_ANONYMOUS_BOT = 1087968824  # anonymous administrators
CHANNEL_BOT = 136817688  # posts on behalf of a channel (older clients)
NOT_PEOPLE = frozenset({TELEGRAM_SERVICE, GROUP_ANONYMOUS_BOT, CHANNEL_BOT})
SERVICE_FIELDS = (
    "new_chat_members",
    "left_chat_member",
    "new_chat_title",
    "new_chat_photo",
    "delete_chat_photo",
    "group_chat_created",
    "supergroup_chat_created",
    "migrate_to_chat_id",
    "migrate_from_chat_id",
    "pinned_message",
)


def is_person(user: TgUser | None) -> bool:
    """A person's own account: not a bot, not one of Telegram's stand-in accounts."""
    return user is not None and not user.is_bot and user.id not in NOT_PEOPLE


def speaks_for_self(message: Message) -> bool:
    """The message was written by a person as themselves (not anonymously, not on behalf of
    a channel or the group, not by a bot or Telegram)."""
    return message.sender_chat is None and is_person(message.from_user)


def is_service(message: Message) -> bool:
    return any(getattr(message, name, None) for name in SERVICE_FIELDS)


def own_account_text() -> str:
    return _(
        "Please write from your own account: orders, sign-ups, credit and invites belong to "
        "a person, so messages sent anonymously, on behalf of a channel or the group, or by "
        "a bot change nothing."
    )


class SpeakerMiddleware(BaseMiddleware):
    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        handler_object = data.get("handler")
        needs_person = handler_object is not None and bool(handler_object.params & DB_PARAMS)
        if not needs_person:
            return await handler(event, data)
        if isinstance(event, Message):
            if speaks_for_self(event) or is_service(event):
                return await handler(event, data)
            await self._refuse_message(event)
            return None
        if isinstance(event, CallbackQuery) and not is_person(event.from_user):
            log.info("button from a non-person account %s ignored", event.from_user.id)
            await event.answer(own_account_text(), show_alert=True)
            return None
        return await handler(event, data)

    @staticmethod
    async def _refuse_message(message: Message) -> None:
        sender = message.sender_chat.id if message.sender_chat else None
        who = message.from_user.id if message.from_user else None
        log.info("message from %s (on behalf of %s), not a person: nothing changes", who, sender)
        command = (message.text or "").startswith("/")
        if not command and message.chat.type != "private":
            return  # group chatter: nothing to answer
        if message.from_user is not None and message.from_user.is_bot and not command:
            return  # never talk back to a bot's chatter
        await message.bot.send_message(
            message.chat.id,
            own_account_text(),
            reply_parameters=ReplyParameters(
                message_id=message.message_id, allow_sending_without_reply=True
            ),
        )

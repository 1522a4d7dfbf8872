"""Counts group messages into the in-memory ActivityBuffer: no database round trip.

An outer middleware of the message observer, so it sees every message that reaches the
routers before any filter, whether or not a handler matches; group chatter no handler can
take is counted the same way (`countable`) by the fast path before it (bot/middlewares/
chatter.py) and never gets here. It records the chat,
the sender and the time, never the text. Bots, anonymous admins and channels (which post
as bots), service messages and private chats are not counted. A message delivered twice
(a replay) may be counted twice: counts are statistics, not money.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Message, TelegramObject

from bot.middlewares.speaker import is_service, speaks_for_self
from bot.telegram import person
from services.activity import ActivityBuffer

GROUP_TYPES = frozenset({"group", "supergroup"})


def countable(message: Message) -> bool:
    if message.chat.type not in GROUP_TYPES:
        return False
    return speaks_for_self(message) and not is_service(message)


def count(buffer: ActivityBuffer, message: Message) -> None:
    """Count the message if it is countable (never its text)."""
    if countable(message):
        sender = message.from_user
        buffer.record_message(message.chat.id, sender.id, message.date, person=person(sender))


class ActivityMiddleware(BaseMiddleware):
    def __init__(self, buffer: ActivityBuffer) -> None:
        self.buffer = buffer

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, Message):
            count(self.buffer, event)
        return await handler(event, data)

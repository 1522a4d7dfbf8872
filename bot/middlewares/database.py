"""One database transaction per update, opened only when the matched handler needs it.

Registered as an inner middleware on every event observer of the Dispatcher (inner
middlewares of the root router apply to all nested routers), so it runs after filters have
chosen a handler. If that handler names `session` or `user` among its arguments, the update
gets one write transaction: the update id is recorded first (a replay is skipped), the user's
profile is refreshed, the handler runs, and everything commits together; an exception rolls
everything back. Handlers that do not touch the database (most group chatter) pay nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update

from bot.telegram import person
from models import Database
from services import people, updates

log = logging.getLogger(__name__)
DB_PARAMS = frozenset({"session", "user"})


class TransactionMiddleware(BaseMiddleware):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        handler_object = data.get("handler")
        if handler_object is None or not (handler_object.params & DB_PARAMS):
            return await handler(event, data)
        update: Update = data["event_update"]
        bot = data["bot"]
        async with self.db.transaction() as session:
            if not await updates.mark_processed(session, bot.id, update.update_id):
                log.info("update %s was already processed; replay ignored", update.update_id)
                return None
            data["session"] = session
            tg_user = data.get("event_from_user")
            data["user"] = await people.remember(session, person(tg_user)) if tg_user else None
            return await handler(event, data)

"""Gettext I18n: which language each update is answered in.

Order: in a group, the group's language (posts in a group speak the group's language); in
private chat, the user's choice (/lang), else Telegram's `language_code`, else the default.
Choices are cached in memory for a short time so ordinary group chatter costs no database
round trip; a change made through this instance is seen at once, one made through another
instance within `ttl` seconds. Concurrent misses of one key share one read (single flight):
a burst of 1,000 taps in a group whose language is not cached yet reads it once. A change
made while that read is in flight wins over the read's (older) result.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiogram.types import TelegramObject
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n.middleware import I18nMiddleware
from sqlalchemy import select
from sqlalchemy.sql import Select

from models import Database, Group, User
from services.locales import SUPPORTED_LANGUAGES, from_telegram

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"
_MISSING = object()


def make_i18n(default_language: str) -> I18n:
    return I18n(path=LOCALES_DIR, default_locale=default_language, domain=DOMAIN)


class LocaleCache:
    def __init__(self, db: Database, ttl: float = 60.0, max_items: int = 100_000) -> None:
        self.db = db
        self.ttl = ttl
        self.max_items = max_items
        self._users: dict[int, tuple[float, str | None]] = {}
        self._groups: dict[int, tuple[float, str | None]] = {}
        # reads in flight, one per key: concurrent misses await the same task
        self._loading: dict[tuple[str, int], asyncio.Task[str | None]] = {}
        self.reads = 0  # database reads made (single-flight tests count them)

    def _get(self, table: dict[int, tuple[float, str | None]], key: int) -> Any:
        hit = table.get(key)
        if hit is None or hit[0] < time.monotonic():
            return _MISSING
        return hit[1]

    def _put(self, table: dict[int, tuple[float, str | None]], key: int, value: str | None) -> None:
        if len(table) >= self.max_items:
            table.clear()
        table[key] = (time.monotonic() + self.ttl, value)

    def set_user(self, user_id: int, language: str | None) -> None:
        self._loading.pop(("user", user_id), None)  # a read in flight must not overwrite it
        self._put(self._users, user_id, language)

    def set_group(self, chat_id: int, language: str | None) -> None:
        self._loading.pop(("group", chat_id), None)
        self._put(self._groups, chat_id, language)

    def forget_group(self, chat_id: int) -> None:
        self._loading.pop(("group", chat_id), None)
        self._groups.pop(chat_id, None)

    def forget_user(self, user_id: int) -> None:
        """/forgetme: drop the user's language (called after the commit)."""
        self._loading.pop(("user", user_id), None)
        self._users.pop(user_id, None)

    async def _load(
        self, kind: str, table: dict[int, tuple[float, str | None]], key: int, query: Select
    ) -> str | None:
        value = self._get(table, key)
        if value is not _MISSING:
            return value
        if self.db.current() is not None:  # inside a transaction: read through it, alone
            self.reads += 1
            async with self.db.read() as session:
                return await session.scalar(query)
        task = self._loading.get((kind, key))
        if task is None:
            task = asyncio.ensure_future(self._read(kind, table, key, query))
            self._loading[(kind, key)] = task
        # shielded: a waiter cancelled (e.g. its update timed out) does not cancel the others'
        return await asyncio.shield(task)

    async def _read(
        self, kind: str, table: dict[int, tuple[float, str | None]], key: int, query: Select
    ) -> str | None:
        me = asyncio.current_task()
        try:
            self.reads += 1
            async with self.db.read() as session:
                value = await session.scalar(query)
            if self._loading.get((kind, key)) is me:  # not superseded by a change meanwhile
                self._put(table, key, value)
            return value
        finally:
            if self._loading.get((kind, key)) is me:
                del self._loading[(kind, key)]

    async def user_language(self, user_id: int) -> str | None:
        query = select(User.language).where(User.id == user_id)
        return await self._load("user", self._users, user_id, query)

    async def group_language(self, chat_id: int) -> str | None:
        query = select(Group.language).where(Group.chat_id == chat_id)
        return await self._load("group", self._groups, chat_id, query)


class LocaleMiddleware(I18nMiddleware):
    def __init__(self, i18n: I18n, cache: LocaleCache) -> None:
        super().__init__(i18n=i18n)
        self.cache = cache

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        chat = data.get("event_chat")
        user = data.get("event_from_user")
        if chat is not None and chat.type != "private":
            language = await self.cache.group_language(chat.id)
            if language in SUPPORTED_LANGUAGES:
                return language
            if user is not None and (tg := from_telegram(user.language_code)):
                return tg
            return self.i18n.default_locale
        if user is not None:
            chosen = await self.cache.user_language(user.id)
            if chosen in SUPPORTED_LANGUAGES:
                return chosen
            if tg := from_telegram(user.language_code):
                return tg
        return self.i18n.default_locale

"""Fixtures: every database test runs on SQLite and, when TEST_POSTGRES_URL is set, on
PostgreSQL too (under CI=true an unset or unreachable PostgreSQL is a failure)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiogram.filters.callback_data import CallbackData
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage
from aiogram.types import Chat, Update, User
from sqlalchemy import text

from bot.config import Settings
from bot.factory import App, create_app
from bot.runner import deliver
from models import Base, Database
from services.timezones import Clock, utcnow
from tests.builders import Updates, private
from tests.fake_api import FakeTelegram

TOKEN = "123456789:AAHfakeTokenForTestsOnly_abcdefghijkl"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _postgres_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        if IN_CI:
            pytest.fail("CI=true but TEST_POSTGRES_URL is not set: PostgreSQL must be tested")
        pytest.skip("PostgreSQL not tested: set TEST_POSTGRES_URL to run these tests on it")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'tuan.db'}"
    return _postgres_url()


async def reset_schema(db: Database, *, create: bool = True) -> None:
    async with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        else:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        if create:
            await conn.run_sync(Base.metadata.create_all)


async def open_database(url: str, *, create: bool = True) -> Database:
    database = Database(url)
    try:
        await reset_schema(database, create=create)
    except OSError as exc:  # PostgreSQL not reachable
        await database.dispose()
        message = f"PostgreSQL at TEST_POSTGRES_URL is unreachable: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return database


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await open_database(database_url)
    yield database
    await database.dispose()


def make_settings(database_url: str, tmp_path: Path, **overrides) -> Settings:
    values = {
        "bot_token": TOKEN,
        "database_url": database_url,
        "data_dir": str(tmp_path / "data"),
        "default_timezone": "Asia/Shanghai",
        "default_language": "en",
        "default_currency": "CNY",
        "admin_ids": "42",
        # cash only unless a test offers more (the wizard then has no pay step)
        "stars_payments": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


class SettableClock(Clock):
    """The app's clock in tests: the real time until `set`, then that moment until set again."""

    def __init__(self, moment: datetime | None = None) -> None:
        self.moment = moment

    def set(self, moment: datetime | None) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment if self.moment is not None else utcnow()


def chat_id_of(chat: int | Chat | User) -> int:
    return chat if isinstance(chat, int) else chat.id


@dataclass
class Harness:
    """The real app with a fake Telegram: feed updates, read what the bot sent; and the
    conversation: `say` a message, `tap` a button, read the `last` message and its
    `buttons`."""

    app: App
    api: FakeTelegram
    updates: Updates

    @property
    def db(self) -> Database:
        return self.app.db

    @property
    def clock(self) -> SettableClock:
        """The app's clock (`harness.clock.set(moment)` freezes the time handlers read)."""
        return self.app.clock  # type: ignore[return-value]

    async def feed(self, update: Update):
        """Through the runner, as in production: a failure is recorded, retried or acknowledged
        (a transient one is tried once here: its record says "retrying")."""
        return await deliver(self.app, update)

    async def settle(self) -> None:
        """Wait for what committed updates set going: post edits, the outbox."""
        await self.app.settle()

    # ------------------------------------------------------------------ the conversation
    async def send(
        self, user: User, text: str | None, chat: Chat | None = None, **fields: Any
    ) -> None:
        """`user` sends `text` (a message, or a /command) in `chat`, by default their
        private chat; `fields` are further Message fields (location, photo…)."""
        await self.feed(self.updates.message(chat or private(user), user, text, **fields))

    async def say(
        self,
        user: User,
        text: str | None,
        chat: Chat | None = None,
        *,
        expect: int | None = None,
        **fields: Any,
    ) -> SendMessage:
        """`send`, then the last message the bot sent to that chat. With `expect`, exactly
        that many messages were sent to the chat in answer."""
        chat = chat or private(user)
        before = len(self.api.sent(chat.id))
        await self.send(user, text, chat, **fields)
        sent = self.api.sent(chat.id)
        if expect is not None:
            assert len(sent) == before + expect, [r.text for r in sent[before:]]
        return sent[-1]

    async def tap(
        self,
        user: User,
        data: str | CallbackData,
        chat: Chat | None = None,
        message_id: int = 1,
    ) -> AnswerCallbackQuery:
        """`user` presses a button with `data` on the bot's message `message_id` in `chat`
        (their private chat by default); the callback is answered exactly once."""
        packed = data if isinstance(data, str) else data.pack()
        before = len(self.api.answers())
        await self.feed(self.updates.callback(user, packed, chat=chat, message_id=message_id))
        answers = self.api.answers()
        assert len(answers) == before + 1, "every callback is answered exactly once"
        return answers[-1]

    def last(self, chat: int | Chat | User) -> SendMessage:
        """The last message the bot sent to `chat`."""
        return self.api.sent(chat_id_of(chat))[-1]

    def last_edit(self, chat: int | Chat | User | None = None) -> EditMessageText:
        """The last message text the bot edited (in `chat`, if given)."""
        edits = self.api.of(EditMessageText)
        if chat is not None:
            edits = [e for e in edits if e.chat_id == chat_id_of(chat)]
        return edits[-1]

    @staticmethod
    def buttons(message: Any) -> dict[str, str | None]:
        """A message's inline buttons: text → callback data (none: {})."""
        markup = message.reply_markup
        if markup is None:
            return {}
        return {b.text: b.callback_data for row in markup.inline_keyboard for b in row}

    @staticmethod
    def callbacks(message: Any) -> list[str | None]:
        """The callback data of a message's inline buttons, in order (none: []); buttons
        without any (a link, Share's chat picker) are left out."""
        markup = message.reply_markup
        if markup is None:
            return []
        return [
            b.callback_data
            for row in markup.inline_keyboard
            for b in row
            if b.callback_data is not None
        ]


@pytest.fixture
async def harness(settings: Settings, db: Database) -> AsyncIterator[Harness]:
    api = FakeTelegram()
    app = create_app(settings, session=api, db=db, clock=SettableClock())
    yield Harness(app, api, Updates())
    await app.close()
    # Telegram refuses texts over 4096, captions over 1024 and alerts over 200 characters:
    # no test may have made the bot send one (tests of the refusal itself empty the list)
    assert not api.refused, f"sent beyond Telegram's limits: {api.refused[0]!r}"[:500]

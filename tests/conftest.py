"""Fixtures: every database test runs on SQLite and, when TEST_POSTGRES_URL is set, on
PostgreSQL too (under CI=true an unset or unreachable PostgreSQL is a failure)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiogram.types import Update
from sqlalchemy import text

from bot.config import Settings
from bot.factory import App, create_app
from bot.runner import process
from models import Base, Database
from tests.builders import Updates
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
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@dataclass
class Harness:
    """The real app with a fake Telegram: feed updates, read what the bot sent."""

    app: App
    api: FakeTelegram
    updates: Updates

    @property
    def db(self) -> Database:
        return self.app.db

    async def feed(self, update: Update):
        return await process(self.app, update)

    async def settle(self) -> None:
        """Wait for what committed updates set going: post edits, the outbox."""
        await self.app.settle()


@pytest.fixture
async def harness(settings: Settings, db: Database) -> AsyncIterator[Harness]:
    api = FakeTelegram()
    app = create_app(settings, session=api, db=db)
    yield Harness(app, api, Updates())
    await app.close()

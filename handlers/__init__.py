"""The map of the bot: routers in the order they are tried.

Each call builds fresh routers, so several Dispatchers can live in one process (tests,
benchmarks, two instances sharing a database).
"""

from __future__ import annotations

from aiogram import Router

from handlers import groups, settings, start


def build_routers() -> list[Router]:
    return [
        groups.router(),  # my_chat_member, chat_member, migrations, group /help and /settings
        settings.router(),  # private /settings wizard
        start.router(),  # private /start, /lang, /help
        start.fallback_router(),  # private: unknown commands and stray text get a hint
    ]

"""Builds the Bot, the Dispatcher, its routers and middlewares. Production and tests both
use `create_app`, so tests drive exactly the Dispatcher that runs in production."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.base import BaseSession
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.utils.i18n import I18n

from bot.config import Settings
from bot.effects import Effects
from bot.i18n import LocaleCache, LocaleMiddleware, make_i18n
from bot.middlewares.activity import ActivityMiddleware
from bot.middlewares.admission import AdmissionMiddleware
from bot.middlewares.chatter import ChatterMiddleware
from bot.middlewares.database import TransactionMiddleware
from bot.middlewares.speaker import SpeakerMiddleware
from bot.moderation import ModerationGate
from bot.outbox import OutboxSender
from bot.posts import PostRefresher
from bot.sender import Sender
from bot.storage import SQLStorage
from bot.telegram import admin_fetcher, make_bot, member_fetcher
from handlers import build_routers
from models import Database
from services.activity import ActivityBuffer
from services.admins import AdminDirectory
from services.admission import AdmissionGate
from services.inline_cards import MembershipCheck
from services.timezones import Clock

log = logging.getLogger(__name__)

# chat_member is not sent unless asked for; the bot needs it to see joins and admin changes.
REQUIRED_UPDATES = ("message", "callback_query", "my_chat_member", "chat_member")


@dataclass
class App:
    settings: Settings
    db: Database
    bot: Bot
    dispatcher: Dispatcher
    i18n: I18n
    locales: LocaleCache
    admins: AdminDirectory
    activity: ActivityBuffer = field(default_factory=ActivityBuffer)

    @property
    def sender(self) -> Sender:
        return self.dispatcher.workflow_data["sender"]

    @property
    def outbox(self) -> OutboxSender:
        return self.dispatcher.workflow_data["outbox"]

    @property
    def posts(self) -> PostRefresher:
        return self.dispatcher.workflow_data["posts"]

    @property
    def clock(self) -> Clock:
        return self.dispatcher.workflow_data["clock"]

    async def settle(self, rounds: int = 50) -> None:
        """Wait until the background work of what has committed is done: post edits and
        every due outbox row (tests and benchmarks; the running bot's outbox loop does
        this by itself)."""
        for _ in range(rounds):
            await self.posts.flush()
            if not await self.outbox.run_once():
                await self.posts.flush()
                return

    async def flush_activity(self) -> bool:
        """Write the activity counts kept in memory; on failure they stay buffered."""
        try:
            await self.activity.flush_to(self.db)
            return True
        except Exception:
            log.exception("activity flush failed; %d entries kept", self.activity.pending)
            return False

    @property
    def allowed_updates(self) -> list[str]:
        used = set(self.dispatcher.resolve_used_update_types())
        return sorted(used | set(REQUIRED_UPDATES))

    async def close(self) -> None:
        await self.outbox.stop()  # stop claiming; what it holds is sent or left to its lease
        posts = self.dispatcher.workflow_data.get("posts")
        if posts is not None:  # finish pending edits of deal posts first
            await posts.close()
        sender = self.dispatcher.workflow_data.get("sender")
        if sender is not None:  # then every send still queued
            await sender.close()
        await self.flush_activity()  # the last counts kept in memory
        await self.dispatcher.storage.close()
        await self.dispatcher.fsm.events_isolation.close()
        await self.bot.session.close()
        await self.db.dispose()


def make_storage(settings: Settings, db: Database) -> tuple[BaseStorage, BaseEventIsolation]:
    """SQL storage by default (survives restarts); Redis with event isolation across
    instances when REDIS_URL is set."""
    if settings.redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        storage = RedisStorage.from_url(
            settings.redis_url,
            key_builder=DefaultKeyBuilder(prefix="tuan", with_bot_id=True, with_destiny=True),
        )
        return storage, storage.create_isolation()
    return SQLStorage(db), SimpleEventIsolation()


def inline_sync_filters(router: Router) -> int:
    """Run synchronous filters (magic `F` filters, lambdas) in the event loop.

    aiogram calls every synchronous filter through `asyncio.to_thread`; ours are pure checks
    of the update, so the thread hop (tens of microseconds, a dozen per group message) is
    pure overhead (measured by bench/throughput.py). Returns how many were changed."""
    changed = 0
    for each in router.chain_tail:
        for observer in each.observers.values():
            filters = list(observer._handler.filters or [])
            for handler in observer.handlers:
                filters += handler.filters or []
            for item in filters:
                if not item.awaitable:
                    item.callback = _awaitable(item.callback)
                    item.awaitable = True
                    changed += 1
    return changed


def _awaitable(callback: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        return callback(*args, **kwargs)

    return call


def create_app(
    settings: Settings,
    *,
    session: BaseSession | None = None,
    db: Database | None = None,
    clock: Clock | None = None,
) -> App:
    db = db or Database(settings.database_url)
    bot = make_bot(settings, session)
    i18n = make_i18n(settings.default_language)
    locales = LocaleCache(db)
    admins = AdminDirectory(admin_fetcher(bot), settings.admin_cache_seconds)
    storage, isolation = make_storage(settings, db)
    sender = Sender(
        bot,
        db,
        chat_interval=settings.send_chat_interval,
        group_limit=settings.send_group_per_minute,
        group_window=60.0,
        global_limit=settings.send_global_per_second,
        global_window=1.0,
    )
    shop = settings.webapp_short_name if settings.shop_links else None
    posts = PostRefresher(bot, db, i18n, sender=sender, shop=shop)
    activity = ActivityBuffer()
    gate = AdmissionGate()
    moderation = ModerationGate(db)
    outbox = OutboxSender(
        db,
        sender,
        i18n,
        lease=settings.outbox_lease_seconds,
        poll=settings.outbox_poll_seconds,
        provider_token=settings.provider_token,
        timezone=settings.default_timezone,
    )
    db.effects = Effects(posts, gate, activity, outbox, sender, locales, moderation)
    dispatcher = Dispatcher(
        storage=storage,
        events_isolation=isolation,
        settings=settings,
        db=db,
        locales=locales,
        admins=admins,
        posts=posts,
        sender=sender,
        outbox=outbox,
        activity=activity,
        gate=gate,
        moderation=moderation,  # anti-spam rules cached per group, flood windows
        memberships=MembershipCheck(member_fetcher(bot)),  # members-only inline cards
        clock=clock or Clock(),  # handlers take `clock` and read the time from it
    )
    dispatcher.include_routers(*build_routers())
    inline_sync_filters(dispatcher)
    LocaleMiddleware(i18n, locales).setup(dispatcher)
    dispatcher.message.outer_middleware(ActivityMiddleware(activity))  # counts, no SQL
    # group chatter no handler can take: counted and finished before the routers
    ChatterMiddleware(activity, moderation).setup(dispatcher)
    speaker = SpeakerMiddleware()  # first: only a person's own account records anything
    dispatcher.callback_query.middleware(speaker)
    dispatcher.message.middleware(speaker)
    admission = AdmissionMiddleware(db, gate)  # before the transaction: sold-out taps skip it
    dispatcher.callback_query.middleware(admission)
    dispatcher.message.middleware(admission)
    transaction = TransactionMiddleware(db)
    for name, observer in dispatcher.observers.items():
        if name not in {"update", "error"}:
            observer.middleware(transaction)
    return App(settings, db, bot, dispatcher, i18n, locales, admins, activity)

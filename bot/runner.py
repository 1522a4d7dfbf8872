"""Running the bot: polling or webhook, heartbeat, housekeeping and graceful shutdown.

Polling: updates of one batch are processed concurrently across chats and in order within
a chat; the next getUpdates (which confirms the batch to Telegram) is sent only after the
whole batch has been processed, so a crash loses nothing: Telegram sends the batch again
and replay protection skips what had committed.

Webhook: a request is answered only after its update was processed and its transaction
committed (aiogram's background mode answers first; we do not use it). Requests without the
right secret header get 401 and touch nothing. On SIGTERM the server stops taking updates
(503, so Telegram retries elsewhere or later) and waits for those in flight.

Failed updates (`deliver`; bot/failures.py decides transient or permanent once): a permanent
failure (a data error, a bug) is logged with the update id, answered by the errors router,
recorded in failed_updates as "failed" together with the update id as processed, and
acknowledged. A transient one (connection, lock, Telegram network) is counted in the same
table and tried again — the webhook answers 500 so Telegram delivers it again, polling tries
again in-process after RETRY_BACKOFF, 2×RETRY_BACKOFF… — until UPDATE_ATTEMPTS attempts have
failed; then it is set aside ("set_aside", processed) and acknowledged. If not even the
record can be written (the database is down), a transient failure is left for Telegram to
deliver again (webhook; polling logs it and moves on after its attempts) and a permanent one
is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiogram.exceptions import (
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError
from aiohttp import web

from bot import failures
from bot.commands import set_commands
from bot.factory import App
from scheduler.jobs import TICK_SECONDS, Jobs
from services import failures as failure_service
from services import outbox as outbox_service
from services import updates as update_service
from services.timezones import utcnow

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
HEARTBEAT_SECONDS = 15.0
PRUNE_SECONDS = 3600.0
OUTBOX_KEEP = timedelta(days=30)  # sent and failed outbox rows are kept this long
RETRY_BACKOFF = 0.5  # polling: seconds before the second attempt of an update (then ×2, ×3…)
RETRIED_REMEMBERED = 10_000  # webhook: ids that failed transiently here, to clear on success


def chat_key(update: Update) -> int:
    """Updates with the same key are processed in order (one conversation)."""
    try:
        event = update.event
    except UpdateTypeLookupError:  # a type this aiogram does not know: the Dispatcher skips it
        return -update.update_id
    chat = getattr(event, "chat", None)
    if chat is None:
        message = getattr(event, "message", None)
        chat = getattr(message, "chat", None)
    if chat is not None:
        return chat.id
    user = getattr(event, "from_user", None)
    if user is not None:
        return user.id
    return -update.update_id


class InFlight:
    """Counts updates being processed, so shutdown can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __enter__(self) -> InFlight:
        self.count += 1
        self._idle.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def drained(self, within: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), within)
            return True
        except TimeoutError:
            return False


async def process(
    app: App, update: Update, inflight: InFlight | None = None, *, retried: bool = False
) -> Any:
    """Feed one update through the Dispatcher; a method a handler returned is sent too.
    `retried` (handlers see it as `update_retried`): an earlier attempt failed transiently."""
    inflight = inflight or InFlight()
    with inflight:
        result = await app.dispatcher.feed_update(app.bot, update, update_retried=retried)
        if isinstance(result, TelegramMethod):
            await app.dispatcher.silent_call_request(app.bot, result)
        return result


async def deliver(
    app: App, update: Update, inflight: InFlight | None = None, *, retried: bool = False
) -> bool:
    """Process one update and settle a failure (see the module's docstring). True when
    Telegram may forget the update: it went through, failed for good, or was set aside;
    False when it should be tried again. `retried`: an earlier attempt failed transiently
    (a success then removes its "retrying" record)."""
    try:
        await process(app, update, inflight, retried=retried)
    except Exception as exc:
        return await settle_failure(app, update, exc)
    if retried:
        try:
            async with app.db.transaction() as session:
                await failure_service.recovered(session, app.bot.id, update.update_id)
        except Exception as exc:
            log.warning("update %s went through; its retry record stays: %s", update.update_id, exc)
    return True


async def settle_failure(app: App, update: Update, exc: BaseException) -> bool:
    """Log, count and record a failed attempt; True when the update is acknowledged."""
    update_id = update.update_id
    transient = failures.is_transient(exc)
    why = failures.reason(exc)
    if transient:
        log.warning("update %s failed for a transient reason: %s", update_id, why, exc_info=exc)
    else:
        log.error("update %s failed for good: %s", update_id, why, exc_info=exc)
    try:
        async with app.db.transaction() as session:
            outcome = await failure_service.record(
                session,
                bot_id=app.bot.id,
                update_id=update_id,
                transient=transient,
                bound=app.settings.update_attempts,
                reason=why,
                now=utcnow(),
                **failures.facts(update),
            )
    except Exception as problem:
        log.error(
            "update %s: its failure could not be recorded (%s)%s",
            update_id,
            failures.reason(problem),
            "; it will be tried again" if transient else "; acknowledged",
        )
        return not transient
    if outcome.status == failure_service.SET_ASIDE:
        log.error("update %s set aside after %d attempts: %s", update_id, outcome.attempts, why)
    elif outcome.status == failure_service.RETRYING:
        log.info("update %s: attempt %d failed; to be tried again", update_id, outcome.attempts)
    return outcome.acknowledged


async def process_batch(
    app: App, batch: Iterable[Update], inflight: InFlight, limit: int = 64
) -> None:
    by_chat: dict[int, list[Update]] = defaultdict(list)
    for update in batch:
        by_chat[chat_key(update)].append(update)
    semaphore = asyncio.Semaphore(limit)
    attempts = app.settings.update_attempts

    async def run_chat(items: list[Update]) -> None:
        async with semaphore:
            for update in items:  # the chat's next update waits for this one's retries
                for attempt in range(1, attempts + 1):
                    try:
                        if await deliver(app, update, inflight, retried=attempt > 1):
                            break
                    except Exception:  # a broken update must not stop the others
                        log.exception("update %s failed", update.update_id)
                        break
                    if attempt < attempts:
                        await asyncio.sleep(RETRY_BACKOFF * attempt)
                else:
                    log.error(
                        "update %s failed %d times and could not be set aside; skipped",
                        update.update_id,
                        attempts,
                    )

    await asyncio.gather(*(run_chat(items) for items in by_chat.values()))


async def poll(
    app: App, stop: asyncio.Event, *, long_poll: int = 30, inflight: InFlight | None = None
) -> None:
    bot = app.bot
    inflight = inflight or InFlight()
    await bot.delete_webhook(drop_pending_updates=False)
    offset: int | None = None
    backoff = 1.0
    allowed = app.allowed_updates
    log.info("polling for %s", ", ".join(allowed))
    while not stop.is_set():
        fetch = asyncio.ensure_future(
            bot.get_updates(offset=offset, timeout=long_poll, allowed_updates=allowed)
        )
        stopper = asyncio.ensure_future(stop.wait())
        done, _pending = await asyncio.wait({fetch, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if fetch not in done:  # stopping while the long poll waits: nothing was taken
            fetch.cancel()
            break
        try:
            batch = fetch.result()
        except TelegramUnauthorizedError:
            raise
        except TelegramRetryAfter as exc:
            await _sleep_or_stop(stop, exc.retry_after)
            continue
        except (TelegramNetworkError, TelegramServerError, OSError) as exc:
            log.warning("getUpdates failed (%s); retrying in %.0f s", type(exc).__name__, backoff)
            await _sleep_or_stop(stop, backoff)
            backoff = min(backoff * 2, 60.0)
            continue
        backoff = 1.0
        if batch:
            await process_batch(app, batch, inflight)
            offset = batch[-1].update_id + 1
    if offset is not None:
        try:  # confirm the last batch so it is not delivered again after a restart
            await bot.get_updates(offset=offset, timeout=0, limit=1, allowed_updates=allowed)
        except Exception as exc:  # replay protection covers it anyway
            log.info("could not confirm the last batch: %s", type(exc).__name__)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


def webhook_app(app: App, stop: asyncio.Event, inflight: InFlight) -> web.Application:
    settings = app.settings
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    if not secret:
        raise RuntimeError("webhook mode needs WEBHOOK_SECRET")

    retried: set[int] = set()  # update ids that failed transiently here and will come again

    async def receive(request: web.Request) -> web.Response:
        if not secrets.compare_digest(request.headers.get(SECRET_HEADER, ""), secret):
            return web.Response(status=401, text="Unauthorized")
        if stop.is_set():
            return web.Response(status=503, text="Shutting down")
        try:
            update = Update.model_validate(await request.json(), context={"bot": app.bot})
        except ValueError:
            return web.Response(status=400, text="Bad update")
        update_id = update.update_id
        if not await deliver(app, update, inflight, retried=update_id in retried):
            if len(retried) >= RETRIED_REMEMBERED:
                retried.clear()
            retried.add(update_id)
            return web.Response(status=500, text="Retry")  # Telegram delivers it again
        retried.discard(update_id)
        return web.Response(text="ok")

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    web_app = web.Application()
    web_app.router.add_post(settings.webhook_path, receive)
    web_app.router.add_get("/healthz", health)
    if settings.webapp_url:  # the Mini App storefront is served by the same server
        from bot.webapp.routes import add_routes

        add_routes(web_app, app)
    return web_app


def webapp_only(app: App) -> web.Application:
    """Polling mode with WEBAPP_URL: the server serves the Mini App (and /healthz) only."""
    from bot.webapp.routes import add_routes

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    web_app = web.Application()
    web_app.router.add_get("/healthz", health)
    add_routes(web_app, app)
    return web_app


async def start_webapp(app: App) -> web.AppRunner | None:
    """Polling mode: serve the Mini App on WEBHOOK_HOST:WEBHOOK_PORT when WEBAPP_URL is set."""
    settings = app.settings
    if not settings.webapp_url:
        return None
    runner = web.AppRunner(webapp_only(app), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.webhook_host, settings.webhook_port)
    await site.start()
    log.info(
        "Mini App served on %s:%s/app/ (public %s)",
        settings.webhook_host,
        settings.webhook_port,
        settings.webapp_url,
    )
    return runner


async def serve_webhook(app: App, stop: asyncio.Event, *, inflight: InFlight | None = None) -> None:
    settings = app.settings
    inflight = inflight or InFlight()
    runner = web.AppRunner(webhook_app(app, stop, inflight), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.webhook_host, settings.webhook_port)
    await site.start()
    await app.bot.set_webhook(
        url=f"{settings.webhook_url}{settings.webhook_path}",
        secret_token=settings.webhook_secret.get_secret_value(),
        allowed_updates=app.allowed_updates,
        drop_pending_updates=False,
    )
    log.info(
        "webhook listening on %s:%s%s",
        settings.webhook_host,
        settings.webhook_port,
        settings.webhook_path,
    )
    try:
        await stop.wait()
    finally:
        drained = await inflight.drained(within=50)
        log.info("webhook stopping; in-flight updates drained: %s", drained)
        await runner.cleanup()


async def heartbeat(path: Path, stop: asyncio.Event, every: float = HEARTBEAT_SECONDS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    while not stop.is_set():
        path.write_text(str(int(time.time())))  # noqa: ASYNC240 - a few bytes, every 15 s
        await _sleep_or_stop(stop, every)


async def housekeeping(app: App, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            async with app.db.transaction() as session:
                removed = await update_service.prune(session)
                settled = await outbox_service.prune(session, utcnow() - OUTBOX_KEEP)
                failed = await failure_service.prune(session, utcnow())
            if removed or settled or failed:
                log.info(
                    "pruned %d old processed-update ids, %d outbox rows, %d failed updates",
                    removed,
                    settled,
                    failed,
                )
        except Exception:
            log.exception("housekeeping failed")
        await _sleep_or_stop(stop, PRUNE_SECONDS)


async def activity_flusher(app: App, stop: asyncio.Event, every: float | None = None) -> None:
    """Write the activity counts kept in memory every ACTIVITY_FLUSH_SECONDS (a failed
    flush keeps them for the next one). The last flush is App.close's, after the updates
    in flight have finished."""
    every = every if every is not None else app.settings.activity_flush_seconds
    while not stop.is_set():
        await _sleep_or_stop(stop, every)
        await app.flush_activity()


def start_jobs(app: App, every: float | None = None) -> Jobs:
    """The APScheduler job (scheduler/jobs.py) that publishes, closes, reminds and posts what
    the database says is due; `await jobs.stop()` stops it."""
    jobs = Jobs(app, every if every is not None else TICK_SECONDS)
    jobs.start()
    return jobs


async def serve(app: App, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or `stop` is set), then drain and close."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread
            pass
    me = await app.bot.get_me()
    log.info("started as @%s (id %s) in %s mode", me.username, me.id, app.settings.mode.value)
    await set_commands(app.bot, app.i18n, app.settings.default_language)
    if app.settings.webapp_url:
        from bot.webapp.menu import set_menu_button

        await set_menu_button(
            app.bot, app.settings.webapp_url, app.i18n, app.settings.default_language
        )
    inflight = InFlight()
    background = [
        asyncio.create_task(heartbeat(Path(app.settings.data_dir) / "heartbeat", stop)),
        asyncio.create_task(housekeeping(app, stop)),
        asyncio.create_task(activity_flusher(app, stop)),
    ]
    jobs = start_jobs(app)
    app.outbox.start()  # what is promised and due, this instance's or a dead one's
    await app.dispatcher["moderation"].warm()  # the anti-spam rules: chatter reads no SQL
    await app.posts.catch_up()  # posts whose deal changed after their last render
    try:
        if app.settings.mode.value == "webhook":
            await serve_webhook(app, stop, inflight=inflight)
        else:
            web_runner = await start_webapp(app)
            try:
                await poll(app, stop, inflight=inflight)
            finally:
                if web_runner is not None:
                    await web_runner.cleanup()
    finally:
        stop.set()
        await inflight.drained(within=50)
        await jobs.stop()
        await asyncio.gather(*background, return_exceptions=True)
        await app.flush_activity()  # App.close flushes again: whatever came in after this
        log.info("stopped")

"""The in-process scheduler: one APScheduler 3 job that runs `tick` every few seconds.

The DATABASE holds the schedule (deals' opens-at / closes-at, reminders taken, content posts'
next runs), so APScheduler only provides the heartbeat: one periodic job, `max_instances=1`,
`coalesce=True`. Each `tick(app, now)`:

1. `scheduler.deals.run_due`: publication at opens-at, closing at closes-at, lost
   announcements and unsent posts (each exactly once through conditional updates);
2. reminders before closing (each deal's own, by default 2 h and 15 min; kinds like "m120"):
   taken once per deal and kind by inserting into
   `deal_reminders_sent` (unique) in a transaction, then sent into each group with a post, as
   a reply to it, in the group's language. Stale ones (after downtime) are recorded as
   skipped and logged, never sent late;
3. content posts whose next run came: each target is claimed with a conditional UPDATE (one
   instance wins), sent, then moved to its next FUTURE run in the group's timezone;
4. offers, polls and lotteries whose time came (teams, bargains, `close_polls`,
   `run_lotteries`);
5. offline events' reminders to attendees, 24 h and 2 h before (services.gatherings);
6. newcomers' challenges not answered in time fail (services.moderation);
7. `digest_hook(app, now)`: the daily digests (scheduler/digests.py).

After a restart whatever fell due while the bot was down is thus handled once. Two instances
sharing a database never do the same item twice.

Sends go through the app's Sender (`dispatcher["sender"]`, bot/sender.py) when the
Dispatcher carries one; otherwise straight to the Bot API with 403 / 429 handling here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from typing import TYPE_CHECKING, Any

from aiogram.methods import SendMessage, SendPhoto, TelegramMethod
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.deals import DueResult, run_due
from services import (
    bargains,
    calendar,
    gatherings,
    lotteries,
    moderation,
    notices,
    offers,
    payments,
    polls,
    teams,
)
from services.timezones import utcnow

if TYPE_CHECKING:
    from bot.factory import App

log = logging.getLogger(__name__)
TICK_SECONDS = 10.0


@dataclass
class TickResult:
    deals: DueResult | None = None
    reminders_sent: list[tuple[int, str]] = field(default_factory=list)
    reminders_skipped: list[tuple[int, str]] = field(default_factory=list)
    posts_sent: list[tuple[int, int]] = field(default_factory=list)  # (post id, group id)
    posts_failed: list[tuple[int, int]] = field(default_factory=list)
    lapsed: int = 0  # unpaid orders cancelled at their payment deadline
    waitlist_served: int = 0  # members of a waitlist who got a freed unit
    teams_failed: int = 0  # team buys not filled in time
    bargains_expired: int = 0  # bargains not bought in time
    polls_closed: int = 0  # polls whose closing time came (stopPoll rows promised)
    lotteries_closed: int = 0  # lotteries whose entries closed (entry list posted)
    lotteries_drawn: int = 0  # lotteries drawn (secret revealed, winners told)
    lottery_redraws: int = 0  # winners who did not claim in time, replaced
    event_reminders: int = 0  # reminders before offline events promised to attendees
    challenges_failed: int = 0  # new members' challenges not passed in time


# ---------------------------------------------------------------- sending


async def deliver(app: App, method: TelegramMethod[Any], chat_id: int) -> tuple[Any, str | None]:
    """Send through the app's sender: (result, None) or (None, reason); a reason that may
    pass (network, a long 429) starts with "retry:"."""
    outcome = await app.sender.deliver(method, chat_id=chat_id)
    if outcome.ok:
        return outcome.result, None
    return None, ("retry:" if outcome.transient else "") + (outcome.reason or "")


# ---------------------------------------------------------------- reminders


async def send_reminders(app: App, now: datetime, result: TickResult) -> None:
    """Take each due reminder once and promise it to the deal's groups (the outbox sends
    it, as a reply to the deal's post, with the time left at `now`)."""
    async with app.db.read() as session:
        due = await calendar.reminders_due(session, now)
    for item in due:
        outcome = "skipped" if item.stale else "sent"
        try:
            async with app.db.transaction() as session:
                if not await calendar.take_reminder(session, item.deal_id, item.kind, now, outcome):
                    continue  # another instance (or an earlier tick) took it
                if item.stale:
                    told = 0
                else:
                    told = await notices.reminder(session, item.deal_id, item.kind, now)
        except Exception:
            log.exception("deal %s: taking reminder %s failed", item.deal_id, item.kind)
            continue
        if item.stale:
            log.info(
                "deal %s: reminder %s (due %s) is stale; skipped",
                item.deal_id,
                item.kind,
                item.moment.isoformat(),
            )
            result.reminders_skipped.append((item.deal_id, item.kind))
            continue
        log.info("deal %s: reminder %s promised to %d group(s)", item.deal_id, item.kind, told)
        result.reminders_sent.append((item.deal_id, item.kind))


# ---------------------------------------------------------------- content posts


async def run_posts(app: App, now: datetime, result: TickResult) -> None:
    async with app.db.read() as session:
        due = await calendar.due(session, now)
    if not due:
        return
    username = (await app.bot.me()).username
    for target_id in due:
        try:
            async with app.db.transaction() as session:
                if not await calendar.claim(session, target_id, now):
                    continue
                target, post, group = await calendar.claimed(session, target_id)
        except Exception:
            log.exception("scheduled target %s: claim failed", target_id)
            continue
        error: str | None = None
        if not group.is_active:
            error = "group inactive"
        else:
            with app.i18n.context(), app.i18n.use_locale(group.language):
                markup = None
                if post.deal_id is not None and username:
                    link = f"https://t.me/{username}?start=deal_{post.deal_id}"
                    label = "🛒 " + _("Open deal D{id}").format(id=post.deal_id)
                    markup = InlineKeyboardMarkup(
                        inline_keyboard=[[InlineKeyboardButton(text=label, url=link)]]
                    )
            text = escape(post.text, quote=False)
            method: TelegramMethod[Any]
            if post.photo_file_id:
                method = SendPhoto(
                    chat_id=group.chat_id,
                    photo=post.photo_file_id,
                    caption=text or None,
                    reply_markup=markup,
                )
            else:
                method = SendMessage(chat_id=group.chat_id, text=text, reply_markup=markup)
            try:
                _sent, error = await deliver(app, method, group.chat_id)
            except Exception as exc:
                error = f"retry:{type(exc).__name__}: {exc}"
        retry = bool(error and error.startswith("retry:"))
        try:
            async with app.db.transaction() as session:
                following = await calendar.finish(session, target_id, now, error=error, retry=retry)
        except Exception:
            log.exception("scheduled target %s: recording the run failed", target_id)
            following = None
        if error:
            log.warning("scheduled post %s to chat %s failed: %s", post.id, group.chat_id, error)
            result.posts_failed.append((post.id, group.id))
        else:
            log.info(
                "scheduled post %s sent to chat %s; next run %s",
                post.id,
                group.chat_id,
                following.isoformat() if following else "none",
            )
            result.posts_sent.append((post.id, group.id))


# ---------------------------------------------------------------- the tick


async def lapse_payments(app: App, now: datetime, result: TickResult) -> None:
    """Unpaid orders past their payment deadline are cancelled and their units go to the
    waitlists (services.payments), a batch per transaction."""
    while True:
        async with app.db.read() as session:
            if not await payments.any_lapsing(session, now):
                return
        async with app.db.transaction() as session:
            done = await payments.lapse_due(session, now)
        result.lapsed += done.cancelled
        result.waitlist_served += done.admitted
        if done.cancelled < payments.LAPSE_BATCH:
            return


async def _end_offers(app: App, now: datetime, service: Any) -> int:
    """Offers (services.teams, services.bargains) whose time ran out end, a batch per
    transaction; how many."""
    ended = 0
    while True:
        async with app.db.read() as session:
            if not await service.any_expiring(session, now):
                return ended
        async with app.db.transaction() as session:
            batch = await service.expire_due(session, now)
        ended += batch
        if batch < offers.EXPIRE_BATCH:
            return ended


async def expire_teams(app: App, now: datetime, result: TickResult) -> None:
    """Team buys not filled in time fail."""
    result.teams_failed += await _end_offers(app, now, teams)


async def expire_bargains(app: App, now: datetime, result: TickResult) -> None:
    """Bargains not bought in time end."""
    result.bargains_expired += await _end_offers(app, now, bargains)


async def close_polls(app: App, now: datetime, result: TickResult) -> None:
    """Polls whose closing time came are closed, a batch per transaction: a stopPoll row per
    group poll (services.polls; Telegram's own close_date reaches only 600 s ahead)."""
    while True:
        async with app.db.read() as session:
            if not await polls.any_due(session, now):
                return
        async with app.db.transaction() as session:
            closed = await polls.close_due(session, now)
        result.polls_closed += closed
        if closed < polls.CLOSE_BATCH:
            return


async def run_lotteries(app: App, now: datetime, result: TickResult) -> None:
    """Lotteries (services.lotteries): entries close at the deadline, the draw follows
    DRAW_DELAY later, unclaimed winners are redrawn; each a batch per transaction."""
    for step, field_name in (
        (lotteries.close_due, "lotteries_closed"),
        (lotteries.draw_due, "lotteries_drawn"),
        (lotteries.redraw_due, "lottery_redraws"),
    ):
        while True:
            async with app.db.read() as session:
                if not await lotteries.any_due(session, now):
                    return
            async with app.db.transaction() as session:
                done = await step(session, now)
            setattr(result, field_name, getattr(result, field_name) + done)
            if done < lotteries.BATCH:
                break


async def remind_events(app: App, now: datetime, result: TickResult) -> None:
    """Offline events' reminders 24 h and 2 h before the start (services.gatherings), each
    taken once per event, promised to every attendee in the same transaction."""
    async with app.db.read() as session:
        if not await gatherings.any_due(session, now):
            return
    async with app.db.transaction() as session:
        result.event_reminders += await gatherings.remind_due(session, now)


async def expire_challenges(app: App, now: datetime, result: TickResult) -> None:
    """New members' challenges not answered in time fail (they stay restricted)."""
    while True:
        async with app.db.read() as session:
            if not await moderation.any_expiring(session, now):
                return
        async with app.db.transaction() as session:
            batch = await moderation.expire_due(session, now)
        result.challenges_failed += batch
        if batch < moderation.EXPIRE_BATCH:
            return


async def digest_hook(app: App, now: datetime) -> None:
    """The daily digests (scheduler/digests.py): each runs every tick and decides itself,
    from the database, whether a digest is due, and claims it so it goes out once."""
    from scheduler import digests

    await digests.run(app, now)


async def tick(app: App, now: datetime | None = None, *, digests: bool = True) -> TickResult:
    """Everything due at `now` (default: the current time), each step on its own.

    The running bot passes `digests=False` and runs the digests as a job of their own
    (`Jobs`): sending a morning's digests can take minutes (one chat gets a message a
    second), and deal closings, reminders and content posts must not wait behind it."""
    now = now or utcnow()
    result = TickResult()
    try:
        result.deals = await run_due(
            app.bot, app.db, app.i18n, app.sender, now, shop=app.posts.shop
        )
    except Exception:
        log.exception("due-deal check failed")
    steps = (
        send_reminders,
        run_posts,
        lapse_payments,
        expire_teams,
        expire_bargains,
        close_polls,
        run_lotteries,
        remind_events,
        expire_challenges,
    )
    for step in steps:
        try:
            await step(app, now, result)
        except Exception:
            log.exception("scheduler step %s failed", step.__name__)
    if digests:
        try:
            await digest_hook(app, now)
        except Exception:
            log.exception("digest hook failed")
    return result


class Jobs:
    """The app's AsyncIOScheduler with the periodic tick. `start()` inside the event loop;
    `await stop()` waits for a tick in progress (within a timeout) and shuts down."""

    def __init__(self, app: App, every: float = TICK_SECONDS) -> None:
        self.app = app
        self.every = every
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.ticks = 0
        self._running: dict[str, asyncio.Task[Any]] = {}

    async def _tick(self) -> None:
        self._running["tick"] = asyncio.current_task()  # type: ignore[assignment]
        try:
            await tick(self.app, digests=False)
        except Exception:  # pragma: no cover - tick logs its own failures
            log.exception("scheduler tick failed")
        finally:
            self.ticks += 1
            self._running.pop("tick", None)

    async def _digests(self) -> None:
        self._running["digests"] = asyncio.current_task()  # type: ignore[assignment]
        try:
            await digest_hook(self.app, utcnow())
        except Exception:
            log.exception("digest job failed")
        finally:
            self._running.pop("digests", None)

    @property
    def running(self) -> bool:
        return self.scheduler.running

    def start(self) -> None:
        self.scheduler.add_job(
            self._tick,
            IntervalTrigger(seconds=self.every, timezone=UTC),
            id="tick",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC) + timedelta(milliseconds=10),
        )
        self.scheduler.add_job(
            self._digests,
            IntervalTrigger(seconds=self.every, timezone=UTC),
            id="digests",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC) + timedelta(milliseconds=20),
        )
        self.scheduler.start()
        log.info("scheduler started (tick every %.0f s)", self.every)

    async def stop(self, timeout: float = 30.0) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)  # AsyncIOScheduler: runs on the next loop turn
            for _ in range(10):
                await asyncio.sleep(0)
                if not self.scheduler.running:
                    break
        running = [task for task in self._running.values() if not task.done()]
        if running:
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.gather(*running)), timeout)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("scheduler stopped with work in progress: %s", sorted(self._running))
        log.info("scheduler stopped")

"""The one path for everything the bot sends outside an immediate reply: deal posts, edits of
sign-up lists, private notices, digests, content posts.

`await sender.send(method, chat_id=...)` returns Telegram's result, or None when the send
failed for good (the failure is then recorded with its reason in `send_failures`; nothing is
dropped silently). On the way it:

- keeps Telegram's limits with sliding windows (configurable): at most one request per
  `chat_interval` seconds per chat, `group_limit` per `group_window` seconds per group chat
  (negative ids) and `global_limit` per `global_window` seconds overall. A request counts in
  every window from the moment it is let through until it has completed (a request in flight
  counts as "now"), so no window, measured on the real request times, exceeds a limit;
- waits exactly `retry_after` on a 429 for that chat, sending nothing to it meanwhile (the
  sends of one chat are serialised in order), then retries;
- retries network and server errors with exponential backoff, a few times;
- on 403 marks the chat inactive (a group: services.groups.deactivate; a person:
  users.started = False) and refuses later sends to it without a request until the database
  says it is active again (the bot was re-added, the person pressed /start);
- follows `migrate_to_chat_id` (services.groups.migrate, then resends to the new id; later
  sends to the old id go to the new one).

It keeps live figures for /status (`stats()`), and `close()` waits for pending sends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import TelegramMethod
from sqlalchemy import select, update

from models import Database, Group, SendFailure, User
from services import groups as group_service
from services.privacy import is_pseudonym
from services.timezones import utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")

INF = float("inf")
REASON_MAX = 500
NOT_MODIFIED = "message is not modified"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one send ended: its result, or why not and whether trying later may help."""

    result: object = None
    reason: str | None = None  # None: sent (or an edit that changed nothing)
    transient: bool = False  # network/server errors or 429s beyond the sender's patience
    retry_after: float = 0.0  # a 429 given up on: Telegram's wait, for a later try
    # The chat refused the bot (a 403, or a chat known to refuse it since one): a person
    # who never started the bot, blocked it or is deactivated; a group that removed it.
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.reason is None


SENT_NOTHING = Outcome()


@dataclass(frozen=True, slots=True)
class Failure:
    chat_id: int
    method: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class SenderStats:
    waiting: int  # sends not at Telegram right now: waiting for a slot, a 429, a retry
    in_flight: int  # requests on their way to Telegram
    pending: int  # every send not finished yet (waiting, in flight, or retrying)
    sent: int
    failed: int
    last_failures: list[Failure]  # the last failure per chat, newest first


class _Stamp:
    """A request in the limiter's windows: INF while in flight, then its completion time."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = INF


class _Chat:
    __slots__ = ("lock", "users", "last", "blocked_until")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()  # one send per chat at a time, in order
        self.users = 0
        self.last: _Stamp | None = None
        self.blocked_until = 0.0  # monotonic time before which nothing goes (429)


class Sender:
    def __init__(
        self,
        bot: Bot,
        db: Database,
        *,
        chat_interval: float = 1.0,
        group_limit: int = 20,
        group_window: float = 60.0,
        global_limit: int = 30,
        global_window: float = 1.0,
        network_attempts: int = 4,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        retry_after_attempts: int = 5,
    ) -> None:
        self.bot = bot
        self.db = db
        self.chat_interval = chat_interval
        self.group_limit = group_limit
        self.group_window = group_window
        self.global_limit = global_limit
        self.global_window = global_window
        self.network_attempts = max(network_attempts, 1)
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.retry_after_attempts = max(retry_after_attempts, 1)
        self.sent = 0
        self.failed = 0
        self.in_flight = 0
        self.pending = 0
        self.last_failure: dict[int, Failure] = {}
        self._chats: dict[int, _Chat] = {}
        self._global: deque[_Stamp] = deque()
        self._groups: dict[int, deque[_Stamp]] = {}
        self._inactive: set[int] = set()
        self._moved: dict[int, int] = {}
        self._changed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    # ------------------------------------------------------------------ public

    async def send(self, method: TelegramMethod[T], *, chat_id: int) -> T | None:
        """Send `method` (whose target is `chat_id`) within the limits; the result, or None
        if it failed for good (recorded)."""
        return (await self.deliver(method, chat_id=chat_id)).result

    async def deliver(
        self,
        method: TelegramMethod[T],
        *,
        chat_id: int,
        wait_at_most: float | None = None,
        record: bool = True,
    ) -> Outcome:
        """Like `send`, with the reason of a failure and whether it is transient (the
        outbox tries those again later; permanent ones are marked failed). `wait_at_most`:
        a 429 asking for a longer wait is given up at once (transient, with its
        retry_after), so one slow chat does not hold the caller. `record=False`: a failure
        leaves no trace (no send_failures row, nothing kept in memory, no chat marked
        inactive): for messages to a person who used /forgetme."""
        self.pending += 1
        self._idle.clear()
        try:
            return await self._send(method, chat_id, 0, wait_at_most, record)
        finally:
            self.pending -= 1
            if self.pending == 0:
                self._idle.set()

    def stats(self) -> SenderStats:
        failures = sorted(self.last_failure.values(), key=lambda f: f.at, reverse=True)
        waiting = self.pending - self.in_flight
        return SenderStats(waiting, self.in_flight, self.pending, self.sent, self.failed, failures)

    def is_inactive(self, chat_id: int) -> bool:
        return chat_id in self._inactive

    def forget_user(self, user_id: int) -> None:
        """/forgetme: drop what is kept in memory about the user's private chat."""
        self.last_failure.pop(user_id, None)
        self._inactive.discard(user_id)

    async def close(self, timeout: float = 30.0) -> None:
        """Wait (within `timeout`) until every pending send has finished."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("sender closed with %d sends pending", self.pending)

    # ------------------------------------------------------------------ sending

    async def _send(
        self,
        method: TelegramMethod[T],
        chat_id: int,
        hops: int,
        wait_at_most: float | None = None,
        record: bool = True,
    ) -> Outcome:
        name = type(method).__name__

        async def fail(reason: str, transient: bool = False, retry_after: float = 0.0) -> Outcome:
            if record:
                outcome = await self._fail(chat_id, name, reason, transient=transient)
                return replace(outcome, retry_after=retry_after)
            log.info("send to a chat not recorded failed (%s): %s", name, reason)
            return Outcome(reason=reason[:REASON_MAX], transient=transient, retry_after=retry_after)

        chat_id = self._moved.get(chat_id, chat_id)
        if is_pseudonym(chat_id):  # someone /forgetme made anonymous: no chat to reach
            log.info("%s to a forgotten person skipped", name)
            return Outcome(reason="recipient forgotten (/forgetme)")
        if getattr(method, "chat_id", None) not in (None, chat_id):
            method = method.model_copy(update={"chat_id": chat_id})
        if chat_id in self._inactive and not await self._active_again(chat_id):
            refused = await fail("chat inactive (the bot was blocked or removed)")
            return replace(refused, refused=True)
        state = self._chats.get(chat_id)
        if state is None:
            self._prune_chats()
            state = self._chats[chat_id] = _Chat()
        state.users += 1
        migrate_to: int | None = None
        try:
            async with state.lock:
                network_tries = 0
                retry_after_tries = 0
                while True:
                    paused = state.blocked_until - time.monotonic()
                    if wait_at_most is not None and paused > wait_at_most:  # after a 429
                        return await fail(f"429 retry after {paused:.0f} s", True, paused)
                    stamp = await self._acquire(chat_id, state)
                    try:
                        self.in_flight += 1
                        try:
                            result = await self.bot(method)
                        finally:
                            self.in_flight -= 1
                            stamp.at = time.monotonic()
                            self._notify()
                        self.sent += 1
                        return Outcome(result)
                    except TelegramRetryAfter as exc:
                        retry_after_tries += 1
                        state.blocked_until = time.monotonic() + exc.retry_after
                        too_long = wait_at_most is not None and exc.retry_after > wait_at_most
                        if too_long or retry_after_tries >= self.retry_after_attempts:
                            reason = f"429 retry after {exc.retry_after} s"
                            return await fail(reason, True, float(exc.retry_after))
                        log.warning(
                            "429 for chat %s (%s); waiting %s s", chat_id, name, exc.retry_after
                        )
                    except TelegramMigrateToChat as exc:
                        migrate_to = exc.migrate_to_chat_id
                        break
                    except TelegramForbiddenError as exc:
                        if record:
                            await self._deactivate(chat_id)
                        return replace(await fail(f"403 {exc.message}"), refused=True)
                    except TelegramBadRequest as exc:
                        if NOT_MODIFIED in exc.message.lower():
                            return SENT_NOTHING  # an edit to the same content: nothing to do
                        return await fail(f"400 {exc.message}")
                    except (TelegramNetworkError, TelegramServerError) as exc:
                        network_tries += 1
                        if network_tries >= self.network_attempts:
                            return await fail(f"{type(exc).__name__}: {exc.message}", True)
                        delay = min(self.backoff * 2 ** (network_tries - 1), self.backoff_max)
                        log.warning(
                            "network error for chat %s (%s); retry in %.2f s", chat_id, name, delay
                        )
                        await asyncio.sleep(delay)
                    except TelegramAPIError as exc:
                        return await fail(f"{type(exc).__name__}: {exc.message}")
                    except Exception as exc:  # a bug or an unexpected error: recorded too
                        log.exception("send to chat %s (%s) failed", chat_id, name)
                        return await fail(f"{type(exc).__name__}: {exc}")
        finally:
            state.users -= 1
        # The group became a supergroup: follow it (outside the old chat's lock).
        if hops >= 3:
            return await fail(f"migrated again to {migrate_to}; gave up")
        await self._migrate(chat_id, migrate_to)
        moved = method.model_copy(update={"chat_id": migrate_to})
        return await self._send(moved, migrate_to, hops + 1, wait_at_most, record)

    # ------------------------------------------------------------------ limits

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _delay(self, chat_id: int, state: _Chat, now: float) -> float:
        """Seconds until a request to `chat_id` may go (INF: wait for one to complete)."""
        wait = state.blocked_until - now
        if state.last is not None:
            wait = max(wait, state.last.at + self.chat_interval - now)
        wait = max(wait, self._window_delay(self._global, self.global_limit, self.global_window))
        if chat_id < 0:
            window = self._groups.get(chat_id)
            if window is not None:
                wait = max(wait, self._window_delay(window, self.group_limit, self.group_window))
        return wait

    @staticmethod
    def _window_delay(window: deque[_Stamp], limit: int, length: float) -> float:
        now = time.monotonic()
        while window and window[0].at + length <= now:
            window.popleft()
        if len(window) < limit:
            return 0.0
        # Stamps are not in order (in-flight ones are INF until they complete): the slot frees
        # when the (len - limit + 1)-th oldest completion leaves the window.
        ordered = sorted(s.at for s in window)
        return ordered[len(window) - limit] + length - now

    async def _acquire(self, chat_id: int, state: _Chat) -> _Stamp:
        while True:
            now = time.monotonic()
            wait = self._delay(chat_id, state, now)
            if wait <= 0:
                break
            changed = self._changed
            if wait == INF:
                await changed.wait()
            else:
                try:
                    await asyncio.wait_for(changed.wait(), wait)
                except TimeoutError:
                    pass
        stamp = _Stamp()
        state.last = stamp
        self._global.append(stamp)
        if chat_id < 0:
            self._groups.setdefault(chat_id, deque()).append(stamp)
            self._prune_groups()
        return stamp

    def _prune_chats(self) -> None:
        """Forget idle chats whose interval and 429 pause are over (bounded memory)."""
        if len(self._chats) < 1024:
            return
        now = time.monotonic()
        for chat_id, state in list(self._chats.items()):
            if state.users or state.blocked_until > now:
                continue
            if state.last is not None and state.last.at + self.chat_interval > now:
                continue
            del self._chats[chat_id]

    def _prune_groups(self) -> None:
        if len(self._groups) < 1024:
            return
        horizon = time.monotonic() - self.group_window
        for chat_id, window in list(self._groups.items()):
            if all(s.at <= horizon for s in window):
                del self._groups[chat_id]

    # ------------------------------------------------------------------ outcomes

    async def _fail(
        self, chat_id: int, method: str, reason: str, *, transient: bool = False
    ) -> Outcome:
        reason = reason[:REASON_MAX]
        now = utcnow()
        self.failed += 1
        self.last_failure[chat_id] = Failure(chat_id, method, reason, now)
        if len(self.last_failure) > 1000:  # keep the newest
            oldest = min(self.last_failure.values(), key=lambda f: f.at)
            self.last_failure.pop(oldest.chat_id, None)
        log.warning("send to chat %s failed (%s): %s", chat_id, method, reason)
        try:
            async with self.db.transaction() as session:
                session.add(
                    SendFailure(chat_id=chat_id, method=method, reason=reason, created_at=now)
                )
        except Exception:
            log.exception("could not record the failed send to chat %s", chat_id)
        return Outcome(reason=reason, transient=transient)

    async def _deactivate(self, chat_id: int) -> None:
        self._inactive.add(chat_id)
        try:
            async with self.db.transaction() as session:
                if chat_id < 0:
                    await group_service.deactivate(session, chat_id)
                else:
                    await session.execute(
                        update(User).where(User.id == chat_id).values(started=False)
                    )
        except Exception:
            log.exception("could not mark chat %s inactive", chat_id)
        log.info("chat %s refused the bot (403); marked inactive", chat_id)

    async def _active_again(self, chat_id: int) -> bool:
        """A chat that refused the bot may have come back (re-added, /start)."""
        try:
            async with self.db.read() as session:
                if chat_id < 0:
                    active = await session.scalar(
                        select(Group.is_active).where(Group.chat_id == chat_id)
                    )
                else:
                    active = await session.scalar(select(User.started).where(User.id == chat_id))
        except Exception:
            log.exception("could not read whether chat %s is active", chat_id)
            return False
        if active:
            self._inactive.discard(chat_id)
            return True
        return False

    async def _migrate(self, old: int, new: int) -> None:
        self._moved[old] = new
        for source, target in list(self._moved.items()):
            if target == old:
                self._moved[source] = new
        try:
            async with self.db.transaction() as session:
                await group_service.migrate(session, old, new)
        except Exception:
            log.exception("could not move group %s to %s", old, new)
        log.info("chat %s became supergroup %s; following it", old, new)

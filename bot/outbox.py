"""The outbox sender: delivers the rows of services.outbox through the rate-limited Sender.

A loop claims due rows with a lease (`lease` seconds, renewed while a row is being sent, so
a slow chat — 20 messages a minute in a group — never lets another instance take it),
renders each in its recipient's language (bot/notices.py) at the moment of sending, sends
it through bot.sender.Sender (which keeps Telegram's limits and waits exactly `retry_after`
on a 429) and settles it: sent; failed with the reason (400, a recipient gone, a group
that removed the bot); parked (`waiting`) when a person's private chat refuses it (403:
never started the bot, blocked it, deactivated) until they /start (services.outbox.resume);
or, on a transient error (network, server, 429s beyond the sender's patience), pending
again with a backoff. It wakes on `kick()` (the effects map calls it after a commit that
promised messages, or released parked ones) and every `poll` seconds, which also picks up
rows of a process that died: their lease runs out and they go out, once, from whichever
instance claims them first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from aiogram.exceptions import TelegramNetworkError, TelegramServerError
from aiogram.utils.i18n import I18n
from sqlalchemy.exc import SQLAlchemyError

from bot import notices
from bot.sender import Sender
from models import Database
from services import outbox
from services.timezones import utcnow

log = logging.getLogger(__name__)
# Errors of a render that may pass (the database or Telegram away for a moment): tried again.
TRANSIENT = (SQLAlchemyError, OSError, TimeoutError, TelegramNetworkError, TelegramServerError)
MAX_ATTEMPTS = 30  # about a week of backoff: then the row is given up as failed
WAIT_AT_MOST = 10.0  # a 429 longer than this leaves the row for later instead of blocking


class OutboxSender:
    def __init__(
        self,
        db: Database,
        sender: Sender,
        i18n: I18n,
        *,
        lease: float = 60.0,
        poll: float = 5.0,
        batch: int = 100,
        concurrency: int = 64,
        provider_token: str = "",
        timezone: str = "UTC",
    ) -> None:
        self.db = db
        self.provider_token = provider_token
        self.timezone = timezone
        self.sender = sender
        self.i18n = i18n
        self.lease = timedelta(seconds=lease)
        self.poll = poll
        self.batch = batch
        self.concurrency = concurrency
        self.delivered = 0
        self.failed = 0
        self.retried = 0
        self.parked = 0
        self._wake = asyncio.Event()
        self._tokens: dict[str, int] = {}  # claims in flight → rows left
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def kick(self) -> None:
        """Deliver soon (rows were just promised)."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._run(), name="outbox")

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming; rows already claimed are sent (within `timeout`) or left to their
        lease."""
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None

    async def _run(self) -> None:
        renewer = asyncio.create_task(self._renew_leases())
        try:
            while not self._stop.is_set():
                try:
                    busy = await self.run_once()
                except Exception:
                    log.exception("outbox delivery round failed")
                    busy = 0
                if busy:
                    continue  # there may be more
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)
                self._wake.clear()
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def run_once(self) -> int:
        """Claim one batch of due rows and deliver them; how many were claimed."""
        async with self.db.transaction() as session:
            rows = await outbox.claim(session, utcnow(), limit=self.batch, lease=self.lease)
        if not rows:
            return 0
        token = rows[0].token
        self._tokens[token] = len(rows)
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(row: outbox.Claimed) -> None:
            async with semaphore:
                await self._deliver(row)

        try:
            await asyncio.gather(*(one(row) for row in rows))
        finally:
            self._tokens.pop(token, None)
        return len(rows)

    async def _deliver(self, row: outbox.Claimed) -> None:
        if row.kind not in notices.RENDERERS:  # a newer instance's kind (a rolling deploy)
            await self._settle(row, f"unknown kind {row.kind!r}", True)
            return
        try:
            method = await notices.render(
                self.db,
                self.sender.bot,
                self.i18n,
                row,
                provider_token=self.provider_token,
                timezone=self.timezone,
            )
        except TRANSIENT as exc:
            log.warning("outbox %s (%s): render failed for now: %r", row.id, row.kind, exc)
            await self._settle(row, f"render failed: {type(exc).__name__}: {exc}", True)
            return
        except Exception as exc:  # a bug, or a row that can never be rendered: recorded
            log.exception("outbox %s (%s) could not be rendered", row.id, row.kind)
            await self._settle(row, f"render failed: {type(exc).__name__}: {exc}", False)
            return
        if method is None:  # nothing to send any more (the recipient or subject is gone)
            await self._settle(row, "nothing to send (recipient or subject gone)", False)
            return
        # A row to erase in a person's chat outlives them (/forgetme): its failure is
        # recorded nowhere (a group's, such as a revocation, is).
        forgotten = bool(row.payload.get(outbox.ERASE)) and row.chat_id > 0
        outcome = await self.sender.deliver(
            method, chat_id=row.chat_id, wait_at_most=WAIT_AT_MOST, record=not forgotten
        )
        # A person who has not started the bot (or blocked it) gets it when they /start; a
        # row to erase is not kept for anyone.
        park = outcome.refused and row.chat_id > 0 and not row.payload.get(outbox.ERASE)
        await self._settle(
            row,
            outcome.reason,
            outcome.transient,
            outcome.retry_after,
            park=park,
            result=outcome.result,
        )

    async def _settle(
        self,
        row: outbox.Claimed,
        reason: str | None,
        transient: bool,
        after: float = 0.0,
        *,
        park: bool = False,
        result: object = None,
    ) -> None:
        now = utcnow()
        if transient and row.attempts >= MAX_ATTEMPTS:
            reason, transient = f"gave up after {row.attempts} attempts: {reason}", False
        settled = False
        for attempt in range(2):  # a lost settle would mean a second send after the lease
            try:
                async with self.db.transaction() as session:
                    record_outcome = notices.AFTER.get(row.kind)
                    if record_outcome is not None:  # its outcome is recorded with the settling
                        await record_outcome(session, row, reason, transient, now)
                    record_sent = notices.SENT.get(row.kind)
                    if record_sent is not None and reason is None:  # e.g. the message's id
                        await record_sent(session, row, result, now)
                    if reason is None:
                        settled = await outbox.mark_sent(session, row, now)
                    elif park:
                        settled = await outbox.park(session, row, reason, now)
                    elif transient:
                        wait = max(outbox.backoff(row.attempts).total_seconds(), after)
                        at = now + timedelta(seconds=wait)
                        settled = await outbox.retry_later(session, row, reason, at)
                    else:
                        settled = await outbox.mark_failed(session, row, reason, now)
                break
            except Exception:
                log.exception("outbox %s: could not record the outcome (try %d)", row.id, attempt)
        if not settled:  # another instance holds it now (our lease ran out), or the DB is away
            return
        if reason is None:
            self.delivered += 1
        elif park:
            self.parked += 1
            log.info("outbox %s (%s) waits for its person to start the bot", row.id, row.kind)
        elif transient:
            self.retried += 1
            log.info("outbox %s (%s) to try again: %s", row.id, row.kind, reason)
        else:
            self.failed += 1
            log.info("outbox %s (%s) failed: %s", row.id, row.kind, reason)

    async def _renew_leases(self) -> None:
        every = max(self.lease.total_seconds() / 3, 0.05)
        while True:
            await asyncio.sleep(every)
            tokens = list(self._tokens)
            if not tokens:
                continue
            try:
                async with self.db.transaction() as session:
                    await outbox.renew(session, tokens, utcnow() + self.lease)
            except Exception:
                log.exception("renewing outbox leases failed")

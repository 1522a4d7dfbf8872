"""The admission gate (services.admission) in front of the write path of joins.

Registered on the callback_query and message observers BEFORE the TransactionMiddleware, so
it runs after the filters chose a handler but before any transaction is opened. It acts only
for handlers flagged `admission` (the flag is a function of (event, data) that returns a
JoinRequest, or None for an update that is not a join; or a coroutine function giving one,
for a tap on an inline card whose share code is read to know the deal). A tap that fits
beside the joins in flight runs its handler at once. Any other learns, from one read shared
by all the taps waiting on that deal (AdmissionReads: single flight per deal and chat, the
members' orders read as one set), whether the member holds an order and the committed
stock. "Sold out." is answered only from such a read, begun after the tap arrived, that
shows less committed stock than asked for: without a write transaction and without an
update id recorded (a replay just gets the same answer again). Otherwise a new participant
waits at the gate, which admits it when its units fit beside the joins in flight, or, when
after a later commit it looks sold out, sends it back for another shared read (the gate's
figures decide when to read, never whom to refuse). Everything else runs the handler in
its transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.flags import get_flag
from aiogram.types import TelegramObject

from models import Database
from services import orders
from services.admission import AdmissionGate, Ticket
from services.timezones import utcnow

FLAG = "admission"


@dataclass
class JoinRequest:
    deal_id: int
    chat_id: int | None  # the group chat the deal is posted in (a group's post) …
    units: int  # more units asked for, if the member holds none yet
    refuse: Callable[[int], Any]  # stock left → the sold-out answer (a method to return)
    group_id: int | None = None  # … or the group of a deal card in private chat


@dataclass
class _Batch:
    future: asyncio.Future[orders.Admission | None]
    users: set[int] = field(default_factory=set)


class AdmissionReads:
    """The reads taps waiting at the gate need, shared: per (deal, chat, group) at most one
    read runs at a time; the taps that arrive while it runs join the next one, which starts
    when it ends and reads all their members' orders at once. So each tap gets a read begun
    after it arrived, and a burst of 1,000 taps makes a handful of reads. Each read teaches
    the gate the committed stock."""

    def __init__(self, db: Database, gate: AdmissionGate) -> None:
        self.db = db
        self.gate = gate
        self.reads = 0  # reads made (the single-flight tests count them)
        self._pending: dict[tuple[int, int | None, int | None], _Batch] = {}
        self._running: set[tuple[int, int | None, int | None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def fetch(self, request: JoinRequest, user_id: int) -> orders.Admission | None:
        key = (request.deal_id, request.chat_id, request.group_id)
        batch = self._pending.get(key)
        if batch is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieve)
            batch = self._pending[key] = _Batch(future)
        batch.users.add(user_id)
        if key not in self._running:
            self._start(key)
        return await asyncio.shield(batch.future)  # one waiter cancelled cancels no read

    def _start(self, key: tuple[int, int | None, int | None]) -> None:
        batch = self._pending.pop(key)
        self._running.add(key)
        # its own context: the read never joins a transaction of the tap that started it
        task = asyncio.get_running_loop().create_task(
            self._run(key, batch), context=contextvars.Context()
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: tuple[int, int | None, int | None], batch: _Batch) -> None:
        deal_id, chat_id, group_id = key
        since = self.gate.epoch(deal_id)
        try:
            self.reads += 1
            async with self.db.read() as session:
                view = await orders.admission(
                    session, deal_id, chat_id, batch.users, utcnow(), group_id=group_id
                )
        except asyncio.CancelledError:
            batch.future.cancel()
            raise
        except BaseException as exc:
            batch.future.set_exception(exc)
        else:
            if view is not None:
                self.gate.learn(deal_id, view.stock_left, since=since)
            batch.future.set_result(view)
        finally:
            self._running.discard(key)
            if key in self._pending:
                self._start(key)


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()  # a failed read raises in its waiters; never "not retrieved"


class AdmissionMiddleware(BaseMiddleware):
    def __init__(self, db: Database, gate: AdmissionGate) -> None:
        self.db = db
        self.gate = gate
        self.reads = AdmissionReads(db, gate)

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        request_of = get_flag(data, FLAG)
        user = data.get("event_from_user")
        request = request_of(event, data) if request_of is not None and user else None
        if inspect.isawaitable(request):  # an inline card: its share code is looked up
            request = await request
        if request is None:
            return await handler(event, data)
        gate = self.gate
        ticket: Ticket | None = gate.admit_now(request.deal_id, request.units, user.id)
        while ticket is None:
            since = gate.epoch(request.deal_id)
            view = await self.reads.fetch(request, user.id)  # a read begun after `since`
            if view is None or not view.gated(user.id, request.units):
                return await handler(event, data)  # the write path decides and words it
            if view.stock_left < request.units:  # committed, seen after the tap: sold out
                return request.refuse(view.stock_left)
            ticket = await gate.wait(request.deal_id, request.units, user.id, since=since)
            if not ticket.admitted:  # looks sold out after a later commit: read again
                ticket = None
        try:
            return await handler(event, data)
        finally:
            gate.leave(ticket)

"""The admission gate (services.admission) in front of the write path of joins.

Registered on the callback_query and message observers BEFORE the TransactionMiddleware, so
it runs after the filters chose a handler but before any transaction is opened. It acts only
for handlers flagged `admission` (the flag is a function of (event, data) that returns a
JoinRequest, or None for an update that is not a join; or a coroutine function giving one,
for a tap on an inline card whose share code is read to know the deal). A request queues at
the gate; when the gate says the deal looks sold out, a read re-checks it, and a member
without an order is answered "Sold out." from that read: no write transaction, no update id
recorded (a replay just gets the same answer again). Everything else runs the handler in
its transaction.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.flags import get_flag
from aiogram.types import TelegramObject

from models import Database
from services import orders
from services.admission import AdmissionGate
from services.timezones import utcnow

FLAG = "admission"


@dataclass
class JoinRequest:
    deal_id: int
    chat_id: int | None  # the group chat the deal is posted in (a group's post) …
    units: int  # more units asked for, if the member holds none yet
    refuse: Callable[[int], Any]  # stock left → the sold-out answer (a method to return)
    group_id: int | None = None  # … or the group of a deal card in private chat


class AdmissionMiddleware(BaseMiddleware):
    def __init__(self, db: Database, gate: AdmissionGate) -> None:
        self.db = db
        self.gate = gate

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
        while True:
            ticket = await gate.enter(request.deal_id, request.units)
            if not ticket.probe:
                break
            try:
                async with self.db.read() as session:
                    view = await orders.admission(
                        session,
                        request.deal_id,
                        request.chat_id,
                        user.id,
                        request.units,
                        utcnow(),
                        group_id=request.group_id,
                    )
            except BaseException:
                gate.abandon(ticket)
                raise
            if view is None:
                gate.abandon(ticket)
                return await handler(event, data)  # not posted here: the handler says so
            gate.learn(request.deal_id, view.stock_left, probe=ticket)
            if view.sold_out:
                return request.refuse(view.stock_left or 0)
            if not view.gated:
                return await handler(event, data)  # the write path decides and words it
            # there is room: queue again
        try:
            return await handler(event, data)
        finally:
            gate.leave(ticket)

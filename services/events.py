"""Domain events: what a change caused, recorded by services in the unit of work.

A service that changes state records an event (`record(session, OrderChanged(...))`). The
events of a transaction are handed, once it has committed, to the effects map
(bot/effects.py), which says in one place what each event causes: a post refresh, the
admission gate, an activity count, a kick of the outbox sender. Events of a transaction that
rolled back are dropped with it; an event recorded inside a savepoint that rolls back is
dropped too (`savepoint`). Messages promised to people are not events' effects but outbox
rows (services.outbox), written in the same transaction, so a crash after the commit loses
none of them.

No aiogram here, no Telegram: events are plain facts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

EVENTS = "tuan_events"


class Event:
    """Base of every domain event."""


@dataclass(frozen=True)
class OrderChanged(Event):
    """A member's quantity in a deal changed (placed, changed, cancelled, refunded)."""

    deal_id: int
    user_id: int
    chat_id: int | None  # the chat of the group the order counts in, if known
    old_quantity: int
    new_quantity: int
    stock_left: int | None  # after the change (None: no stock limit)
    at: datetime
    via: str = "button"  # button | command | private | myorders | owner

    @property
    def signed_up(self) -> bool:
        """Joined the sign-up list now (not a change of quantity)."""
        return self.old_quantity == 0 and self.new_quantity > 0


@dataclass(frozen=True)
class OrderDenied(Event):
    """A join was refused as sold out: what the refusal showed of the stock."""

    deal_id: int
    stock_left: int | None


@dataclass(frozen=True)
class DealOpened(Event):
    """A deal became open and must be posted to its groups."""

    deal_id: int


@dataclass(frozen=True)
class DealChanged(Event):
    """A deal's post must be re-rendered (edited, paused, stock changed)."""

    deal_id: int


@dataclass(frozen=True)
class DealClosed(Event):
    """A deal closed once: succeeded, failed or cancelled (its posts show the final state)."""

    deal_id: int
    outcome: str


@dataclass(frozen=True)
class MemberJoined(Event):
    chat_id: int
    user_id: int
    at: datetime


@dataclass(frozen=True)
class MemberLeft(Event):
    chat_id: int
    user_id: int
    at: datetime


@dataclass(frozen=True)
class MemberForgotten(Event):
    """/forgetme committed: what is kept in memory about the person goes too."""

    user_id: int


@dataclass(frozen=True)
class RulesChanged(Event):
    """A group's anti-spam rules, administrators or allow-list changed (services.moderation):
    its rules are read again once this commits."""

    chat_id: int


@dataclass(frozen=True)
class NoticesPromised(Event):
    """Outbox rows were written: the sender may deliver them now."""

    count: int


def record(session: AsyncSession, event: Event) -> None:
    """Record `event` in the unit of work of `session` (kept until its commit)."""
    session.info.setdefault(EVENTS, []).append(event)


def take(session: AsyncSession) -> list[Event]:
    """The events recorded in `session`, removed from it."""
    return session.info.pop(EVENTS, None) or []


@asynccontextmanager
async def savepoint(session: AsyncSession) -> AsyncIterator[None]:
    """A savepoint whose events are dropped if it rolls back."""
    before = len(session.info.get(EVENTS, ()))
    try:
        async with session.begin_nested():
            yield
    except BaseException:
        events = session.info.get(EVENTS)
        if events is not None:
            del events[before:]
        raise

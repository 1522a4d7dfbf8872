"""Offline events (线下活动): sign-ups, the waitlist, check-in codes, reminders, attendance.

An event IS a deal under the hood (services.deals): stock = capacity, one place per person
(`per_person_limit` 1), no minimum, `closes_at` = the sign-up deadline, `pickup_note` = the
place, no deal reminders; its `OfflineEvent` row (1:1) holds the place, the start (UTC) and
which reminders went out. So every sign-up and cancellation is an order through the one
order action (services.orders.act): stock is never oversold, whatever the concurrency, and
paid events hold the place with an invoice like a flash sale (services.payments).

- A member who joins a full event goes on the deal's waitlist (services.payments'
  waitlist, which free events use too here). When a place frees — a cancellation through
  the one order action, an unpaid hold lapsing — `on_order_changed` (called by `act`)
  serves the waitlist: the first waiter is admitted through the one order action, the
  others stay.
- Every place taken promises the member their ticket (outbox kind `event_ticket`): the
  check-in code (the order's pickup code) as text and a QR image in private chat. The QR
  holds the link t.me/<bot>?start=ci_<code>: an owner scanning it checks the member in.
- `check_in`: an owner or administrator of the event's group at that moment marks the
  order attended, once (`EventCheckin`, one row per order).
- `remind_due` (the heartbeat): 24 h and 2 h before the start, each attendee is reminded
  once (outbox kind `event_note`), each reminder taken once per event by a conditional
  UPDATE.

Outbox keys:

    evticket:<order>:<ms>       the ticket (event_ticket), at each place taken
    evremind:<order>:<day|soon> a reminder (event_note)

No aiogram here.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Deal, EventCheckin, Group, OfflineEvent, Order, User, WaitlistEntry
from models.upsert import insert_ignore
from services import deals as deal_service
from services import events, outbox, payments
from services import orders as order_service
from services.admins import AdminDirectory
from services.errors import DomainError
from services.parsing import (
    ParseError,
    clean_text,
    parse_local_datetime,
    parse_price_in,
    parse_quantity,
    parse_title,
)

log = logging.getLogger(__name__)

TICKET = "event_ticket"  # outbox kind: the check-in code and its QR image
NOTE = "event_note"  # outbox kind: a reminder before the event
MAX_CAPACITY = 10_000
MAX_PLACE = 200
MAX_AHEAD = timedelta(days=366)  # an event starts within a year
REMINDERS = (("day", timedelta(hours=24)), ("soon", timedelta(hours=2)))
LINK_PREFIX = "ci_"  # /start ci_<code>: the QR's link, a scan checks the member in
FREE_WORDS = {"free", "0", "免费"}
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")
_TIME = re.compile(r"\d{1,2}:\d{2}")
_PRICE = re.compile(r"[¥$€£]?\d+(?:[.,]\d{1,2})?")
ATTENDING = ("active", "confirmed")


class EventError(DomainError):
    pass


class UnknownCode(EventError):
    """No order of an event has that code (or it is of an event the person does not run)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class NotEventAdmin(EventError):
    """The person is not an owner or administrator of the event's group now."""


class NotAttending(EventError):
    """The code's order was cancelled: that member holds no place."""


class Unpaid(EventError):
    """A paid event's place not paid yet."""


class NoGroup(EventError):
    """`/event N …` names no group the owner administers."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


# ---------------------------------------------------------------- the owner's command


@dataclass(frozen=True)
class EventSpec:
    title: str
    place: str
    starts_at: datetime  # UTC
    capacity: int
    closes_at: datetime  # the sign-up deadline, UTC
    price: int  # minor units of `currency`; 0: free
    currency: str


def parse_spec(text: str | None, timezone: str, currency: str, now: datetime) -> EventSpec:
    """`YYYY-MM-DD HH:MM <capacity> [YYYY-MM-DD HH:MM] [price|free] Title | Place`, times in
    the group's local time; the deadline defaults to the start. ParseError otherwise
    (reasons: event_usage, event_place, time_*, date_invalid, quantity_*, price_*, title_*,
    event_deadline, event_far)."""
    raw = (text or "").strip()
    if len(raw) > 600:
        raise ParseError("event_usage")
    head, sep, place_text = raw.partition("|")
    tokens = head.split()
    if not sep or len(tokens) < 4:
        raise ParseError("event_usage")
    if not (_DATE.fullmatch(tokens[0]) and _TIME.fullmatch(tokens[1])):
        raise ParseError("event_usage")
    starts_at = parse_local_datetime(f"{tokens[0]} {tokens[1]}", timezone, now)
    capacity = parse_quantity(tokens[2], maximum=MAX_CAPACITY)
    rest = tokens[3:]
    closes_at = starts_at
    if len(rest) >= 2 and _DATE.fullmatch(rest[0]) and _TIME.fullmatch(rest[1]):
        closes_at = parse_local_datetime(f"{rest[0]} {rest[1]}", timezone, now)
        rest = rest[2:]
    price = 0
    if rest and (rest[0].lower() in FREE_WORDS or _PRICE.fullmatch(rest[0])):
        if rest[0].lower() not in FREE_WORDS:
            price = parse_price_in(rest[0], currency).amount
        rest = rest[1:]
    title = parse_title(" ".join(rest))
    place = " ".join(clean_text(place_text, multiline=False).split())
    if not place:
        raise ParseError("event_place")
    if len(place) > MAX_PLACE:
        raise ParseError("event_place_long", max=MAX_PLACE)
    if starts_at <= now or closes_at <= now:
        raise ParseError("time_past")
    if closes_at > starts_at:
        raise ParseError("event_deadline")
    if starts_at > now + MAX_AHEAD:
        raise ParseError("event_far")
    return EventSpec(title, place, starts_at, capacity, closes_at, price, currency)


def pay_method_for(spec: EventSpec, card_payments: bool) -> str:
    """A free event takes no payment; a paid one by card in the chat when the deployment
    has a payment provider, else at the door (cash, marked by the owner)."""
    return "card" if spec.price > 0 and card_payments else "cash"


async def create(
    session: AsyncSession,
    admins: AdminDirectory,
    owner_id: int,
    group: Group,
    spec: EventSpec,
    now: datetime,
    *,
    card_payments: bool = False,
) -> tuple[Deal, OfflineEvent]:
    """The event's deal (posted into `group` once this commits) and its event row. The
    owner must administer the group now (NotEventAdmin)."""
    if owner_id not in await admins.admins_of(session, group):
        raise NotEventAdmin(group.id)
    deal = await deal_service.create(
        session,
        owner_id,
        deal_service.DealSpec(
            title=spec.title,
            currency=spec.currency,
            unit_price=spec.price,
            closes_at=spec.closes_at,
            stock=spec.capacity,
            per_person_limit=1,
            pickup_note=spec.place,
            group_ids=[group.id],
            reminders="",  # the event's own reminders, to attendees (remind_due)
            pay_method=pay_method_for(spec, card_payments),
        ),
        now,
        free=True,
    )
    deal.is_event = True
    event = OfflineEvent(
        deal_id=deal.id,
        group_id=group.id,
        place=spec.place,
        starts_at=spec.starts_at,
        created_at=now,
    )
    session.add(event)
    await session.flush()
    if deal.status == "open":
        events.record(session, events.DealOpened(deal.id))
    log.info("event D%s created by %s in group %s", deal.id, owner_id, group.id)
    return deal, event


# ---------------------------------------------------------------- reads


async def get(session: AsyncSession, deal_id: int) -> OfflineEvent | None:
    return await session.get(OfflineEvent, deal_id)


async def of_deals(session: AsyncSession, deal_ids: list[int]) -> dict[int, OfflineEvent]:
    if not deal_ids:
        return {}
    rows = await session.scalars(select(OfflineEvent).where(OfflineEvent.deal_id.in_(deal_ids)))
    return {row.deal_id: row for row in rows}


async def waiting_count(session: AsyncSession, deal_id: int) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(WaitlistEntry)
            .where(WaitlistEntry.deal_id == deal_id, WaitlistEntry.served_at.is_(None))
        )
        or 0
    )


async def waiting_position(session: AsyncSession, deal_id: int, user_id: int) -> int | None:
    """The member's place in the event's waitlist (1: next), None if not waiting."""
    mine = await session.get(WaitlistEntry, (deal_id, user_id))
    if mine is None or mine.served_at is not None:
        return None
    ahead = await session.scalar(
        select(func.count())
        .select_from(WaitlistEntry)
        .where(
            WaitlistEntry.deal_id == deal_id,
            WaitlistEntry.served_at.is_(None),
            (WaitlistEntry.created_at < mine.created_at)
            | (
                (WaitlistEntry.created_at == mine.created_at)
                & (WaitlistEntry.user_id < mine.user_id)
            ),
        )
    )
    return int(ahead or 0) + 1


@dataclass(frozen=True)
class Ticket:
    order: Order
    deal: Deal
    event: OfflineEvent
    group: Group | None


async def ticket(session: AsyncSession, order_id: int) -> Ticket | None:
    """An order's place at its event, if it still holds one (else None: nothing to send)."""
    order = await session.get(Order, order_id)
    if order is None or order.status not in ATTENDING or order.quantity <= 0:
        return None
    event = await session.get(OfflineEvent, order.deal_id)
    deal = await session.get(Deal, order.deal_id)
    if event is None or deal is None or deal.status in ("failed", "cancelled"):
        return None
    return Ticket(order, deal, event, await session.get(Group, event.group_id))


def link_payload(code: str) -> str:
    return LINK_PREFIX + code


def parse_link(payload: str) -> str | None:
    code = payload.removeprefix(LINK_PREFIX)
    if payload.startswith(LINK_PREFIX) and re.fullmatch(r"[A-Za-z0-9]{4,16}", code):
        return code
    return None


# ---------------------------------------------------------------- sign-ups and the waitlist


async def on_order_changed(session: AsyncSession, change, now: datetime, via: str) -> None:
    """Called by the one order action after a change: a place taken gets its ticket; a
    place freed goes to the first waiter (through the one order action again)."""
    order = change.order
    if order is None or not change.deal.is_event:
        return
    event = await session.get(OfflineEvent, change.deal.id)
    if event is None:
        return
    if change.old_quantity == 0 and change.new_quantity > 0:
        await session.execute(  # on the waitlist still (a place came free): not any more
            update(WaitlistEntry)
            .where(
                WaitlistEntry.deal_id == event.deal_id,
                WaitlistEntry.user_id == order.user_id,
                WaitlistEntry.served_at.is_(None),
            )
            .values(served_at=now)
        )
        await outbox.promise(
            session,
            key=f"evticket:{order.id}:{int(now.timestamp() * 1000)}",
            chat_id=order.user_id,
            kind=TICKET,
            payload={"order_id": order.id, "what": "admitted" if via == "waitlist" else "joined"},
            group_id=event.group_id,
            now=now,
        )
    elif change.new_quantity == 0 and change.old_quantity > 0:
        served = await payments.serve_waitlist(session, event.deal_id, now)
        if served:
            log.info("event D%s: a place freed, %d waiting member admitted", event.deal_id, served)


@dataclass(frozen=True)
class SignUp:
    """What Join did: a seat taken (`waiting` None), or a place on the full event's waitlist
    (`waiting`: the position, `added`: put there by this tap rather than before)."""

    waiting: int | None = None
    added: bool = False


async def sign_up(
    session: AsyncSession, deal: Deal, group: Group, user_id: int, now: datetime, via: str
) -> SignUp:
    """Join: a seat through the one order action; a full event puts the member on its
    waitlist instead. Other refusals (already in, closed, ...) are the order action's."""
    try:
        await order_service.act(
            session,
            deal_id=deal.id,
            user_id=user_id,
            action="join",
            group=group,
            now=now,
            via=via,
        )
    except order_service.SoldOut:
        added = await payments.join_waitlist(session, deal.id, user_id, group.id, now, free=True)
        return SignUp(await waiting_position(session, deal.id, user_id) or 0, added)
    return SignUp()


async def give_up(
    session: AsyncSession, deal: Deal, group: Group, user_id: int, now: datetime, via: str
) -> bool:
    """Cancel my place: the seat back through the one order action (True), or, holding none,
    off the waitlist (False); neither: NotJoined."""
    try:
        await order_service.act(
            session,
            deal_id=deal.id,
            user_id=user_id,
            action="cancel",
            group=group,
            now=now,
            via=via,
        )
    except order_service.NotJoined:
        if await _leave_waitlist(session, deal.id, user_id):
            return False
        raise
    return True


async def _leave_waitlist(session: AsyncSession, deal_id: int, user_id: int) -> bool:
    result = await session.execute(
        delete(WaitlistEntry).where(
            WaitlistEntry.deal_id == deal_id,
            WaitlistEntry.user_id == user_id,
            WaitlistEntry.served_at.is_(None),
        )
    )
    return (result.rowcount or 0) > 0


# ---------------------------------------------------------------- check-in


@dataclass(frozen=True)
class CheckedIn:
    order: Order
    deal: Deal
    event: OfflineEvent
    member: User | None
    first: bool  # False: checked in before (nothing changed)
    at: datetime  # when the member was checked in (the first time)
    timezone: str  # the event's group's


def normalise_code(code: str) -> str:
    return "".join(ch for ch in (code or "").upper() if ch.isalnum())


async def check_in(
    session: AsyncSession,
    admins: AdminDirectory | None,
    code: str,
    by_id: int,
    now: datetime,
) -> CheckedIn:
    """Mark the order with that check-in code attended, once. Only an owner or administrator
    of the event's group at this moment may (NotEventAdmin); a cancelled place
    (NotAttending) or an unpaid one of an event paid in the chat (Unpaid) is refused."""
    normal = normalise_code(code)
    if not 4 <= len(normal) <= 16:
        raise UnknownCode(normal[:16])
    order = (
        await session.execute(
            select(Order)
            .where(Order.pickup_code == normal)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    event = await session.get(OfflineEvent, order.deal_id) if order is not None else None
    if order is None or event is None:
        raise UnknownCode(normal)
    group = await session.get(Group, event.group_id)
    if group is None:
        raise UnknownCode(normal)
    current = (
        await admins.admins_of(session, group)
        if admins is not None
        else await _stored_admins(session, group.id)
    )
    if by_id not in current:
        raise NotEventAdmin(group.id)
    deal = await session.get(Deal, order.deal_id)
    done = await session.get(EventCheckin, order.id)
    if done is None:
        if order.status not in ATTENDING or order.quantity <= 0:
            raise NotAttending(order.id)
        if payments.is_paid(deal) and order.paid_at is None:
            raise Unpaid(order.id)
    first = await insert_ignore(
        session,
        EventCheckin.__table__,
        {
            "order_id": order.id,
            "deal_id": order.deal_id,
            "group_id": event.group_id,
            "user_id": order.user_id,
            "checked_by": by_id,
            "checked_in_at": now,
        },
        ["order_id"],
    )
    row = await session.get(EventCheckin, order.id, populate_existing=True)
    member = await session.get(User, order.user_id)
    at = row.checked_in_at if row else now
    return CheckedIn(order, deal, event, member, first, at, group.timezone)


async def _stored_admins(session: AsyncSession, group_id: int) -> set[int]:
    from services import groups as group_service

    return await group_service.admin_ids(session, group_id)


# ---------------------------------------------------------------- reminders (the heartbeat)


def _due(column, before: timedelta, now: datetime):
    return (
        column.is_(None),
        OfflineEvent.starts_at > now,
        OfflineEvent.starts_at <= now + before,
    )


async def any_due(session: AsyncSession, now: datetime) -> bool:
    """One read: is a reminder due (the tick opens a write transaction only then)."""
    for kind, before in REMINDERS:
        column = getattr(OfflineEvent, f"reminded_{kind}_at")
        found = await session.scalar(
            select(OfflineEvent.deal_id).where(*_due(column, before, now)).limit(1)
        )
        if found is not None:
            return True
    return False


async def remind_due(session: AsyncSession, now: datetime, limit: int = 100) -> int:
    """Take each due reminder once (a conditional UPDATE of its column) and promise it to
    every member holding a place. A reminder is not sent to members when the event was
    created inside its window (the ticket just told them) or a later one is due as well
    (after downtime: only the latest). Returns the reminders promised."""
    promised = 0
    for index, (kind, before) in enumerate(REMINDERS):
        column = getattr(OfflineEvent, f"reminded_{kind}_at")
        due = list(
            await session.scalars(
                select(OfflineEvent).where(*_due(column, before, now)).limit(limit)
            )
        )
        for event in due:
            took = await session.execute(
                update(OfflineEvent)
                .where(OfflineEvent.deal_id == event.deal_id, column.is_(None))
                .values({column.key: now})
            )
            if (took.rowcount or 0) == 0:
                continue  # another instance took it
            later = REMINDERS[index + 1 :]
            if event.created_at > event.starts_at - before or any(
                event.starts_at <= now + b for _k, b in later
            ):
                continue
            deal = await session.get(Deal, event.deal_id)
            if deal is None or deal.status in ("failed", "cancelled"):
                continue
            orders = await session.scalars(
                select(Order).where(
                    Order.deal_id == event.deal_id,
                    Order.status.in_(ATTENDING),
                    Order.quantity > 0,
                )
            )
            for order in orders:
                promised += await outbox.promise(
                    session,
                    key=f"evremind:{order.id}:{kind}",
                    chat_id=order.user_id,
                    kind=NOTE,
                    payload={"order_id": order.id, "what": kind},
                    group_id=event.group_id,
                    now=now,
                )
    return promised


# ---------------------------------------------------------------- figures


@dataclass(frozen=True)
class Counts:
    signups: int = 0  # places taken in events of the group in the period (not cancelled)
    attended: int = 0  # check-ins in the period

    @property
    def any(self) -> bool:
        return bool(self.signups or self.attended)


async def counts(session: AsyncSession, group_id: int, lower: datetime, upper: datetime) -> Counts:
    """The group's event figures between `lower` and `upper` (UTC)."""
    signups = await session.scalar(
        select(func.count())
        .select_from(Order)
        .join(OfflineEvent, OfflineEvent.deal_id == Order.deal_id)
        .where(
            OfflineEvent.group_id == group_id,
            Order.created_at >= lower,
            Order.created_at < upper,
            Order.status.in_(ATTENDING),
            Order.quantity > 0,
        )
    )
    attended = await session.scalar(
        select(func.count())
        .select_from(EventCheckin)
        .where(
            EventCheckin.group_id == group_id,
            EventCheckin.checked_in_at >= lower,
            EventCheckin.checked_in_at < upper,
        )
    )
    return Counts(int(signups or 0), int(attended or 0))


async def attendance(
    session: AsyncSession, group_id: int, since: datetime
) -> list[tuple[int, datetime]]:
    """(member, checked in at) of the group's check-ins since `since` (core members)."""
    rows = await session.execute(
        select(EventCheckin.user_id, EventCheckin.checked_in_at).where(
            EventCheckin.group_id == group_id, EventCheckin.checked_in_at >= since
        )
    )
    return [(uid, at) for uid, at in rows.all()]

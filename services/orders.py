"""Orders: one per member per deal; quantity changes are atomic and never oversell.

How: inside a savepoint, the member's order row is locked (PostgreSQL `FOR UPDATE`; SQLite
serialises writers anyway), then ONE conditional UPDATE moves the deal's counters —
`stock_left = stock_left - Δ WHERE status = 'open' AND opens_at <= now < closes_at AND
stock_left >= Δ AND (per_person_limit IS NULL OR per_person_limit >= quantity)` — and
returns the deal as updated (no re-read). If it matches no row, nothing changed and the
reason is read and reported (over the limit, sold out, closed, paused, not open yet). The
deal's state in the database decides, not a clock in a handler. Setting a quantity is
absolute, so a double tap or a replay changes nothing.

A join into a group's deal (the Join +1 buttons) takes the lean path (`_place`): the order
row is inserted, or a cancelled one revived, with `INSERT … ON CONFLICT (deal_id, user_id)
DO UPDATE … WHERE status = 'cancelled' RETURNING` — which locks it too — with the
attribution to the last sharer as scalar subqueries; then the same conditional UPDATE. A
refusal rolls the savepoint back, order row included.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models import Deal, Group, Order
from models.upsert import insert_for
from services import activity, coupons, events, gatherings, payments, referrals
from services import credit as credit_service
from services import deals as deal_service
from services.errors import DomainError
from services.parsing import MAX_QUANTITY

PICKUP_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L


class OrderError(DomainError):
    pass


class SoldOut(OrderError):
    def __init__(self, left: int) -> None:
        super().__init__(left)
        self.left = left


class LimitExceeded(OrderError):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class DealClosed(OrderError):
    pass


class DealNotOpenYet(OrderError):
    def __init__(self, opens_at: datetime) -> None:
        super().__init__(opens_at)
        self.opens_at = opens_at


class DealPaused(OrderError):
    pass


class NotJoined(OrderError):
    pass


class AlreadyJoined(OrderError):
    def __init__(self, quantity: int) -> None:
        super().__init__(quantity)
        self.quantity = quantity


class BadQuantity(OrderError):
    pass


class TeamOnly(OrderError):
    """The deal sells only to teams (services.teams): no buying alone."""


class InOffer(OrderError):
    """The member's order belongs to a team buy (`team_id`: the team's own buttons change it)
    or was bought through a bargain (`bargain_id`, services.bargains)."""

    def __init__(self, team_id: int | None, bargain_id: int | None = None) -> None:
        super().__init__(team_id, bargain_id)
        self.team_id = team_id
        self.bargain_id = bargain_id


class OrderPaid(OrderError):
    """The order is paid (services.payments): its member cannot change it; the owner can
    refund it."""


@dataclass
class Change:
    deal: Deal
    order: Order | None
    old_quantity: int
    new_quantity: int

    @property
    def changed(self) -> bool:
        return self.old_quantity != self.new_quantity


ACTIONS = ("join", "set", "cancel")


async def act(
    session: AsyncSession,
    *,
    deal_id: int,
    user_id: int,
    action: str,
    group: Group | None,
    now: datetime,
    quantity: int = 0,
    via: str = "button",
    team_id: int | None = None,
    bargain_id: int | None = None,
) -> Change:
    """The one order action: every path that places, changes or cancels a member's order
    (group buttons, `/buy` and `/cancel`, the private deal card of a share link,
    `/myorders`, and later team buys, payments, the Mini App) calls this.

    `action` is "join" (one unit if not in yet; a double tap changes nothing), "set" (an
    absolute `quantity`, 0 cancels) or "cancel". `group` is the group the order counts in
    (its sign-up count, its referral attribution). `team_id`: the order is a place in that
    team buy (services.teams takes the place; a join is one unit, a cancel leaves it); an
    order in a team is changed only that way (InOffer), and a deal for teams only takes no
    other order (TeamOnly). `bargain_id`: the order is the starter's buy of that bargain
    (services.bargains, a join of one unit; it confirms the order at the bargain's price);
    such an order is not changed by the member either (InOffer). Stock, the per-person
    limit, the deal's state and attribution are checked here and in `set_quantity`, once.
    An offline event's place (services.gatherings) gets its ticket; a place freed goes to
    the event's first waiter, through this action again.
    Records the domain events: OrderChanged when the quantity changed (the effects map
    refreshes the post, tells the admission gate and counts the sign-up), OrderDenied on a
    sold-out refusal.
    Raises an OrderError (nothing changed) when refused."""
    group_id = group.id if group is not None else None
    try:
        if action == "join":
            change = await join(
                session,
                deal_id,
                user_id,
                now,
                group_id=group_id,
                via=via,
                team_id=team_id,
                bargain_id=bargain_id,
            )
        elif action == "set" and team_id is None and bargain_id is None:
            change = await set_quantity(
                session, deal_id, user_id, quantity, now, group_id=group_id, via=via
            )
        elif action == "cancel":
            change = await cancel(session, deal_id, user_id, now, team_id=team_id)
        else:
            raise BadQuantity(quantity)
    except SoldOut as exc:
        events.record(session, events.OrderDenied(deal_id, exc.left))
        raise
    if change.changed:
        chat_id = group.chat_id if group is not None else None
        if chat_id is None and change.order is not None and change.order.group_id is not None:
            chat_id = await session.scalar(
                select(Group.chat_id).where(Group.id == change.order.group_id)
            )
        events.record(
            session,
            events.OrderChanged(
                deal_id=deal_id,
                user_id=user_id,
                chat_id=chat_id,
                old_quantity=change.old_quantity,
                new_quantity=change.new_quantity,
                stock_left=change.deal.stock_left,
                at=now,
                via=via,
            ),
        )
        await payments.on_order_changed(session, change, now)  # a flash sale's hold
        await gatherings.on_order_changed(session, change, now, via)  # an event's ticket, waitlist
    return change


def new_pickup_code() -> str:
    return "".join(secrets.choice(PICKUP_ALPHABET) for _ in range(6))


async def _why_not(
    session: AsyncSession, deal_id: int, quantity: int, delta: int, now: datetime, team: bool
) -> OrderError:
    """Why the deal's conditional UPDATE matched no row (read only on a refusal)."""
    deal = await deal_service.get(session, deal_id)
    if deal.team_only and not team and delta > 0:
        return TeamOnly(deal_id)
    if deal.per_person_limit is not None and quantity > deal.per_person_limit:
        return LimitExceeded(deal.per_person_limit)
    if deal.status in deal_service.FINAL_STATES or deal.closes_at <= now:
        return DealClosed(deal_id)
    if deal.status == "paused":
        return DealPaused(deal_id)
    if deal.status == "scheduled" or deal.opens_at > now:
        return DealNotOpenYet(deal.opens_at)
    if deal.stock_left is not None and deal.stock_left < delta:
        return SoldOut(deal.stock_left)
    return DealClosed(deal_id)  # pragma: no cover - the UPDATE matched nothing for no known reason


async def set_quantity(
    session: AsyncSession,
    deal_id: int,
    user_id: int,
    quantity: int,
    now: datetime,
    *,
    group_id: int | None = None,
    via: str | None = None,
    expect: str | None = None,
    team_id: int | None = None,
    bargain_id: int | None = None,
) -> Change:
    """Make the member's quantity in the deal exactly `quantity` (0 cancels). `via`: where
    an order placed now comes from (button, command, private, card, myorders), kept on a
    new order row. `expect`: "out" (a join: AlreadyJoined if the member holds units) or
    "in" (a cancel: NotJoined if not), checked on the locked order row. `team_id`: the
    place of a team buy this order is, `bargain_id` the bargain it buys (see `act`)."""
    if quantity < 0 or quantity > MAX_QUANTITY:
        raise BadQuantity(quantity)
    for attempt in range(5):
        try:
            async with events.savepoint(session):
                if expect == "out" and group_id is not None and quantity > 0:
                    return await _place(
                        session, deal_id, user_id, quantity, now, group_id, via, team_id,
                        bargain_id,
                    )  # fmt: skip
                return await _set_quantity(
                    session, deal_id, user_id, quantity, now, group_id, via, expect, team_id,
                    bargain_id,
                )  # fmt: skip
        except IntegrityError:
            # a concurrent first join of the same member, or a pickup code collision
            if attempt == 4:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _counters(deal_id: int, quantity: int, delta: int, joins: int, now: datetime, team: bool):
    """The ONE conditional UPDATE of the deal's counters: it matches only an open deal with
    the stock for `delta`, a per-person limit that allows `quantity` and (outside a team)
    no rule of teams only for a new unit; it returns the deal as updated (no re-read)."""
    stock_ok = Deal.stock_left.is_(None) | (Deal.stock_left >= delta)
    limit_ok = Deal.per_person_limit.is_(None) | (Deal.per_person_limit >= quantity)
    alone_ok = [] if team or delta <= 0 else [Deal.team_only.is_(False)]
    return (
        update(Deal)
        .where(
            Deal.id == deal_id,
            Deal.status == "open",
            Deal.opens_at <= now,
            Deal.closes_at > now,
            stock_ok,
            limit_ok,
            *alone_ok,
        )
        .values(
            total_qty=Deal.total_qty + delta,
            participants=Deal.participants + joins,
            stock_left=case((Deal.stock_left.is_(None), None), else_=Deal.stock_left - delta),
            updated_at=now,
        )
        .returning(Deal)
        .execution_options(synchronize_session=False, populate_existing=True)
    )


async def _move_counters(
    session: AsyncSession,
    deal_id: int,
    quantity: int,
    delta: int,
    joins: int,
    now: datetime,
    team: bool = False,
) -> Deal:
    stmt = _counters(deal_id, quantity, delta, joins, now, team)
    deal = (await session.scalars(stmt)).first()
    if deal is None:
        raise await _why_not(session, deal_id, quantity, delta, now, team)
    return deal


def _new_order(
    deal_id: int,
    user_id: int,
    group_id: int | None,
    quantity: int,
    via: str | None,
    now: datetime,
) -> dict:
    """The columns of an order placed now (both ways of placing one use them)."""
    return {
        "deal_id": deal_id,
        "user_id": user_id,
        "group_id": group_id,
        "quantity": quantity,
        "status": "active",
        "pickup_code": new_pickup_code(),
        "fulfilment": "none",
        "via": via[:8] if via else None,
        "created_at": now,
        "updated_at": now,
    }


async def _place(
    session: AsyncSession,
    deal_id: int,
    user_id: int,
    quantity: int,
    now: datetime,
    group_id: int,
    via: str | None,
    team_id: int | None = None,
    bargain_id: int | None = None,
) -> Change:
    """A join into a group's deal: the order row is inserted (or a cancelled one revived) and
    locked in ONE statement that also writes the attribution to the last sharer
    (services.referrals) as scalar subqueries; then the deal's counters move. An order that
    is active (or confirmed/failed) is left untouched: the join is refused. A revived order
    belongs to the team it joins now or the bargain it buys (or to none)."""
    days = await referrals.attribution_days(session, group_id)
    referrer, code = referrals.attribution_columns(user_id, group_id, days, now)
    ins = insert_for(session, Order).values(
        **_new_order(deal_id, user_id, group_id, quantity, via, now),
        referrer_id=referrer,
        share_code=code,
        discount=0,
        team_id=team_id,
        bargain_id=bargain_id,
    )
    stmt = (
        ins.on_conflict_do_update(
            index_elements=["deal_id", "user_id"],
            set_={
                "quantity": ins.excluded.quantity,
                "status": ins.excluded.status,
                "group_id": ins.excluded.group_id,
                "referrer_id": ins.excluded.referrer_id,
                "share_code": ins.excluded.share_code,
                "team_id": ins.excluded.team_id,
                "bargain_id": ins.excluded.bargain_id,
                "updated_at": ins.excluded.updated_at,
            },
            where=Order.status == "cancelled",
        )
        .returning(Order)
        .execution_options(populate_existing=True)
    )
    order = (await session.scalars(stmt)).first()
    if order is None:  # the member has an order that is not cancelled
        held = await _locked_order(session, deal_id, user_id)
        if held is not None and held.status != "failed" and _in_offer(held):
            raise InOffer(held.team_id, held.bargain_id)
        if held is not None and held.status == "active" and held.quantity > 0:
            raise AlreadyJoined(held.quantity)
        raise DealClosed(deal_id)  # confirmed or failed: the deal is over
    try:
        deal = await _move_counters(
            session, deal_id, quantity, quantity, 1, now, team_id is not None
        )
    except OrderError:
        session.expire(order)  # the savepoint takes the row back: never trust it in memory
        raise
    return Change(deal, order, 0, quantity)


def _in_offer(order: Order) -> bool:
    return order.team_id is not None or order.bargain_id is not None


async def _locked_order(session: AsyncSession, deal_id: int, user_id: int) -> Order | None:
    return (
        await session.execute(
            select(Order)
            .where(Order.deal_id == deal_id, Order.user_id == user_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def _set_quantity(
    session: AsyncSession,
    deal_id: int,
    user_id: int,
    quantity: int,
    now: datetime,
    group_id: int | None,
    via: str | None = None,
    expect: str | None = None,
    team_id: int | None = None,
    bargain_id: int | None = None,
) -> Change:
    order = await _locked_order(session, deal_id, user_id)
    old = order.quantity if order is not None and order.status == "active" else 0
    kept = order is not None and order.status != "cancelled"
    held_team = order.team_id if kept else None
    held_bargain = order.bargain_id if kept else None
    if (
        (held_team is not None or held_bargain is not None)
        and (held_team, held_bargain) != (team_id, bargain_id)
        and order.status != "failed"
    ):  # a team's place (left or changed only through its team), a bargain's buy
        raise InOffer(held_team, held_bargain)
    offer = team_id is not None or bargain_id is not None
    if offer and old > 0 and (held_team, held_bargain) != (team_id, bargain_id):
        raise AlreadyJoined(old)
    if expect == "out" and old > 0:
        raise AlreadyJoined(old)
    if expect == "in" and old == 0:
        raise NotJoined(deal_id)
    if order is not None and order.status not in ("active", "cancelled"):
        raise DealClosed(deal_id)  # confirmed or failed: the deal is over
    if order is not None and order.paid_at is not None and quantity != old:
        raise OrderPaid(order.id)
    if quantity == old:
        deal = await deal_service.get(session, deal_id)
        if deal.status in deal_service.FINAL_STATES:
            raise DealClosed(deal_id)
        return Change(deal, order, old, old)
    delta = quantity - old
    joins = 1 if old == 0 and quantity > 0 else (-1 if old > 0 and quantity == 0 else 0)
    deal = await _move_counters(session, deal_id, quantity, delta, joins, now, team_id is not None)
    placed = old == 0 and quantity > 0
    if order is not None and placed and group_id is not None:
        order.group_id = group_id
    # placed now: credit the last sharer (services.referrals), before the row is written
    credit = None
    if placed:
        credit = await referrals.attribute(
            session,
            user_id=user_id,
            group_id=group_id if order is None else order.group_id,
            now=now,
        )
    if order is None:
        order = Order(
            **_new_order(deal_id, user_id, group_id, quantity, via, now),
            referrer_id=credit.referrer_id if credit else None,
            share_code=credit.code if credit else None,
            team_id=team_id,
            bargain_id=bargain_id,
        )
        session.add(order)
    else:
        order.quantity = quantity
        order.status = "active" if quantity > 0 else "cancelled"
        order.updated_at = now
        if placed:
            order.referrer_id = credit.referrer_id if credit else None
            order.share_code = credit.code if credit else None
            order.team_id = team_id
            order.bargain_id = bargain_id
    await session.flush()
    return Change(deal, order, old, quantity)


async def join(
    session: AsyncSession,
    deal_id: int,
    user_id: int,
    now: datetime,
    *,
    group_id: int | None = None,
    via: str | None = None,
    team_id: int | None = None,
    bargain_id: int | None = None,
) -> Change:
    """'Join +1': take one unit if not in yet; if already in, change nothing (a double tap)."""
    return await set_quantity(
        session, deal_id, user_id, 1, now, group_id=group_id, via=via, expect="out",
        team_id=team_id, bargain_id=bargain_id,
    )  # fmt: skip


async def cancel(
    session: AsyncSession, deal_id: int, user_id: int, now: datetime, *, team_id: int | None = None
) -> Change:
    return await set_quantity(session, deal_id, user_id, 0, now, expect="in", team_id=team_id)


async def confirm(
    session: AsyncSession, deal: Deal, orders: list[Order], unit_price: int, now: datetime
) -> None:
    """Confirm these active orders now at `unit_price` (a filled team, services.teams; a
    bargain's buy, services.bargains) in
    one UPDATE: counted as orders, invoiced when the deal takes payments
    (services.payments), shown on the posts."""
    ids = [order.id for order in orders]
    await session.execute(
        update(Order)
        .where(Order.id.in_(ids), Order.status == "active")
        .values(
            status="confirmed",
            unit_price=unit_price,
            amount=Order.quantity * unit_price,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    for order in orders:
        await session.refresh(order)
    confirmed = [order for order in orders if order.status == "confirmed"]
    await activity.count_orders(session, confirmed, now)
    await coupons.on_confirmed(session, deal, confirmed, now)  # the best coupon, before invoices
    await payments.on_confirmed(session, deal, confirmed, now)
    events.record(session, events.DealChanged(deal.id))


async def drop(session: AsyncSession, deal_id: int, order_ids: list[int], now: datetime) -> int:
    """Cancel these active orders of the deal at once, whatever its window (a team that did
    not fill, services.teams: at its expiry, or as its deal closes): their units go back to
    the deal's stock and counts in one UPDATE. The caller holds the team's row (its
    conditional UPDATE), so nothing else changes these orders meanwhile. Returns the units
    given back."""
    if not order_ids:
        return 0
    mine = (Order.id.in_(order_ids), Order.deal_id == deal_id, Order.status == "active")
    quantities = list(await session.scalars(select(Order.quantity).where(*mine)))
    await session.execute(
        update(Order)
        .where(*mine)
        .values(status="cancelled", quantity=0, pay_by=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    units = sum(quantities)
    people = sum(1 for quantity in quantities if quantity > 0)
    if units:
        await session.execute(
            update(Deal)
            .where(Deal.id == deal_id)
            .values(
                total_qty=Deal.total_qty - units,
                participants=Deal.participants - people,
                stock_left=case((Deal.stock_left.is_(None), None), else_=Deal.stock_left + units),
                updated_at=now,
            )
        )
        events.record(session, events.DealChanged(deal_id))
    return units


async def release(session: AsyncSession, order: Order, now: datetime) -> list:
    """A confirmed order (of a succeeded deal, or of a filled team), unpaid at its payment
    deadline, is cancelled
    (services.payments): its units go back to the deal's stock and counts, its referrer's
    commission is reversed and the credit it spent comes back (the ledger entries). The
    order row is locked by the caller."""
    if order.status != "confirmed" or order.quantity <= 0:
        return []
    await session.execute(
        update(Order)
        .where(Order.id == order.id, Order.status == "confirmed")
        .values(status="cancelled", pay_by=None, updated_at=now)
    )
    await session.execute(
        update(Deal)
        .where(Deal.id == order.deal_id)
        .values(
            total_qty=Deal.total_qty - order.quantity,
            participants=Deal.participants - 1,
            stock_left=case(
                (Deal.stock_left.is_(None), None), else_=Deal.stock_left + order.quantity
            ),
            updated_at=now,
        )
    )
    await session.refresh(order)
    entries = await credit_service.on_cancelled(session, order, now)
    await coupons.give_back(session, order, now)  # unless it expired
    events.record(session, events.DealChanged(order.deal_id))  # the sign-up list shows it
    return entries


class _Holding(Exception):
    """The waitlisted member holds an order: the unit taken goes back (the savepoint)."""


async def admit_waiting(
    session: AsyncSession, deal: Deal, user_id: int, group_id: int | None, now: datetime
) -> Order | None:
    """One freed unit of a succeeded deal for a waitlisted member: a confirmed order of one
    unit at the deal's final price (a new row, or their cancelled or failed one revived),
    taken from the stock by one conditional UPDATE. None when no unit is left or the member
    holds an order already (nothing changed)."""
    price = deal.final_price if deal.final_price is not None else deal.unit_price
    try:
        async with events.savepoint(session):
            took = await session.execute(
                update(Deal)
                .where(Deal.id == deal.id, Deal.status == "succeeded", Deal.stock_left >= 1)
                .values(
                    stock_left=Deal.stock_left - 1,
                    total_qty=Deal.total_qty + 1,
                    participants=Deal.participants + 1,
                    updated_at=now,
                )
            )
            if (took.rowcount or 0) == 0:
                return None
            order = await _locked_order(session, deal.id, user_id)
            confirmed = {
                "quantity": 1,
                "status": "confirmed",
                "unit_price": price,
                "amount": price,
                "discount": 0,
                "paid_at": None,
                "paid_amount": 0,
                "updated_at": now,
            }
            if order is None:
                order = Order(
                    **{**_new_order(deal.id, user_id, group_id, 1, "waitlist", now), **confirmed}
                )
                session.add(order)
            elif order.status in ("cancelled", "failed") or order.quantity <= 0:
                for name, value in confirmed.items():
                    setattr(order, name, value)
                order.group_id = group_id if group_id is not None else order.group_id
            else:
                raise _Holding()
            await session.flush()
    except _Holding:
        return None
    events.record(session, events.DealChanged(deal.id))
    return order


async def of_user(session: AsyncSession, user_id: int, limit: int = 50) -> list[tuple[Order, Deal]]:
    rows = await session.execute(
        select(Order, Deal)
        .join(Deal, Deal.id == Order.deal_id)
        .where(Order.user_id == user_id, Order.quantity > 0)
        .order_by(Order.id.desc())
        .limit(limit)
    )
    return [(o, d) for o, d in rows.all()]


async def of_deal(session: AsyncSession, deal_id: int) -> list[Order]:
    rows = await session.scalars(select(Order).where(Order.deal_id == deal_id).order_by(Order.id))
    return list(rows)


@dataclass
class Admission:
    """What one cheap read (no lock) says of a deal for the members asking to join it: the
    deal part is shared by every tap waiting at the gate, the member part is a set."""

    stock_left: int | None  # None: no stock limit
    open: bool  # the deal takes orders now (status open, inside its window)
    per_person_limit: int | None
    holders: frozenset[int]  # of the members asked about, those holding an active order

    def gated(self, user_id: int, units: int) -> bool:
        """A join of a new participant, within the per-person limit, into an open deal with
        stock: it queues at the gate (and may be answered "Sold out." there). Anything else
        goes to the write path, which decides and words it."""
        return (
            self.stock_left is not None
            and self.open
            and user_id not in self.holders
            and (self.per_person_limit is None or units <= self.per_person_limit)
        )


ADMISSION_CHUNK = 500  # member ids per IN (...) list


async def admission(
    session: AsyncSession,
    deal_id: int,
    chat_id: int | None,
    user_ids: list[int] | set[int],
    now: datetime,
    *,
    group_id: int | None = None,
) -> Admission | None:
    """For services.admission: one read for every member waiting on this deal in this chat
    (or group): None if the deal is not posted there."""
    if group_id is not None:  # a deal card in private chat: the order counts in that group
        found = await referrals.deal_in_group(session, deal_id, group_id)
        if found is None:
            return None
        deal = found[0]
    else:
        try:
            deal, _group = await deal_service.posted_in_chat(session, deal_id, chat_id or 0)
        except deal_service.DealNotFound:
            return None
    ids = sorted(set(user_ids))
    holders: set[int] = set()
    for start in range(0, len(ids), ADMISSION_CHUNK):
        rows = await session.scalars(
            select(Order.user_id).where(
                Order.deal_id == deal_id,
                Order.user_id.in_(ids[start : start + ADMISSION_CHUNK]),
                Order.status == "active",
                Order.quantity > 0,
            )
        )
        holders.update(rows)
    return Admission(
        deal.stock_left,
        deal.status == "open" and deal.opens_at <= now < deal.closes_at,
        deal.per_person_limit,
        frozenset(holders),
    )

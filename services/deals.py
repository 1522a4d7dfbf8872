"""Deals: creation, prices and tiers, progress, status changes and the one-time closing.

Rules (see DESIGN §1): the price charged is the tier price reached by the total quantity and
only falls as more join; a deal closes exactly once — succeeded if its minimum was reached,
failed otherwise — and its orders are confirmed at the final price or failed with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from models import Deal, DealPost, Group, Order, User
from services import activity, bargains, coupons, events, notices, payments, rights, teams
from services.admins import AdminDirectory
from services.errors import DealNotFound, DomainError, NotDealOwner  # noqa: F401
from services.parsing import MAX_QUANTITY, ParseError, check_stored_reminders, parse_id

OPEN_STATES = ("scheduled", "open", "paused")
AUDIENCES = ("members", "anyone")  # Deal.audience: who may join from a shared card
FINAL_STATES = ("succeeded", "failed", "cancelled")


class DealFinished(DomainError):
    """The deal is closed or cancelled: nothing about it can change any more."""


@dataclass
class DealSpec:
    """What the wizard collects. Money in minor units of `currency`; times aware UTC."""

    title: str
    currency: str
    unit_price: int
    closes_at: datetime
    opens_at: datetime | None = None
    description: str = ""
    photo_file_id: str | None = None
    tiers: list[tuple[int, int]] = field(default_factory=list)
    min_kind: str | None = None  # units | participants
    min_value: int | None = None
    stock: int | None = None
    per_person_limit: int | None = None
    pickup_note: str = ""
    group_ids: list[int] = field(default_factory=list)
    # Reminders before closing as stored (services.parsing.parse_reminders): "120,15";
    # None: the default (2 h and 15 min); "": none.
    reminders: str | None = None
    # Who may join from a shared inline card: "members" of the deal's group (the default) or
    # "anyone" with the card (a pickup point open to neighbours).
    audience: str = "members"
    # How members pay (services.payments): "cash" on pickup, "card" through the provider,
    # "stars" (XTR, digital items only); the payment deadline after success (hours) and a
    # flash sale's hold (minutes).
    pay_method: str = "cash"
    digital: bool = False
    pay_hours: int = 24
    hold_minutes: int = 15
    # A duplicated deal's product family (Deal.product_key: the origin deal's id), so its
    # reviews count with the deal it was copied from; None: a new product.
    product_key: int | None = None


def minute_of(moment: datetime) -> datetime:
    """The moment without seconds: times are typed (and compared) to the minute."""
    return moment.replace(second=0, microsecond=0)


# One place for each rule that involves several fields; `validate` and the wizard's draft
# (services.deal_draft) both call these.


def check_closes(closes_at: datetime, now: datetime) -> None:
    """The closing time is in the future."""
    if closes_at <= now:
        raise ParseError("time_past")


def check_opens(opens_at: datetime, now: datetime) -> None:
    """An opening time is not before the current minute."""
    if opens_at < minute_of(now):
        raise ParseError("time_past")


def check_window(opens_at: datetime, closes_at: datetime) -> None:
    """The deal closes after it opens."""
    if closes_at <= opens_at:
        raise ParseError("closes_before_opens")


def check_minimum_fits_stock(
    min_kind: str | None, min_value: int | None, stock: int | None
) -> None:
    """A minimum counted in units cannot be above the stock."""
    if stock is not None and min_kind == "units" and (min_value or 0) > stock:
        raise ParseError("min_above_stock", stock=stock)


def check_audience(audience: str) -> str:
    """One of AUDIENCES (ParseError "audience" otherwise)."""
    if audience not in AUDIENCES:
        raise ParseError("audience")
    return audience


def validate(spec: DealSpec, now: datetime, *, free: bool = False) -> None:
    """Rules that involve several fields (each field was parsed on its own before).
    `free`: a price of 0 is allowed (a free offline event, services.gatherings; it takes
    no payment)."""
    check_closes(spec.closes_at, now)
    if spec.opens_at is not None:
        check_opens(spec.opens_at, now)
    check_window(spec.opens_at or now, spec.closes_at)
    if spec.unit_price < 0 or (spec.unit_price == 0 and not (free and spec.pay_method == "cash")):
        raise ParseError("price_positive")
    if spec.min_kind not in (None, "units", "participants"):
        raise ParseError("min_kind")
    if spec.min_kind and not (spec.min_value and 0 < spec.min_value <= MAX_QUANTITY):
        raise ParseError("quantity_positive")
    if spec.stock is not None and not 0 < spec.stock <= 1_000_000:
        raise ParseError("quantity_too_large", max=1_000_000)
    if spec.per_person_limit is not None and spec.per_person_limit <= 0:
        raise ParseError("quantity_positive")
    check_minimum_fits_stock(spec.min_kind, spec.min_value, spec.stock)
    if not spec.group_ids:
        raise ParseError("no_groups")
    spec.reminders = check_stored_reminders(spec.reminders)
    check_audience(spec.audience)
    check_payment(spec)


PAY_METHODS = ("cash", "card", "stars")
PAY_HOURS = (1, 168)  # the payment deadline after success, in hours
HOLD_MINUTES = (5, 120)  # a flash sale's hold, in minutes


def check_payment(spec: DealSpec) -> None:
    """How a deal is paid: Stars only for digital items and in XTR (and XTR only with
    Stars); tiers on a paid deal need a minimum (members pay once, after success, at the
    price reached: a flash sale's price cannot fall after they paid); bounded windows."""
    if spec.pay_method not in PAY_METHODS:
        raise ParseError("pay_method")
    if (spec.pay_method == "stars") != (spec.currency == "XTR"):
        raise ParseError("pay_stars_currency")
    if spec.pay_method == "stars" and not spec.digital:
        raise ParseError("pay_stars_digital")
    if spec.pay_method != "cash" and spec.tiers and not spec.min_kind:
        raise ParseError("pay_tiers_minimum")
    if not PAY_HOURS[0] <= spec.pay_hours <= PAY_HOURS[1]:
        raise ParseError("pay_hours", min=PAY_HOURS[0], max=PAY_HOURS[1])
    if not HOLD_MINUTES[0] <= spec.hold_minutes <= HOLD_MINUTES[1]:
        raise ParseError("hold_minutes", min=HOLD_MINUTES[0], max=HOLD_MINUTES[1])


async def create(
    session: AsyncSession, owner_id: int, spec: DealSpec, now: datetime, *, free: bool = False
) -> Deal:
    validate(spec, now, free=free)
    opens = spec.opens_at or now
    deal = Deal(
        owner_id=owner_id,
        title=spec.title,
        description=spec.description,
        photo_file_id=spec.photo_file_id,
        currency=spec.currency,
        unit_price=spec.unit_price,
        tiers=json.dumps(spec.tiers),
        min_kind=spec.min_kind,
        min_value=spec.min_value if spec.min_kind else None,
        stock_total=spec.stock,
        stock_left=spec.stock,
        per_person_limit=spec.per_person_limit,
        opens_at=opens,
        closes_at=spec.closes_at,
        pickup_note=spec.pickup_note,
        reminders=spec.reminders,
        audience=spec.audience,
        pay_method=spec.pay_method,
        digital=spec.digital,
        pay_hours=spec.pay_hours,
        hold_minutes=spec.hold_minutes,
        product_key=spec.product_key,
        status="open" if opens <= now else "scheduled",
        total_qty=0,
        participants=0,
        created_at=now,
        updated_at=now,
    )
    session.add(deal)
    await session.flush()
    for group_id in dict.fromkeys(spec.group_ids):
        session.add(DealPost(deal_id=deal.id, group_id=group_id))
    await session.flush()
    return deal


# ---------------------------------------------------------------- prices


def tiers_of(deal: Deal) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in json.loads(deal.tiers or "[]")]


def price_at(deal: Deal, total_qty: int) -> int:
    """The unit price reached by a total quantity (the last tier whose threshold is met)."""
    price = deal.unit_price
    for threshold, tier_price in tiers_of(deal):
        if total_qty >= threshold:
            price = tier_price
    return price


def next_tier(deal: Deal, total_qty: int) -> tuple[int, int] | None:
    """(units still needed, price) of the next tier, or None at the lowest price."""
    for threshold, tier_price in tiers_of(deal):
        if total_qty < threshold:
            return threshold - total_qty, tier_price
    return None


def minimum_reached(deal: Deal) -> bool:
    if not deal.min_kind or not deal.min_value:
        return True
    have = deal.total_qty if deal.min_kind == "units" else deal.participants
    return have >= deal.min_value


def missing_for_minimum(deal: Deal) -> int:
    if not deal.min_kind or not deal.min_value:
        return 0
    have = deal.total_qty if deal.min_kind == "units" else deal.participants
    return max(deal.min_value - have, 0)


# ---------------------------------------------------------------- reading


def parse_code(text: str) -> int | None:
    """'D17', 'd17', '17' → 17."""
    raw = (text or "").strip().upper().removeprefix("D")
    return parse_id(raw)


async def get(session: AsyncSession, deal_id: int, *, lock: bool = False) -> Deal:
    return await rights.load_deal(session, deal_id, lock=lock)


async def get_owned(
    session: AsyncSession,
    deal_id: int,
    owner_id: int,
    *,
    lock: bool = False,
    admins: AdminDirectory | None = None,
) -> Deal:
    """The deal, if `owner_id` manages it now (services.rights); else DealNotFound /
    NotDealOwner."""
    return await rights.manage_deal(session, admins, deal_id, owner_id, lock=lock)


async def posts(session: AsyncSession, deal_id: int) -> list[tuple[DealPost, Group]]:
    rows = await session.execute(
        select(DealPost, Group)
        .join(Group, Group.id == DealPost.group_id)
        .where(DealPost.deal_id == deal_id)
    )
    return [(p, g) for p, g in rows.all()]


async def groups_by_deal(session: AsyncSession, deal_ids: list[int]) -> dict[int, list[Group]]:
    """The target groups of several deals at once (by group id), e.g. to show each deal's
    times in its groups' timezones without one query per deal."""
    result: dict[int, list[Group]] = {deal_id: [] for deal_id in deal_ids}
    if not deal_ids:
        return result
    rows = await session.execute(
        select(DealPost.deal_id, Group)
        .join(Group, Group.id == DealPost.group_id)
        .where(DealPost.deal_id.in_(deal_ids))
        .order_by(DealPost.deal_id, DealPost.group_id)
    )
    for deal_id, group in rows.all():
        result[deal_id].append(group)
    return result


async def sign_up_list(session: AsyncSession, deal_id: int) -> list[tuple[Order, User | None]]:
    """Active (or, once closed, confirmed) orders in the order people joined."""
    return (await sign_up_lists(session, [deal_id]))[deal_id]


async def sign_up_lists(
    session: AsyncSession, deal_ids: list[int]
) -> dict[int, list[tuple[Order, User | None]]]:
    """The sign-up lists of several deals in one query (every id asked is a key): active
    (or, once closed, confirmed) orders in the order people joined."""
    result: dict[int, list[tuple[Order, User | None]]] = {d: [] for d in deal_ids}
    if not deal_ids:
        return result
    rows = await session.execute(
        select(Order, User)
        .outerjoin(User, User.id == Order.user_id)
        .where(
            Order.deal_id.in_(sorted(set(deal_ids))),
            Order.status.in_(("active", "confirmed")),
            Order.quantity > 0,
        )
        .order_by(Order.deal_id, Order.id)
    )
    for order, user in rows.all():
        result[order.deal_id].append((order, user))
    return result


@dataclass
class PostedDeal:
    """What a refresh of a deal's posts reads: the deal (fresh) and its posts with groups."""

    deal: Deal
    posts: list[tuple[DealPost, Group]] = field(default_factory=list)


async def posted_deals(session: AsyncSession, deal_ids: list[int]) -> dict[int, PostedDeal]:
    """Several deals with their posts and groups in one query (fresh from the database);
    an unknown deal is absent."""
    if not deal_ids:
        return {}
    rows = await session.execute(
        select(Deal, DealPost, Group)
        .outerjoin(DealPost, DealPost.deal_id == Deal.id)
        .outerjoin(Group, Group.id == DealPost.group_id)
        .where(Deal.id.in_(sorted(set(deal_ids))))
        .order_by(Deal.id, DealPost.group_id)
        .execution_options(populate_existing=True)
    )
    result: dict[int, PostedDeal] = {}
    for deal, post, group in rows.all():
        found = result.setdefault(deal.id, PostedDeal(deal))
        if post is not None and group is not None:
            found.posts.append((post, group))
    return result


async def open_in_group(session: AsyncSession, group_id: int) -> list[Deal]:
    rows = await session.scalars(
        select(Deal)
        .join(DealPost, DealPost.deal_id == Deal.id)
        .where(DealPost.group_id == group_id, Deal.status.in_(("open", "paused")))
        .order_by(Deal.closes_at)
    )
    return list(rows)


async def owned_by(
    session: AsyncSession,
    owner_id: int,
    limit: int = 30,
    *,
    admins: AdminDirectory | None = None,
) -> list[Deal]:
    """The deals the person may manage now (services.rights.managed_deals), newest first."""
    return await rights.managed_deals(session, admins, owner_id, limit)


# ---------------------------------------------------------------- status changes


@dataclass
class Closing:
    deal: Deal
    outcome: str  # succeeded | failed | cancelled
    orders: list[Order]


async def close(
    session: AsyncSession, deal_id: int, now: datetime, *, cancel: bool = False
) -> Closing | None:
    """Close the deal once: succeeded or failed by its minimum (or cancelled by the owner).

    The deal row is locked, its status changed by a conditional UPDATE, so a second call
    (a double trigger, a second instance) returns None and changes nothing. Joins check the
    status in their own conditional UPDATE, so none can slip in after this.
    """
    deal = await get(session, deal_id, lock=True)
    if deal.status not in OPEN_STATES:
        return None
    await teams.on_deal_closing(session, deal, now)  # open teams fail: their units go back
    await bargains.on_deal_closing(session, deal, now)  # open bargains end
    await session.refresh(deal)
    if cancel:
        outcome = "cancelled"
    else:
        outcome = "succeeded" if minimum_reached(deal) else "failed"
    final_price = price_at(deal, deal.total_qty) if outcome == "succeeded" else None
    result = await session.execute(
        update(Deal)
        .where(Deal.id == deal_id, Deal.status.in_(OPEN_STATES))
        .values(
            status=outcome,
            closed_at=now,
            final_price=final_price,
            updated_at=now,
            announced_at=now,  # its notices are promised below, in this transaction
        )
    )
    if (result.rowcount or 0) == 0:
        return None
    active = (
        Order.deal_id == deal_id,
        Order.status == "active",
        Order.quantity > 0,
    )
    if outcome == "succeeded":
        await session.execute(
            update(Order)
            .where(*active)
            .values(
                status="confirmed",
                unit_price=final_price,
                amount=Order.quantity * final_price,
                updated_at=now,
            )
        )
    else:
        await session.execute(
            update(Order)
            .where(*active)
            .values(status="failed" if outcome == "failed" else "cancelled", updated_at=now)
        )
    if outcome == "cancelled":  # a filled team's or a bargain's orders go with the deal
        await session.execute(  # (and are refunded)
            update(Order)
            .where(
                Order.deal_id == deal_id,
                Order.status == "confirmed",
                Order.team_id.is_not(None) | Order.bargain_id.is_not(None),
                Order.quantity > 0,
            )
            .values(status="cancelled", pay_by=None, updated_at=now)
        )
    await session.refresh(deal)
    closed = await _closed_orders(session, deal_id, outcome)
    if outcome == "succeeded":  # the activity counters' "orders", in this same transaction
        await activity.count_orders(session, closed, now)
    await coupons.on_closed(session, deal, closed, now)  # coupons applied, or given back
    await payments.on_closed(session, deal, closed, now)  # invoices, or payments given back
    done = Closing(deal, outcome, closed)
    await notices.closing(session, done, now)  # every participant and the owner are told
    events.record(session, events.DealClosed(deal_id, outcome))  # the posts' final state
    return done


async def close_owned(
    session: AsyncSession,
    deal_id: int,
    owner_id: int,
    now: datetime,
    *,
    cancel: bool = False,
    admins: AdminDirectory | None = None,
) -> Closing | None:
    """The owner closes (or cancels) the deal now. Raises DealNotFound / NotDealOwner;
    None if it was already closed (nothing changes, nobody is told twice)."""
    await get_owned(session, deal_id, owner_id, admins=admins)
    return await close(session, deal_id, now, cancel=cancel)


async def _closed_orders(session: AsyncSession, deal_id: int, outcome: str) -> list[Order]:
    """The orders a closing decided (confirmed, failed or cancelled with it), in join order.
    A filled team's orders were decided by their team (services.teams), a bargain's by its
    buy (services.bargains), unless the deal was cancelled."""
    team_ok = (
        [] if outcome == "cancelled" else [Order.team_id.is_(None), Order.bargain_id.is_(None)]
    )
    rows = await session.scalars(
        select(Order)
        .where(
            Order.deal_id == deal_id,
            Order.status.in_(("confirmed", "failed", "cancelled")),
            Order.quantity > 0,
            *team_ok,
        )
        .order_by(Order.id)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def closing_of(session: AsyncSession, deal_id: int) -> Closing:
    """The outcome of an already closed deal, as `close` returned it (for a late announcement)."""
    deal = await get(session, deal_id)
    if deal.status not in FINAL_STATES:
        raise DomainError(f"deal {deal_id} is not closed")
    return Closing(deal, deal.status, await _closed_orders(session, deal_id, deal.status))


async def unannounced(session: AsyncSession, limit: int = 100) -> list[int]:
    """Deals closed without their notices promised: closed by a version of the bot before
    the outbox, that stopped before telling anyone (announced_at is set by `close` now)."""
    rows = await session.scalars(
        select(Deal.id)
        .where(Deal.status.in_(FINAL_STATES), Deal.announced_at.is_(None))
        .order_by(Deal.id)
        .limit(limit)
    )
    return list(rows)


async def claim_announcement(session: AsyncSession, deal_id: int, now: datetime) -> bool:
    """Take the announcement of such a closing: True for the one caller that gets it."""
    result = await session.execute(
        update(Deal)
        .where(Deal.id == deal_id, Deal.status.in_(FINAL_STATES), Deal.announced_at.is_(None))
        .values(announced_at=now)
    )
    return (result.rowcount or 0) > 0


async def mark_rendered(
    session: AsyncSession, deal_id: int, group_ids: list[int], shown: datetime
) -> None:
    """The posts of the deal in these groups show the deal as it was when its `updated_at`
    was `shown` (the version of the deal they were rendered from)."""
    await mark_rendered_many(session, [(deal_id, group_ids, shown)])


async def mark_rendered_many(
    session: AsyncSession, shown: list[tuple[int, list[int], datetime]]
) -> None:
    """`mark_rendered` for several deals in one statement: (deal id, group ids, version)."""
    params = [
        {"b_deal": deal_id, "b_group": group_id, "b_shown": at}
        for deal_id, group_ids, at in shown
        for group_id in group_ids
    ]
    if not params:
        return
    table = DealPost.__table__
    await session.execute(
        update(table)
        .where(table.c.deal_id == bindparam("b_deal"), table.c.group_id == bindparam("b_group"))
        .values(rendered_at=bindparam("b_shown")),
        params,
    )


async def stale_posts(session: AsyncSession, limit: int = 1000) -> list[int]:
    """Deals with a post that shows another version of the deal than its current one (its
    `updated_at` moved since the post was rendered), most recently changed first. A
    version, not a time comparison: a change whose `now` was taken before a render read
    the deal, and that committed after it, is still seen."""
    rows = await session.execute(
        select(Deal.id)
        .join(DealPost, DealPost.deal_id == Deal.id)
        .join(Group, Group.id == DealPost.group_id)
        .where(DealPost.message_id.is_not(None), Group.is_active.is_(True))
        .where(or_(DealPost.rendered_at.is_(None), DealPost.rendered_at != Deal.updated_at))
        .group_by(Deal.id)
        .order_by(func.max(Deal.updated_at).desc())
        .limit(limit)
    )
    return [row[0] for row in rows]


async def due_for_closing(session: AsyncSession, now: datetime) -> list[int]:
    rows = await session.scalars(
        select(Deal.id)
        .where(Deal.status.in_(("open", "paused")), Deal.closes_at <= now)
        .order_by(Deal.closes_at)
    )
    return list(rows)


async def due_for_opening(session: AsyncSession, now: datetime) -> list[int]:
    rows = await session.scalars(
        select(Deal.id)
        .where(Deal.status == "scheduled", Deal.opens_at <= now)
        .order_by(Deal.opens_at)
    )
    return list(rows)


async def open_scheduled(session: AsyncSession, deal_id: int, now: datetime) -> bool:
    """scheduled → open, once. True if this call opened it."""
    result = await session.execute(
        update(Deal)
        .where(Deal.id == deal_id, Deal.status == "scheduled", Deal.opens_at <= now)
        .values(status="open", updated_at=now)
    )
    return (result.rowcount or 0) > 0


async def set_paused(
    session: AsyncSession,
    deal_id: int,
    owner_id: int,
    paused: bool,
    now: datetime,
    *,
    admins: AdminDirectory | None = None,
) -> Deal:
    deal = await get_owned(session, deal_id, owner_id, lock=True, admins=admins)
    want_from, want_to = ("open", "paused") if paused else ("paused", "open")
    if deal.status in FINAL_STATES:
        raise DealFinished(deal_id)
    if deal.status == want_from:
        deal.status = want_to
        deal.updated_at = now
        await session.flush()
    return deal


async def edit(
    session: AsyncSession,
    deal_id: int,
    owner_id: int,
    now: datetime,
    *,
    description: str | None = None,
    closes_at: datetime | None = None,
    add_stock: int | None = None,
    admins: AdminDirectory | None = None,
) -> Deal:
    """What is safe after publishing: the description, a LATER closing time, MORE stock.
    Prices are never changed here, so nobody who joined pays more."""
    deal = await get_owned(session, deal_id, owner_id, lock=True, admins=admins)
    if deal.status in FINAL_STATES:
        raise DealFinished(deal_id)
    if description is not None:
        deal.description = description
    if closes_at is not None:
        if closes_at <= deal.closes_at or closes_at <= now:
            raise ParseError("closes_not_later")
        deal.closes_at = closes_at
    if add_stock is not None:
        if add_stock <= 0:
            raise ParseError("quantity_positive")
        if deal.stock_total is None:
            raise ParseError("no_stock_limit")
        await session.execute(
            update(Deal)
            .where(Deal.id == deal_id)
            .values(
                stock_total=Deal.stock_total + add_stock, stock_left=Deal.stock_left + add_stock
            )
        )
        await session.refresh(deal)
    deal.updated_at = now
    await session.flush()
    return deal


async def set_reminders(
    session: AsyncSession,
    deal_id: int,
    owner_id: int,
    reminders: str | None,
    now: datetime,
    *,
    admins: AdminDirectory | None = None,
) -> Deal:
    """New reminders before closing (as parse_reminders returns them) for a deal not closed
    yet. Reminders already sent or skipped are recorded per kind and never go out again."""
    deal = await get_owned(session, deal_id, owner_id, lock=True, admins=admins)
    if deal.status in FINAL_STATES:
        raise DealFinished(deal_id)
    deal.reminders = check_stored_reminders(reminders)
    deal.updated_at = now
    await session.flush()
    return deal


async def set_audience(
    session: AsyncSession,
    deal_id: int,
    owner_id: int,
    audience: str,
    now: datetime,
    *,
    admins: AdminDirectory | None = None,
) -> Deal:
    """Who may join from the deal's shared cards ("members" | "anyone"), for a deal not
    closed yet, by a person who manages it now (services.rights). Cards and posts show the
    change once this commits (DealChanged)."""
    check_audience(audience)
    deal = await get_owned(session, deal_id, owner_id, lock=True, admins=admins)
    if deal.status in FINAL_STATES:
        raise DealFinished(deal_id)
    if deal.audience != audience:
        deal.audience = audience
        deal.updated_at = now
        await session.flush()
        events.record(session, events.DealChanged(deal.id))
    return deal


async def duplicate(
    session: AsyncSession, deal_id: int, owner_id: int, *, admins: AdminDirectory | None = None
) -> DealSpec:
    """A new spec from an old deal (times must be chosen again)."""
    deal = await get_owned(session, deal_id, owner_id, admins=admins)
    group_ids = [p.group_id for p, _g in await posts(session, deal_id)]
    return DealSpec(
        title=deal.title,
        currency=deal.currency,
        unit_price=deal.unit_price,
        closes_at=deal.closes_at,
        description=deal.description,
        photo_file_id=deal.photo_file_id,
        tiers=tiers_of(deal),
        min_kind=deal.min_kind,
        min_value=deal.min_value,
        stock=deal.stock_total,
        per_person_limit=deal.per_person_limit,
        pickup_note=deal.pickup_note,
        group_ids=group_ids,
        reminders=deal.reminders,
        audience=deal.audience or "members",
        product_key=deal.family,  # the copy's reviews count with its origin's
    )


# ---------------------------------------------------------------- posts in groups

# A post being sent is claimed by setting `posted_at` while `message_id` is still empty; a
# claim older than this (the sender crashed) may be taken again.
POST_CLAIM_LEASE = timedelta(minutes=5)


async def posted_in_chat(session: AsyncSession, deal_id: int, chat_id: int) -> tuple[Deal, Group]:
    """The deal and the group, if the deal is posted in the group with this chat id; else
    DealNotFound (an unknown deal and one that belongs to another group look the same)."""
    row = (
        await session.execute(
            select(Deal, Group)
            .join(DealPost, DealPost.deal_id == Deal.id)
            .join(Group, Group.id == DealPost.group_id)
            .where(Deal.id == deal_id, Group.chat_id == chat_id)
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        raise DealNotFound(deal_id)
    return row[0], row[1]


async def claim_post(session: AsyncSession, deal_id: int, group_id: int, now: datetime) -> bool:
    """Take the right to send the deal's post into the group (once; see POST_CLAIM_LEASE)."""
    result = await session.execute(
        update(DealPost)
        .where(
            DealPost.deal_id == deal_id,
            DealPost.group_id == group_id,
            DealPost.message_id.is_(None),
            or_(DealPost.posted_at.is_(None), DealPost.posted_at < now - POST_CLAIM_LEASE),
        )
        .values(posted_at=now)
    )
    return (result.rowcount or 0) > 0


async def store_post(
    session: AsyncSession, deal_id: int, group_id: int, message_id: int, now: datetime
) -> None:
    await session.execute(
        update(DealPost)
        .where(DealPost.deal_id == deal_id, DealPost.group_id == group_id)
        .values(message_id=message_id, posted_at=now)
    )


async def release_post(session: AsyncSession, deal_id: int, group_id: int) -> None:
    """Sending failed: give the claim back so a later run tries again."""
    await session.execute(
        update(DealPost)
        .where(
            DealPost.deal_id == deal_id,
            DealPost.group_id == group_id,
            DealPost.message_id.is_(None),
        )
        .values(posted_at=None)
    )


async def unposted(session: AsyncSession, now: datetime) -> list[int]:
    """Open deals with a post not sent yet into an active group (and not being sent)."""
    rows = await session.scalars(
        select(Deal.id)
        .join(DealPost, DealPost.deal_id == Deal.id)
        .join(Group, Group.id == DealPost.group_id)
        .where(
            Deal.status.in_(("open", "paused")),
            Group.is_active.is_(True),
            DealPost.message_id.is_(None),
            or_(DealPost.posted_at.is_(None), DealPost.posted_at < now - POST_CLAIM_LEASE),
        )
        .distinct()
        .order_by(Deal.id)
    )
    return list(rows)


async def people_of(session: AsyncSession, user_ids: list[int]) -> dict[int, User]:
    if not user_ids:
        return {}
    rows = await session.scalars(select(User).where(User.id.in_(sorted(set(user_ids)))))
    return {u.id: u for u in rows}


async def next_due(session: AsyncSession, limit: int = 5) -> tuple[list[Deal], list[Deal]]:
    """The next deals to open (scheduled, by opens_at) and to close (open or paused, by
    closes_at), `limit` of each: the operator's view (/status)."""
    opening = await session.scalars(
        select(Deal).where(Deal.status == "scheduled").order_by(Deal.opens_at, Deal.id).limit(limit)
    )
    closing = await session.scalars(
        select(Deal)
        .where(Deal.status.in_(("open", "paused")))
        .order_by(Deal.closes_at, Deal.id)
        .limit(limit)
    )
    return list(opening), list(closing)


async def fresh(session: AsyncSession, deal: Deal) -> None:
    """Reload a deal whose attributes a rolled-back savepoint expired (a refused order
    change rolls back its savepoint; reading an expired attribute would need IO here)."""
    if sa_inspect(deal).expired_attributes:
        await session.refresh(deal)

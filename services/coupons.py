"""Coupons (券) and coupon packs (券包) of a group. No aiogram here.

Rules (models.coupons): an owner of the group creates a coupon — an amount off (minor units of
the group's currency) or a percent off (1–90 %), a minimum order amount, a validity (a fixed
end, or N days after claiming), a per-member limit, a total, optionally some of the group's
deals only — and its rules never change afterwards (there is no edit; `end` only stops new
claims, claims already made stay valid).

Claiming: ONE conditional UPDATE `claimed = claimed + 1 WHERE claimed < total AND not ended`
takes a coupon (it also locks the coupon row: PostgreSQL's row lock, SQLite's single writer),
then the member's claims are counted under that lock and a claim numbered `seq` is inserted
(unique per coupon, member and seq: two concurrent claims of one member cannot both pass the
per-member limit). A refusal rolls the savepoint back, counter included.

Redemption: when an order gets its amount — a deal's closing (succeeded: `on_closed`), a
filled team (`on_confirmed`), a flash sale's hold (`on_priced`) — the coupon already on the
order is kept if it still applies, else the best one of the member's live claims is taken:
the largest discount, then the earliest expiry, then the oldest claim. A claim is taken by a
conditional UPDATE (`order_id IS NULL`), and an order has at most one (a unique key), so a
claim is redeemed once, in the transaction that applies it. `switch` lets the member pick
another claim (or none) while the order is unpaid and not handed over; the invoice is made
again (services.payments.on_discount).

Money: discount = the amount off, or floor(amount × percent / 100) (rounding down favours
nobody unfairly: the member never gets more than the percent), capped by what is left after
credit (`amount − discount`), so the sum of discounts never makes an amount negative. Only
orders in the coupon's currency, of its group, at least `min_order`, and (if it names deals)
of those deals take it.

Giving back: an order cancelled (its deal failed or was cancelled, a hold cancelled or lapsed,
an unpaid order released at its deadline, a refund) gives its claim back if the claim has not
expired; an expired one stays spent.

Packs: each member has one pack link per group (`/start pack_<code>`). A friend who opens it
and has never ordered in the group (no order other than cancelled ones) is recorded once per
group (the first pack wins); when their first order in the group is handed over (picked up
or delivered), the friend and the sharer each get a claim of the group's pack coupon, once.
One level: only the pack the buyer opened rewards, so a friend's own later shares reward the
friend, never the first sharer. The sharer is rewarded at most PACK_WEEKLY_LIMIT times in 7
days (rolling; the friend still is). A pack opened by its own sharer is refused. What cannot
be detected: a second Telegram account of the same person (Telegram gives no link between
accounts); the safeguards are that the friend must never have ordered in the group, that the
reward waits for a real hand-over by the owner, and the weekly limit.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models import (
    Coupon,
    CouponClaim,
    CouponDeal,
    CouponPack,
    Deal,
    DealPost,
    Group,
    Membership,
    Order,
    PackClaim,
)
from models.upsert import insert_ignore
from services import events, outbox, rights
from services.admins import AdminDirectory
from services.errors import DomainError, NotGroupAdmin
from services.parsing import ParseError, local_to_utc, parse_int, parse_price_in
from services.privacy import is_pseudonym

log = logging.getLogger(__name__)

KINDS = ("amount", "percent")
MAX_PERCENT = 90
MAX_TOTAL = 100_000
MAX_PER_MEMBER = 100
MAX_DAYS = 365
DEFAULT_DAYS = 30
MAX_DEALS = 20
PACK_WEEKLY_LIMIT = 10
WEEK = timedelta(days=7)
LINK_PREFIX = "pack_"
CODE_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
FULFILLED = ("picked_up", "delivered")
NOTE = "coupon_note"
MEMBER_STATES = ("member", "administrator", "creator", "restricted")
CHUNK = 500


class CouponError(DomainError):
    pass


class BadCoupon(CouponError):
    """The owner's `/coupon` did not parse: `what` is usage | value | percent | min | days |
    until | limit | total | deals | both_validity | pack_scope."""

    def __init__(self, what: str, value: str = "") -> None:
        super().__init__(what, value)
        self.what = what
        self.value = value


class CouponNotFound(CouponError):
    """No such coupon, or one the person cannot claim (another group's, a pack coupon)."""


class CouponsGone(CouponError):
    """Every coupon of it has been claimed."""


class CouponEnded(CouponError):
    """The owner ended it, or its fixed validity is over."""


class ClaimLimit(CouponError):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class CannotUse(CouponError):
    """A switch refused: `reason` order (not an unpaid order of yours that takes coupons
    now) | coupon (that coupon is not yours, used, expired or does not apply here)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PackRefused(CouponError):
    """`reason`: unknown (no such pack) | self (your own pack) | ordered (you have ordered in
    that group before) | taken (you opened another member's pack there) | none (the group
    has no pack coupon now)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------- rules


@dataclass
class CouponSpec:
    kind: str = "amount"
    value: int = 0
    min_order: int = 0
    valid_until: datetime | None = None
    valid_days: int | None = None
    per_member: int = 1
    total: int = 100
    deal_ids: list[int] = field(default_factory=list)
    pack: bool = False


_PERCENT = re.compile(r"^([0-9０-９]{1,3})\s*[%％]$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
KEYWORDS = ("min", "days", "until", "limit", "total", "deals")


def parse_spec(words: list[str], group: Group, now: datetime) -> CouponSpec:
    """`5.00|10% [min 30] [days 7 | until 2026-12-31] [limit 1] [total 100] [deals D3,D4]
    [pack]` in the group's currency and timezone (an end date: the end of that local day)."""
    if not words:
        raise BadCoupon("usage")
    spec = CouponSpec()
    first = words[0]
    percent = _PERCENT.match(first)
    if percent:
        spec.kind = "percent"
        spec.value = parse_int(percent.group(1), minimum=0, maximum=999)
        if not 1 <= spec.value <= MAX_PERCENT:
            raise BadCoupon("percent", first)
    else:
        try:
            spec.value = parse_price_in(first, group.currency).amount
        except ParseError:
            raise BadCoupon("value", first) from None
    rest = words[1:]
    i = 0
    while i < len(rest):
        word = rest[i].lower()
        if word == "pack":
            spec.pack = True
            i += 1
            continue
        if word not in KEYWORDS or i + 1 >= len(rest):
            raise BadCoupon("usage", rest[i])
        arg = rest[i + 1]
        i += 2
        try:
            if word == "min":
                spec.min_order = parse_price_in(arg, group.currency).amount
            elif word == "days":
                spec.valid_days = parse_int(arg, minimum=1, maximum=MAX_DAYS)
            elif word == "limit":
                spec.per_member = parse_int(arg, minimum=1, maximum=MAX_PER_MEMBER)
            elif word == "total":
                spec.total = parse_int(arg, minimum=1, maximum=MAX_TOTAL)
            elif word == "until":
                spec.valid_until = _parse_until(arg, group.timezone, now)
            else:
                spec.deal_ids = _parse_deals(arg)
        except ParseError:
            raise BadCoupon(word, arg) from None
    if spec.valid_until is not None and spec.valid_days is not None:
        raise BadCoupon("both_validity")
    if spec.valid_until is None and spec.valid_days is None:
        spec.valid_days = DEFAULT_DAYS
    if spec.pack and spec.deal_ids:
        raise BadCoupon("pack_scope")
    return spec


def _parse_until(text: str, timezone: str, now: datetime) -> datetime:
    found = _DATE.match(text.strip())
    if not found:
        raise ParseError("until")
    try:
        day = datetime(int(found.group(1)), int(found.group(2)), int(found.group(3)))
        end = local_to_utc(day, timezone) + timedelta(days=1)
    except (ValueError, ParseError):
        raise ParseError("until") from None
    if end <= now or end > now + timedelta(days=MAX_DAYS + 1):
        raise ParseError("until")
    return end


def _parse_deals(text: str) -> list[int]:
    ids: list[int] = []
    for part in text.replace("，", ",").split(","):
        part = part.strip().upper()
        if not part:
            continue
        number = part[1:] if part.startswith("D") else part
        if not number.isascii() or not number.isdigit() or len(number) > 9:
            raise ParseError("deals")
        value = int(number)
        if value <= 0:
            raise ParseError("deals")
        if value not in ids:
            ids.append(value)
    if not ids or len(ids) > MAX_DEALS:
        raise ParseError("deals")
    return ids


def discount_of(coupon: Coupon, amount: int, room: int) -> int:
    """What the coupon takes off an order of `amount` with `room` left to pay (after credit):
    0 when the order is under the minimum. Percent: floor(amount × percent / 100)."""
    if amount <= 0 or room <= 0 or amount < coupon.min_order:
        return 0
    raw = coupon.value if coupon.kind == "amount" else amount * coupon.value // 100
    return max(0, min(raw, room))


def expiry_of(coupon: Coupon, claimed_at: datetime) -> datetime:
    if coupon.valid_until is not None:
        return coupon.valid_until
    return claimed_at + timedelta(days=coupon.valid_days or DEFAULT_DAYS)


# ---------------------------------------------------------------- the owner


async def _owned_group(
    session: AsyncSession, admins: AdminDirectory | None, user_id: int, group_id: int
) -> Group:
    if group_id not in await rights.current_groups(session, admins, user_id):
        raise NotGroupAdmin(group_id)
    group = await session.get(Group, group_id)
    if group is None:  # pragma: no cover - current_groups lists existing groups
        raise NotGroupAdmin(group_id)
    return group


async def create(
    session: AsyncSession,
    admins: AdminDirectory | None,
    user_id: int,
    group_id: int,
    spec: CouponSpec,
    now: datetime,
) -> Coupon:
    """A new coupon of the group, by one of its current administrators. Deals named must be
    posted in the group, in its currency."""
    group = await _owned_group(session, admins, user_id, group_id)
    for deal_id in spec.deal_ids:
        deal = await session.scalar(
            select(Deal)
            .join(DealPost, DealPost.deal_id == Deal.id)
            .where(Deal.id == deal_id, DealPost.group_id == group.id)
        )
        if deal is None or deal.currency != group.currency:
            raise BadCoupon("deals", f"D{deal_id}")
    coupon = Coupon(
        group_id=group.id,
        kind=spec.kind,
        value=spec.value,
        min_order=spec.min_order,
        currency=group.currency,
        valid_until=spec.valid_until,
        valid_days=spec.valid_days,
        per_member=spec.per_member,
        total=spec.total,
        claimed=0,
        pack=spec.pack,
        created_by=user_id,
        created_at=now,
    )
    session.add(coupon)
    await session.flush()
    for deal_id in spec.deal_ids:
        session.add(CouponDeal(coupon_id=coupon.id, deal_id=deal_id))
    await session.flush()
    log.info("coupon %s created in group %s by %s", coupon.id, group.id, user_id)
    return coupon


async def end(
    session: AsyncSession,
    admins: AdminDirectory | None,
    user_id: int,
    coupon_id: int,
    now: datetime,
) -> Coupon:
    """No new claims of the coupon (claims made stay valid). Ending twice changes nothing."""
    coupon = await session.get(Coupon, coupon_id)
    if coupon is None:
        raise CouponNotFound(coupon_id)
    try:
        await _owned_group(session, admins, user_id, coupon.group_id)
    except NotGroupAdmin:
        raise CouponNotFound(coupon_id) from None  # no oracle: like one that does not exist
    await session.execute(
        update(Coupon).where(Coupon.id == coupon_id, Coupon.ended_at.is_(None)).values(ended_at=now)
    )
    await session.refresh(coupon)
    return coupon


async def of_groups(session: AsyncSession, group_ids: list[int]) -> list[Coupon]:
    if not group_ids:
        return []
    rows = await session.scalars(
        select(Coupon).where(Coupon.group_id.in_(group_ids)).order_by(Coupon.id.desc()).limit(50)
    )
    return list(rows)


async def scope_of(session: AsyncSession, coupon_ids: list[int]) -> dict[int, set[int]]:
    """The deals each coupon is limited to (absent: every deal of its group)."""
    scope: dict[int, set[int]] = {}
    for start in range(0, len(coupon_ids), CHUNK):
        rows = await session.execute(
            select(CouponDeal.coupon_id, CouponDeal.deal_id).where(
                CouponDeal.coupon_id.in_(coupon_ids[start : start + CHUNK])
            )
        )
        for coupon_id, deal_id in rows.all():
            scope.setdefault(coupon_id, set()).add(deal_id)
    return scope


# ---------------------------------------------------------------- members: claiming


def _claimable(now: datetime):
    return (
        Coupon.ended_at.is_(None),
        Coupon.pack.is_(False),
        Coupon.claimed < Coupon.total,
        or_(Coupon.valid_until.is_(None), Coupon.valid_until > now),
    )


async def claimable(session: AsyncSession, group_ids: list[int], now: datetime) -> list[Coupon]:
    """The coupons members of these groups can claim now."""
    if not group_ids:
        return []
    rows = await session.scalars(
        select(Coupon)
        .where(Coupon.group_id.in_(group_ids), *_claimable(now))
        .order_by(Coupon.group_id, Coupon.id)
        .limit(30)
    )
    return list(rows)


async def member_groups(session: AsyncSession, user_id: int) -> list[Group]:
    """The active groups the person is a member of (seen joining or speaking, or ordering)."""
    ordered = select(Order.group_id).where(Order.user_id == user_id, Order.group_id.is_not(None))
    member = select(Membership.group_id).where(
        Membership.user_id == user_id, Membership.status.in_(MEMBER_STATES)
    )
    rows = await session.scalars(
        select(Group)
        .where(Group.is_active.is_(True), or_(Group.id.in_(member), Group.id.in_(ordered)))
        .order_by(Group.title, Group.id)
    )
    return list(rows)


async def claim(
    session: AsyncSession,
    coupon_id: int,
    user_id: int,
    now: datetime,
    *,
    group_id: int | None = None,
) -> tuple[CouponClaim, Coupon, Group]:
    """The member claims one of the coupon (the claim, the coupon and its group).
    `group_id`: the group the Claim button was tapped in (a group post); None: from private
    chat, where the person must be a member of the coupon's group."""
    coupon = await session.get(Coupon, coupon_id)
    if coupon is None or coupon.pack:
        raise CouponNotFound(coupon_id)
    if group_id is not None and coupon.group_id != group_id:
        raise CouponNotFound(coupon_id)
    if group_id is None and coupon.group_id not in {
        g.id for g in await member_groups(session, user_id)
    }:
        raise CouponNotFound(coupon_id)
    made = await _issue(session, coupon, user_id, now, source="claim")
    log.info("coupon %s claimed by %s (claim %s)", coupon_id, user_id, made.id)
    group = await session.get(Group, coupon.group_id)
    return made, coupon, group  # type: ignore[return-value]


async def _issue(
    session: AsyncSession, coupon: Coupon, user_id: int, now: datetime, *, source: str
) -> CouponClaim:
    """Take one of the coupon for the person: the conditional UPDATE, then (under its lock)
    the per-member count (a pack's reward is not limited by it), then the claim row."""
    for attempt in range(4):
        try:
            async with events.savepoint(session):
                conditions = [Coupon.id == coupon.id, Coupon.claimed < Coupon.total]
                if source == "claim":
                    conditions += [
                        Coupon.ended_at.is_(None),
                        or_(Coupon.valid_until.is_(None), Coupon.valid_until > now),
                    ]
                took = await session.execute(
                    update(Coupon)
                    .where(*conditions)
                    .values(claimed=Coupon.claimed + 1)
                    .execution_options(synchronize_session=False)
                )
                if (took.rowcount or 0) == 0:
                    await session.refresh(coupon)
                    if coupon.claimed >= coupon.total:
                        raise CouponsGone(coupon.id)
                    raise CouponEnded(coupon.id)
                mine = int(
                    await session.scalar(
                        select(func.count(CouponClaim.id)).where(
                            CouponClaim.coupon_id == coupon.id, CouponClaim.user_id == user_id
                        )
                    )
                    or 0
                )
                if source == "claim" and mine >= coupon.per_member:
                    raise ClaimLimit(coupon.per_member)
                seq = int(
                    await session.scalar(
                        select(func.coalesce(func.max(CouponClaim.seq), 0)).where(
                            CouponClaim.coupon_id == coupon.id, CouponClaim.user_id == user_id
                        )
                    )
                    or 0
                )
                made = CouponClaim(
                    coupon_id=coupon.id,
                    user_id=user_id,
                    seq=seq + 1,
                    source=source,
                    claimed_at=now,
                    expires_at=expiry_of(coupon, now),
                    discount=0,
                )
                session.add(made)
                await session.flush()
                return made
        except IntegrityError:
            # a concurrent claim of the same member took that number: count again
            if attempt == 3:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class Held:
    claim: CouponClaim
    coupon: Coupon
    order: Order | None
    deal_code: str | None


async def claims_of(session: AsyncSession, user_id: int, limit: int = 30) -> list[Held]:
    """The member's claims, newest first, with the order each was used on."""
    rows = await session.execute(
        select(CouponClaim, Coupon, Order)
        .join(Coupon, Coupon.id == CouponClaim.coupon_id)
        .outerjoin(Order, Order.id == CouponClaim.order_id)
        .where(CouponClaim.user_id == user_id)
        .order_by(CouponClaim.id.desc())
        .limit(limit)
    )
    return [
        Held(c, coupon, order, f"D{order.deal_id}" if order is not None else None)
        for c, coupon, order in rows.all()
    ]


# ---------------------------------------------------------------- redemption


@dataclass
class Live:
    claim: CouponClaim
    coupon: Coupon
    scope: set[int] | None  # None: every deal of the group


def _applies(live: Live, order: Order, deal: Deal) -> int:
    """The discount this live claim gives the order (0: it does not apply)."""
    coupon = live.coupon
    if coupon.group_id != order.group_id or coupon.currency != deal.currency:
        return 0
    if live.scope is not None and deal.id not in live.scope:
        return 0
    amount = order.amount or 0
    return discount_of(coupon, amount, amount - (order.discount or 0))


async def _live(
    session: AsyncSession, user_ids: list[int], group_ids: set[int], now: datetime
) -> dict[int, list[Live]]:
    """Each member's unused, unexpired claims in these groups."""
    found: dict[int, list[Live]] = {}
    ids = sorted(set(user_ids))
    if not ids or not group_ids:
        return found
    pairs = []
    for start in range(0, len(ids), CHUNK):
        rows = await session.execute(
            select(CouponClaim, Coupon)
            .join(Coupon, Coupon.id == CouponClaim.coupon_id)
            .where(
                CouponClaim.user_id.in_(ids[start : start + CHUNK]),
                CouponClaim.order_id.is_(None),
                CouponClaim.redeemed_at.is_(None),
                CouponClaim.expires_at > now,
                Coupon.group_id.in_(sorted(group_ids)),
            )
            .order_by(CouponClaim.id)
        )
        pairs.extend(rows.all())
    scope = await scope_of(session, sorted({c.id for _claim, c in pairs}))
    for claim_row, coupon in pairs:
        found.setdefault(claim_row.user_id, []).append(
            Live(claim_row, coupon, scope.get(coupon.id))
        )
    return found


async def _held(session: AsyncSession, order_ids: list[int]) -> dict[int, CouponClaim]:
    held: dict[int, CouponClaim] = {}
    for start in range(0, len(order_ids), CHUNK):
        rows = await session.scalars(
            select(CouponClaim)
            .where(CouponClaim.order_id.in_(order_ids[start : start + CHUNK]))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        for row in rows:
            held[row.order_id] = row
    return held


def _takes(order: Order) -> bool:
    """An order that may get (or change) a coupon: priced, unpaid, not handed over."""
    return (
        order.status in ("active", "confirmed")
        and order.quantity > 0
        and order.paid_at is None
        and order.fulfilment in ("none", "ready")
        and order.group_id is not None
        and (order.amount or 0) > 0
    )


async def _set_discount(session: AsyncSession, order: Order, amount: int, now: datetime) -> None:
    await session.execute(
        update(Order).where(Order.id == order.id).values(coupon_discount=amount, updated_at=now)
    )
    order.coupon_discount = amount


async def _take(
    session: AsyncSession, order: Order, live: Live, discount: int, now: datetime
) -> bool:
    """Redeem the claim on the order: one conditional UPDATE (a claim used meanwhile by
    another order of the member is not taken)."""
    took = await session.execute(
        update(CouponClaim)
        .where(
            CouponClaim.id == live.claim.id,
            CouponClaim.order_id.is_(None),
            CouponClaim.redeemed_at.is_(None),
        )
        .values(order_id=order.id, redeemed_at=now, discount=discount)
        .execution_options(synchronize_session=False)
    )
    if (took.rowcount or 0) == 0:
        return False
    live.claim.order_id, live.claim.redeemed_at, live.claim.discount = order.id, now, discount
    await _set_discount(session, order, discount, now)
    return True


async def _release(
    session: AsyncSession, order: Order, held: CouponClaim, now: datetime, *, force: bool = False
) -> bool:
    """Give the order's claim back to its member, unless it has expired (then it stays spent
    on the cancelled order). `force`: a switch away from it (an expired one is of no use)."""
    if held.expires_at <= now and not force:
        return False
    await session.execute(
        update(CouponClaim)
        .where(CouponClaim.id == held.id, CouponClaim.order_id == order.id)
        .values(order_id=None, redeemed_at=None, discount=0)
        .execution_options(synchronize_session=False)
    )
    held.order_id, held.redeemed_at, held.discount = None, None, 0
    await _set_discount(session, order, 0, now)
    return True


async def _best(
    session: AsyncSession, order: Order, deal: Deal, lives: list[Live], now: datetime
) -> CouponClaim | None:
    ranked = sorted(
        ((d, live) for live in lives if (d := _applies(live, order, deal)) > 0),
        key=lambda item: (-item[0], item[1].claim.expires_at, item[1].claim.id),
    )
    for discount, live in ranked:
        if await _take(session, order, live, discount, now):
            lives.remove(live)
            return live.claim
    return None


async def _reprice_many(
    session: AsyncSession, deal: Deal, orders: list[Order], now: datetime
) -> list[Order]:
    """Each order keeps its coupon if it still applies (the discount follows the amount),
    else gives it back and gets the best live one. Returns the orders whose discount
    changed."""
    orders = [o for o in orders if _takes(o)]
    if not orders:
        return []
    held = await _held(session, [o.id for o in orders])
    lives = await _live(
        session,
        [o.user_id for o in orders],
        {o.group_id for o in orders},
        now,  # type: ignore[misc]
    )
    changed = []
    for order in orders:
        before = order.coupon_discount or 0
        current = held.get(order.id)
        if current is not None:
            coupon = await session.get(Coupon, current.coupon_id)
            scope = (await scope_of(session, [current.coupon_id])).get(current.coupon_id)
            discount = _applies(Live(current, coupon, scope), order, deal) if coupon else 0
            if discount > 0:
                if discount != current.discount:
                    current.discount = discount
                    await session.execute(
                        update(CouponClaim)
                        .where(CouponClaim.id == current.id)
                        .values(discount=discount)
                    )
                if discount != before:
                    await _set_discount(session, order, discount, now)
                    changed.append(order)
                continue
            await _release(session, order, current, now, force=True)  # it no longer applies
        mine = lives.get(order.user_id, [])
        if mine:
            await _best(session, order, deal, mine, now)
        if (order.coupon_discount or 0) != before:
            changed.append(order)
    return changed


async def _give_back_many(session: AsyncSession, orders: list[Order], now: datetime) -> int:
    held = await _held(session, [o.id for o in orders])
    back = 0
    for order in orders:
        if order.id in held and await _release(session, order, held[order.id], now):
            back += 1
    return back


async def on_closed(session: AsyncSession, deal: Deal, orders: list[Order], now: datetime) -> None:
    """The deal closed (services.deals.close, before its invoices): succeeded, every
    confirmed order gets its coupon; failed or cancelled, the coupons on its orders (a flash
    sale's holds, a filled team's) come back. A flash sale's invoice for a hold whose
    discount changed is made again."""
    if deal.status == "succeeded":
        changed = await _reprice_many(session, deal, orders, now)
        from services import payments  # it builds on the order modules: imported when used

        if payments.is_flash(deal):
            for order in changed:
                await payments.on_discount(session, order, deal, now)
        return
    await _give_back_many(session, orders, now)


async def on_confirmed(
    session: AsyncSession, deal: Deal, orders: list[Order], now: datetime
) -> None:
    """Orders confirmed while their deal is open (a filled team, services.orders.confirm),
    before their invoices."""
    await _reprice_many(session, deal, orders, now)


async def on_priced(session: AsyncSession, order: Order, deal: Deal, now: datetime) -> None:
    """A flash sale's hold got its amount (services.payments.on_order_changed), before its
    invoice."""
    await _reprice_many(session, deal, [order], now)


async def give_back(session: AsyncSession, order: Order, now: datetime) -> bool:
    """The order was cancelled (a hold cancelled or lapsed, an unpaid order released, a
    refund): its coupon comes back unless it expired."""
    return bool(await _give_back_many(session, [order], now))


async def switch(
    session: AsyncSession, order_id: int, user_id: int, claim_id: int, now: datetime
) -> Order:
    """The member uses another of their claims on the order (`claim_id` 0: none). Refused
    (CannotUse) for an order that is not theirs, paid or handed over, or a claim that is not
    theirs, used, expired or does not apply."""
    order = (
        await session.execute(
            select(Order)
            .where(Order.id == order_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if order is None or order.user_id != user_id or not _takes(order):
        raise CannotUse("order")
    deal = await session.get(Deal, order.deal_id)
    if deal is None or (order.status == "active" and order.pay_by is None):
        raise CannotUse("order")  # an active order is priced only as a flash sale's hold
    held = (await _held(session, [order.id])).get(order.id)
    if held is not None and held.id == claim_id:
        return order  # already on it: nothing changes
    chosen: Live | None = None
    discount = 0
    if claim_id:
        lives = (await _live(session, [user_id], {order.group_id}, now)).get(user_id, [])
        chosen = next((live for live in lives if live.claim.id == claim_id), None)
        discount = _applies(chosen, order, deal) if chosen is not None else 0
        if discount <= 0:
            raise CannotUse("coupon")
    if held is not None:
        await _release(session, order, held, now, force=True)
    if chosen is not None and not await _take(session, order, chosen, discount, now):
        raise CannotUse("coupon")  # pragma: no cover - the claim's row is the member's
    await session.flush()
    from services import payments  # it builds on the order modules: imported when used

    await payments.on_discount(session, order, deal, now)  # a new invoice for what is left
    events.record(session, events.DealChanged(deal.id))
    return order


@dataclass
class Switchable:
    order: Order
    deal: Deal
    current: CouponClaim | None
    options: list[tuple[CouponClaim, Coupon, int]]  # other claims that apply, with discounts


async def switchable(session: AsyncSession, user_id: int, now: datetime) -> list[Switchable]:
    """The member's orders whose coupon can be switched now, with the claims that apply."""
    rows = await session.execute(
        select(Order, Deal)
        .join(Deal, Deal.id == Order.deal_id)
        .where(
            Order.user_id == user_id,
            Order.status.in_(("active", "confirmed")),
            Order.quantity > 0,
            Order.paid_at.is_(None),
            Order.amount > 0,
        )
        .order_by(Order.id.desc())
        .limit(10)
    )
    pairs = [(o, d) for o, d in rows.all() if _takes(o) and (o.status == "confirmed" or o.pay_by)]
    if not pairs:
        return []
    lives = (await _live(session, [user_id], {o.group_id for o, _d in pairs}, now)).get(user_id, [])
    held = {}
    for start in range(0, len(pairs), CHUNK):
        for row in await session.scalars(
            select(CouponClaim).where(
                CouponClaim.order_id.in_([o.id for o, _d in pairs[start : start + CHUNK]])
            )
        ):
            held[row.order_id] = row
    result = []
    for order, deal in pairs:
        options = [
            (live.claim, live.coupon, d) for live in lives if (d := _applies(live, order, deal)) > 0
        ]
        if options or order.id in held:
            result.append(Switchable(order, deal, held.get(order.id), options))
    return result


# ---------------------------------------------------------------- packs


def link_payload(pack: CouponPack) -> str:
    return LINK_PREFIX + pack.code


def parse_link(args: str) -> str | None:
    if not args.startswith(LINK_PREFIX):
        return None
    code = args[len(LINK_PREFIX) :]
    if not 1 <= len(code) <= 16 or not all(ch in CODE_ALPHABET for ch in code):
        return None
    return code


async def pack_coupon(session: AsyncSession, group_id: int, now: datetime) -> Coupon | None:
    """The group's pack coupon now: its newest pack coupon not ended with some left."""
    return await session.scalar(
        select(Coupon)
        .where(
            Coupon.group_id == group_id,
            Coupon.pack.is_(True),
            Coupon.ended_at.is_(None),
            Coupon.claimed < Coupon.total,
            or_(Coupon.valid_until.is_(None), Coupon.valid_until > now),
        )
        .order_by(Coupon.id.desc())
        .limit(1)
    )


async def pack_of(session: AsyncSession, group_id: int, user_id: int, now: datetime) -> CouponPack:
    """The member's pack link of the group (made the first time it is asked for)."""
    for _attempt in range(3):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))
        try:
            async with events.savepoint(session):
                await insert_ignore(
                    session,
                    CouponPack.__table__,
                    {"code": code, "group_id": group_id, "sharer_id": user_id, "created_at": now},
                    ["group_id", "sharer_id"],
                )
            break
        except IntegrityError:  # pragma: no cover - a code collision (32^10)
            continue
    return (
        await session.execute(
            select(CouponPack).where(
                CouponPack.group_id == group_id, CouponPack.sharer_id == user_id
            )
        )
    ).scalar_one()


async def by_code(session: AsyncSession, code: str) -> CouponPack | None:
    return await session.scalar(select(CouponPack).where(CouponPack.code == code))


async def _ordered_in(session: AsyncSession, group_id: int, user_id: int) -> bool:
    found = await session.scalar(
        select(Order.id)
        .where(
            Order.group_id == group_id,
            Order.user_id == user_id,
            or_(Order.status != "cancelled", Order.fulfilment != "none"),
        )
        .limit(1)
    )
    return found is not None


async def open_pack(
    session: AsyncSession, code: str, friend_id: int, now: datetime
) -> tuple[PackClaim, Group, Coupon]:
    """A friend opens a pack link: recorded once per friend per group (opening the same pack
    again changes nothing). Refused (PackRefused) for one's own pack, a friend who has
    ordered in the group, one who opened another member's pack there, or a group without a
    pack coupon now."""
    pack = await by_code(session, code)
    if pack is None or is_pseudonym(pack.sharer_id):
        raise PackRefused("unknown")
    group = await session.get(Group, pack.group_id)
    if group is None or not group.is_active:
        raise PackRefused("unknown")
    if pack.sharer_id == friend_id:
        raise PackRefused("self")
    coupon = await pack_coupon(session, group.id, now)
    existing = await session.scalar(
        select(PackClaim).where(PackClaim.group_id == group.id, PackClaim.friend_id == friend_id)
    )
    if existing is not None:
        if existing.pack_id != pack.id:
            raise PackRefused("taken")
        if coupon is None:
            raise PackRefused("none")
        return existing, group, coupon
    if await _ordered_in(session, group.id, friend_id):
        raise PackRefused("ordered")
    if coupon is None:
        raise PackRefused("none")
    await insert_ignore(
        session,
        PackClaim.__table__,
        {
            "pack_id": pack.id,
            "group_id": group.id,
            "friend_id": friend_id,
            "claimed_at": now,
            "outcome": "",
        },
        ["group_id", "friend_id"],
    )
    made = (
        await session.execute(
            select(PackClaim).where(
                PackClaim.group_id == group.id, PackClaim.friend_id == friend_id
            )
        )
    ).scalar_one()
    if made.pack_id != pack.id:  # a concurrent opening of another pack won
        raise PackRefused("taken")
    log.info("pack %s opened by %s in group %s", pack.id, friend_id, group.id)
    return made, group, coupon


async def on_fulfilled(session: AsyncSession, order: Order, now: datetime) -> list[CouponClaim]:
    """An order was handed over (services.fulfilment): if it is the buyer's first in the
    group and they opened a member's pack there, the pack rewards them and its sharer (the
    sharer within the weekly limit), once. Returns the claims given."""
    if order.fulfilment not in FULFILLED or order.group_id is None or order.status != "confirmed":
        return []
    if is_pseudonym(order.user_id):  # the buyer used /forgetme: nobody to reward or tell
        return []
    opened = (
        await session.execute(
            select(PackClaim)
            .where(
                PackClaim.group_id == order.group_id,
                PackClaim.friend_id == order.user_id,
                PackClaim.rewarded_at.is_(None),
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if opened is None:
        return []
    earlier = await session.scalar(
        select(Order.id)
        .where(
            Order.group_id == order.group_id,
            Order.user_id == order.user_id,
            Order.id != order.id,
            Order.fulfilment.in_(FULFILLED),
        )
        .limit(1)
    )
    if earlier is not None:  # pragma: no cover - a pack is opened only before any order
        return []
    pack = (
        await session.execute(
            select(CouponPack).where(CouponPack.id == opened.pack_id).with_for_update()
        )
    ).scalar_one()  # the sharer's weekly count is read under this lock
    coupon = await pack_coupon(session, order.group_id, now)
    given: list[CouponClaim] = []
    outcome = "none"
    if coupon is not None:
        try:
            given.append(await _issue(session, coupon, order.user_id, now, source="pack"))
            outcome = "friend"
        except CouponError:
            coupon = None
    if coupon is not None and not is_pseudonym(pack.sharer_id) and pack.sharer_id != order.user_id:
        week = int(
            await session.scalar(
                select(func.count(PackClaim.id)).where(
                    PackClaim.pack_id == pack.id,
                    PackClaim.outcome == "both",
                    PackClaim.rewarded_at > now - WEEK,
                )
            )
            or 0
        )
        if week < PACK_WEEKLY_LIMIT:
            try:
                given.append(await _issue(session, coupon, pack.sharer_id, now, source="pack"))
                outcome = "both"
            except CouponError:
                pass
    done = await session.execute(
        update(PackClaim)
        .where(PackClaim.id == opened.id, PackClaim.rewarded_at.is_(None))
        .values(rewarded_at=now, outcome=outcome)
    )
    if (done.rowcount or 0) == 0:  # pragma: no cover - the row is locked above
        return []
    for made in given:
        await outbox.promise(
            session,
            key=f"coupon:K{made.id}",
            chat_id=made.user_id,
            kind=NOTE,
            payload={"what": "pack", "claim_id": made.id},
            group_id=order.group_id,
            now=now,
        )
    log.info("pack %s rewarded for order %s: %s", pack.id, order.id, outcome)
    return given


# ---------------------------------------------------------------- digests


async def counts(
    session: AsyncSession, group_ids: list[int], start: datetime, end: datetime
) -> tuple[int, int]:
    """Coupons claimed and redeemed in [start, end) in these groups."""
    if not group_ids:
        return 0, 0
    mine = CouponClaim.coupon_id.in_(select(Coupon.id).where(Coupon.group_id.in_(group_ids)))
    claimed = await session.scalar(
        select(func.count(CouponClaim.id)).where(
            mine, CouponClaim.claimed_at >= start, CouponClaim.claimed_at < end
        )
    )
    redeemed = await session.scalar(
        select(func.count(CouponClaim.id)).where(
            mine, CouponClaim.redeemed_at >= start, CouponClaim.redeemed_at < end
        )
    )
    return int(claimed or 0), int(redeemed or 0)

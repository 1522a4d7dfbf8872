"""Daily digests: the figures of a group over a local date range, the operators' cross-group
digest, who receives them, when they are due, and `/digest` arguments. No aiogram here.

Definitions (the README's "Daily digests" section repeats them):

- A day is the GROUP's local calendar day (its timezone). The activity tables are already
  keyed by that day; UTC timestamps (deal closings, cancellations, joins, credit) are
  compared with the UTC bounds of the local days, so DST and far-away owners change nothing.
- new members / left / messages: sums of `group_activity_days` (joins, leaves, messages);
  the names listed come from `memberships.joined_at` / `left_at` (with the inviter from
  `referrals`), at most `LIST_LIMIT`.
- active members: members with any activity (distinct); one day: `active_members` of that
  day, a longer period: distinct members over the period.
- orders, units, revenue: CONFIRMED orders placed in this group, of deals that CLOSED in the
  period; revenue per currency = SUM(amount − discount).
- cancellations: orders of this group whose status is `cancelled` and whose last change
  (`updated_at`) falls in the period: members who pulled out (a failed deal's orders are
  `failed`, shown with the deal's outcome instead).
- referral credit: SUM of `credit_entries` of kind `earned` created in the period.
- conversion: distinct buyers / active members.
- shared cards (inline mode, shown when there is any in the period or the week before):
  cards shared = `inline_cards` rows of this group created in the period; joins from cards =
  orders of this group placed from a card (`orders.via` = "card"), created in the period,
  any status; attributed through cards = those of them with a sharer (`referrer_id`) set;
  their sales per currency = SUM(amount − discount) of such orders CONFIRMED, of deals that
  CLOSED in the period (as revenue: the amount is known once the deal succeeded).
- collected / outstanding (payments in the app, services.payment_books): per currency, the
  applied payments on orders of this group created in the period minus the refunds of
  applied payments completed in it (surplus payments never count); and what unpaid
  confirmed or held orders of paid deals still owe now. Shown only when not zero.
- change: against the average of the 7 days before the period, scaled to the period's length
  for sums (a 7-day period is compared with the week before it). Active members and
  conversion are compared with the previous 7 days' average day.

Every figure is one aggregate query over an indexed range (GROUP BY / SUM / COUNT, the top 5
by ORDER BY … LIMIT); Python only buckets the per-deal sums into local days.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import (
    CreditEntry,
    Deal,
    DealPost,
    DigestRun,
    DigestSubscription,
    Group,
    GroupActivityDay,
    GroupAdmin,
    InlineCard,
    MemberActivityDay,
    Membership,
    Order,
    Referral,
    SendFailure,
    User,
)
from models.upsert import insert_ignore, upsert
from services import bargains as bargain_service
from services import coupons as coupon_service
from services import gatherings as event_service
from services import lotteries as lottery_service
from services import moderation as moderation_service
from services import payment_books
from services import polls as poll_service
from services import reviews as review_service
from services import teams as team_service
from services.errors import DomainError

MAX_RANGE_DAYS = 366
CHART_DAYS = 30
BASELINE_DAYS = 7
LIST_LIMIT = 10
TOP_LIMIT = 5
LEASE = timedelta(minutes=10)
ADMIN_SCOPE = "admins"
ADMIN_DIGEST_TIME = time(9, 0)
FINAL_STATES = ("succeeded", "failed", "cancelled")
PRESENT = ("member", "administrator", "creator", "restricted")


class DigestArgError(DomainError):
    """`/digest` arguments refused: code is malformed | future | too_long | reversed."""

    def __init__(self, code: str, value: str = "") -> None:
        value = value if len(value) <= 40 else value[:39] + "…"  # quoted back to the user
        super().__init__(code, value)
        self.code = code
        self.value = value


class InvalidDigestTime(DomainError):
    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


# ---------------------------------------------------------------- periods and arguments


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def each(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]


_DATE = r"(\d{4}-\d{2}-\d{2})"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise DigestArgError("malformed", text) from exc


def parse_period(text: str | None, today: date) -> Period:
    """'' → yesterday; '2026-11-20'; '7d' (the 7 days up to yesterday); '2026-11-01..2026-11-30'.

    `today` is the local date; a date after it is refused ('future'), as are periods longer
    than 366 days ('too_long'), an end before the start ('reversed'), anything else
    ('malformed')."""
    raw = (text or "").strip().lower()
    yesterday = today - timedelta(days=1)
    if not raw:
        return Period(yesterday, yesterday)
    if m := re.fullmatch(r"(\d{1,4})\s*d", raw):
        n = int(m.group(1))
        if n < 1:
            raise DigestArgError("malformed", raw)
        if n > MAX_RANGE_DAYS:
            raise DigestArgError("too_long", raw)
        return Period(yesterday - timedelta(days=n - 1), yesterday)
    if re.fullmatch(_DATE, raw):
        day = _date(raw)
        if day > today:
            raise DigestArgError("future", raw)
        return Period(day, day)
    if m := re.fullmatch(_DATE + r"\s*(?:\.\.|–|—|~|\s)\s*" + _DATE, raw):
        start, end = _date(m.group(1)), _date(m.group(2))
        if end < start:
            raise DigestArgError("reversed", raw)
        if end > today:
            raise DigestArgError("future", raw)
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise DigestArgError("too_long", raw)
        return Period(start, end)
    raise DigestArgError("malformed", raw)


def parse_time(text: str) -> str:
    """'8:30' / '08:30' → '08:30'; anything else raises InvalidDigestTime."""
    raw = (text or "").strip()
    m = re.fullmatch(r"(\d{1,2})[:：.](\d{2})", raw)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise InvalidDigestTime(raw)
    return f"{int(m.group(1)):02d}:{m.group(2)}"


def local_today(now: datetime, timezone: str) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()


def utc_bounds(timezone: str, start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, the day after end 00:00) in the timezone, as UTC moments."""
    zone = ZoneInfo(timezone)
    lower = datetime.combine(start, time(0), zone).astimezone(UTC)
    upper = datetime.combine(end + timedelta(days=1), time(0), zone).astimezone(UTC)
    return lower, upper


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def local_day(moment: datetime, timezone: str) -> date:
    return _aware(moment).astimezone(ZoneInfo(timezone)).date()


# ---------------------------------------------------------------- figures


@dataclass(frozen=True)
class Figure:
    """A figure and what it is compared with (None: nothing to compare with)."""

    value: float
    baseline: float | None = None

    @property
    def change(self) -> float | None:
        """Relative change against the baseline (0.25 = +25 %); None without a baseline."""
        if self.baseline is None or self.baseline == 0:
            return None
        return (self.value - self.baseline) / self.baseline


@dataclass(frozen=True)
class Person:
    user_id: int
    name: str
    inviter_id: int | None = None
    inviter_name: str | None = None


@dataclass(frozen=True)
class TopMember:
    user_id: int
    name: str
    messages: int
    signups: int
    orders: int


@dataclass(frozen=True)
class OpenDeal:
    id: int
    title: str
    currency: str
    total_qty: int
    participants: int
    min_kind: str | None
    min_value: int | None
    closes_at: datetime


@dataclass(frozen=True)
class ClosedDeal:
    id: int
    title: str
    status: str
    closed_at: datetime
    orders: int
    units: int
    revenue: int
    currency: str


@dataclass(frozen=True)
class CardFigures:
    """Deal cards shared through inline mode into other chats, and what came of them."""

    shared: Figure = Figure(0, 0)  # cards sent into some chat
    joins: Figure = Figure(0, 0)  # orders placed from a card
    attributed: Figure = Figure(0, 0)  # of those, attributed to the member who shared it
    sales: dict[str, Figure] = field(default_factory=dict)  # confirmed attributed, per currency

    @property
    def any(self) -> bool:
        """Anything to show, in the period or the week before."""
        figures = (self.shared, self.joins, self.attributed, *self.sales.values())
        return any(f.value or f.baseline for f in figures)


@dataclass
class GroupDigest:
    group_id: int
    title: str
    timezone: str
    currency: str
    period: Period
    now: datetime
    new_members: Figure
    joined: list[Person]
    left: Figure
    leavers: list[Person]
    active: Figure
    messages: Figure
    top: list[TopMember]
    open_deals: list[OpenDeal]
    closed_deals: list[ClosedDeal]
    orders: Figure
    units: Figure
    revenue: dict[str, Figure]
    cancellations: Figure
    credit: dict[str, Figure]
    buyers: int
    conversion: Figure
    # The chart: the last CHART_DAYS days up to the period's end.
    chart_days: list[date] = field(default_factory=list)
    chart_active: list[int] = field(default_factory=list)
    chart_messages: list[int] = field(default_factory=list)
    chart_orders: list[int] = field(default_factory=list)
    chart_revenue: list[int] = field(default_factory=list)  # in chart_currency, minor units
    chart_currency: str = ""
    cards: CardFigures = field(default_factory=CardFigures)
    collected: dict[str, int] = field(default_factory=dict)  # payments, per currency
    outstanding: dict[str, int] = field(default_factory=dict)  # still owed, per currency
    # team buys: open now, filled and failed in the period (services.teams)
    teams: team_service.Counts = field(default_factory=team_service.Counts)
    # bargains: open now, bought and expired in the period (services.bargains)
    bargains: bargain_service.Counts = field(default_factory=bargain_service.Counts)
    coupons_claimed: Figure = Figure(0, 0)  # coupons claimed (services.coupons)
    coupons_redeemed: Figure = Figure(0, 0)  # coupons used on orders
    # polls: open now, closed in the period, and their voters (services.polls)
    polls: poll_service.Counts = field(default_factory=poll_service.Counts)
    # lotteries: entries, draws and prizes claimed in the period, open now (services.lotteries)
    lotteries: lottery_service.Counts = field(default_factory=lottery_service.Counts)
    # offline events: places taken and check-ins in the period (services.gatherings)
    events: event_service.Counts = field(default_factory=event_service.Counts)
    # reviews first rated in the period (services.reviews): how many, their stars' sum
    reviews: review_service.Rating = field(default_factory=review_service.Rating)
    # protection from spam: messages deleted, mutes, challenges passed and failed
    moderation: moderation_service.Counts = field(default_factory=moderation_service.Counts)


def _sum_figure(values: dict[date, int], period: Period, baseline: Period) -> Figure:
    value = sum(values.get(d, 0) for d in period.each())
    before = sum(values.get(d, 0) for d in baseline.each())
    return Figure(value, before / BASELINE_DAYS * period.days)


async def _names(session: AsyncSession, ids: Iterable[int]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.scalars(select(User).where(User.id.in_(wanted)))
    return {u.id: u.full_name for u in rows}


async def _people(
    session: AsyncSession, group_id: int, column, lower: datetime, upper: datetime, present: bool
) -> list[Person]:
    status = Membership.status.in_(PRESENT) if present else Membership.status.not_in(PRESENT)
    rows = (
        await session.execute(
            select(Membership.user_id, Referral.inviter_id)
            .outerjoin(
                Referral,
                and_(
                    Referral.group_id == Membership.group_id, Referral.user_id == Membership.user_id
                ),
            )
            .where(Membership.group_id == group_id, column >= lower, column < upper, status)
            .order_by(column, Membership.user_id)
            .limit(LIST_LIMIT)
        )
    ).all()
    names = await _names(session, [r[0] for r in rows] + [r[1] for r in rows])
    return [
        Person(
            user_id,
            names.get(user_id, str(user_id)),
            inviter,
            names.get(inviter, str(inviter)) if inviter is not None else None,
        )
        for user_id, inviter in rows
    ]


async def build(session: AsyncSession, group: Group, period: Period, now: datetime) -> GroupDigest:
    """The digest of `group` for `period` (local days), as seen at `now`."""
    tz = group.timezone
    baseline = Period(period.start - timedelta(days=BASELINE_DAYS), period.start - timedelta(1))
    chart_start = period.end - timedelta(days=CHART_DAYS - 1)
    first = min(chart_start, baseline.start)
    lower, upper = utc_bounds(tz, period.start, period.end)
    base_lower, _base_upper = utc_bounds(tz, baseline.start, baseline.end)
    first_lower, _ = utc_bounds(tz, first, first)

    # Activity per day (one row per day).
    messages: dict[date, int] = {}
    joins: dict[date, int] = {}
    leaves: dict[date, int] = {}
    active: dict[date, int] = {}
    for row in await session.execute(
        select(
            GroupActivityDay.day,
            GroupActivityDay.messages,
            GroupActivityDay.joins,
            GroupActivityDay.leaves,
            GroupActivityDay.active_members,
        ).where(
            GroupActivityDay.group_id == group.id,
            GroupActivityDay.day >= first,
            GroupActivityDay.day <= period.end,
        )
    ):
        messages[row.day], joins[row.day] = row.messages or 0, row.joins or 0
        leaves[row.day], active[row.day] = row.leaves or 0, row.active_members or 0

    if period.days == 1:
        active_value = active.get(period.start, 0)
    else:
        active_value = (
            await session.scalar(
                select(func.count(func.distinct(MemberActivityDay.user_id))).where(
                    MemberActivityDay.group_id == group.id,
                    MemberActivityDay.day >= period.start,
                    MemberActivityDay.day <= period.end,
                )
            )
            or 0
        )
    active_before = [active.get(d, 0) for d in baseline.each()]
    active_figure = Figure(active_value, sum(active_before) / BASELINE_DAYS)

    # Orders: per-deal sums of confirmed orders in this group, for deals closed since `first`.
    confirmed = and_(Order.group_id == group.id, Order.status == "confirmed")
    closed_between = and_(Deal.closed_at >= first_lower, Deal.closed_at < upper)
    per_deal = (
        await session.execute(
            select(
                Deal.id,
                Deal.closed_at,
                Deal.currency,
                func.count(Order.id),
                func.coalesce(func.sum(Order.quantity), 0),
                func.coalesce(
                    func.sum(
                        func.coalesce(Order.amount, 0) - Order.discount - Order.coupon_discount
                    ),
                    0,
                ),
            )
            .join(Deal, Deal.id == Order.deal_id)
            .where(confirmed, closed_between)
            .group_by(Deal.id, Deal.closed_at, Deal.currency)
        )
    ).all()
    orders_by_day: dict[date, int] = defaultdict(int)
    units_by_day: dict[date, int] = defaultdict(int)
    revenue_by_day: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    deal_sums: dict[int, tuple[int, int, int]] = {}
    for deal_id, closed_at, currency, count, qty, revenue in per_deal:
        day = local_day(closed_at, tz)
        orders_by_day[day] += count
        units_by_day[day] += int(qty)
        revenue_by_day[currency][day] += int(revenue)
        deal_sums[deal_id] = (count, int(qty), int(revenue))
    revenue_figures = {
        currency: _sum_figure(by_day, period, baseline)
        for currency, by_day in sorted(revenue_by_day.items())
        if any(by_day.get(d) for d in (*period.each(), *baseline.each()))
    }

    # Buyers (distinct per local day of closing) for the conversion.
    buyer_rows = await session.execute(
        select(Deal.closed_at, Order.user_id)
        .join(Deal, Deal.id == Order.deal_id)
        .where(confirmed, Deal.closed_at >= base_lower, Deal.closed_at < upper)
    )
    buyers_by_day: dict[date, set[int]] = defaultdict(set)
    for closed_at, user_id in buyer_rows:
        buyers_by_day[local_day(closed_at, tz)].add(user_id)
    period_buyers: set[int] = set().union(*(buyers_by_day.get(d, set()) for d in period.each()))
    buyers_before = sum(len(buyers_by_day.get(d, ())) for d in baseline.each())
    conversion = Figure(
        len(period_buyers) / active_value if active_value else 0.0,
        buyers_before / sum(active_before) if sum(active_before) else None,
    )

    # Cancellations and credit: period and baseline in one aggregate each.
    in_period = case((Order.updated_at >= lower, 1), else_=0)
    cancelled = (
        await session.execute(
            select(func.coalesce(func.sum(in_period), 0), func.count(Order.id)).where(
                Order.group_id == group.id,
                Order.status == "cancelled",
                Order.updated_at >= base_lower,
                Order.updated_at < upper,
            )
        )
    ).one()
    cancellations = Figure(
        int(cancelled[0]), (int(cancelled[1]) - int(cancelled[0])) / BASELINE_DAYS * period.days
    )
    credit: dict[str, Figure] = {}
    for currency, now_sum, before_sum in await session.execute(
        select(
            CreditEntry.currency,
            func.coalesce(
                func.sum(case((CreditEntry.created_at >= lower, CreditEntry.amount), else_=0)), 0
            ),
            func.coalesce(
                func.sum(case((CreditEntry.created_at < lower, CreditEntry.amount), else_=0)), 0
            ),
        )
        .where(
            CreditEntry.group_id == group.id,
            CreditEntry.kind == "earned",
            CreditEntry.created_at >= base_lower,
            CreditEntry.created_at < upper,
        )
        .group_by(CreditEntry.currency)
        .order_by(CreditEntry.currency)
    ):
        credit[currency] = Figure(int(now_sum), int(before_sum) / BASELINE_DAYS * period.days)

    cards = await _cards(session, group.id, period, lower, base_lower, upper)

    # Top members (those hidden from leaderboards are left out).
    hidden = select(User.id).where(User.leaderboard_hidden.is_(True))
    msg_sum = func.sum(MemberActivityDay.messages)
    ord_sum = func.sum(MemberActivityDay.orders)
    top_rows = (
        await session.execute(
            select(
                MemberActivityDay.user_id,
                msg_sum.label("m"),
                func.sum(MemberActivityDay.signups).label("s"),
                ord_sum.label("o"),
            )
            .where(
                MemberActivityDay.group_id == group.id,
                MemberActivityDay.day >= period.start,
                MemberActivityDay.day <= period.end,
                MemberActivityDay.user_id.not_in(hidden),
            )
            .group_by(MemberActivityDay.user_id)
            .order_by(msg_sum.desc(), ord_sum.desc(), MemberActivityDay.user_id)
            .limit(TOP_LIMIT)
        )
    ).all()
    top_names = await _names(session, [r.user_id for r in top_rows])
    top = [
        TopMember(r.user_id, top_names.get(r.user_id, str(r.user_id)), int(r.m), int(r.s), int(r.o))
        for r in top_rows
    ]

    # Deals: open now, and closed in the period, with their outcome.
    open_deals = [
        OpenDeal(
            d.id,
            d.title,
            d.currency,
            d.total_qty,
            d.participants,
            d.min_kind,
            d.min_value,
            _aware(d.closes_at),
        )
        for d in await session.scalars(
            select(Deal)
            .join(DealPost, DealPost.deal_id == Deal.id)
            .where(DealPost.group_id == group.id, Deal.status.in_(("open", "paused")))
            .order_by(Deal.closes_at, Deal.id)
        )
    ]
    closed_deals = []
    for d in await session.scalars(
        select(Deal)
        .join(DealPost, DealPost.deal_id == Deal.id)
        .where(
            DealPost.group_id == group.id,
            Deal.status.in_(FINAL_STATES),
            Deal.closed_at >= lower,
            Deal.closed_at < upper,
        )
        .order_by(Deal.closed_at, Deal.id)
    ):
        count, qty, revenue = deal_sums.get(d.id, (0, 0, 0))
        closed_deals.append(
            ClosedDeal(
                d.id, d.title, d.status, _aware(d.closed_at), count, qty, revenue, d.currency
            )
        )

    claimed, redeemed = await coupon_service.counts(session, [group.id], lower, upper)
    claimed_before, redeemed_before = await coupon_service.counts(
        session, [group.id], base_lower, lower
    )
    chart_days = Period(chart_start, period.end).each()
    chart_currency = group.currency
    if revenue_by_day and chart_currency not in revenue_by_day:
        chart_currency = max(revenue_by_day, key=lambda c: sum(revenue_by_day[c].values()))
    return GroupDigest(
        group_id=group.id,
        title=group.title,
        timezone=tz,
        currency=group.currency,
        period=period,
        now=now,
        new_members=_sum_figure(joins, period, baseline),
        joined=await _people(session, group.id, Membership.joined_at, lower, upper, True),
        left=_sum_figure(leaves, period, baseline),
        leavers=await _people(session, group.id, Membership.left_at, lower, upper, False),
        active=active_figure,
        messages=_sum_figure(messages, period, baseline),
        top=top,
        open_deals=open_deals,
        closed_deals=closed_deals,
        orders=_sum_figure(orders_by_day, period, baseline),
        units=_sum_figure(units_by_day, period, baseline),
        revenue=revenue_figures,
        cancellations=cancellations,
        credit=credit,
        buyers=len(period_buyers),
        conversion=conversion,
        chart_days=chart_days,
        chart_active=[active.get(d, 0) for d in chart_days],
        chart_messages=[messages.get(d, 0) for d in chart_days],
        chart_orders=[orders_by_day.get(d, 0) for d in chart_days],
        chart_revenue=[revenue_by_day.get(chart_currency, {}).get(d, 0) for d in chart_days],
        chart_currency=chart_currency,
        cards=cards,
        collected=await payment_books.collected(
            session, group_ids=[group.id], since=lower, until=upper
        ),
        outstanding=await payment_books.outstanding(session, group_ids=[group.id]),
        teams=await team_service.counts(
            session, group_id=group.id, closed_from=lower, closed_to=upper
        ),
        bargains=await bargain_service.counts(
            session, group_id=group.id, closed_from=lower, closed_to=upper
        ),
        coupons_claimed=Figure(claimed, claimed_before / BASELINE_DAYS * period.days),
        coupons_redeemed=Figure(redeemed, redeemed_before / BASELINE_DAYS * period.days),
        polls=await poll_service.counts(
            session, group_id=group.id, closed_from=lower, closed_to=upper
        ),
        lotteries=await lottery_service.counts(
            session, group_id=group.id, since=lower, until=upper
        ),
        events=await event_service.counts(session, group.id, lower, upper),
        reviews=await review_service.counts(session, [group.id], lower, upper),
        moderation=await moderation_service.counts(
            session, group_id=group.id, since=lower, until=upper
        ),
    )


async def _cards(
    session: AsyncSession,
    group_id: int,
    period: Period,
    lower: datetime,
    base_lower: datetime,
    upper: datetime,
) -> CardFigures:
    """Shared inline cards of the group: one aggregate each over the period and the week
    before (`lower` splits them)."""

    def figure(now_value: int, both: int) -> Figure:
        return Figure(now_value, (both - now_value) / BASELINE_DAYS * period.days)

    shared = (
        await session.execute(
            select(
                func.coalesce(func.sum(case((InlineCard.created_at >= lower, 1), else_=0)), 0),
                func.count(),
            ).where(
                InlineCard.group_id == group_id,
                InlineCard.created_at >= base_lower,
                InlineCard.created_at < upper,
            )
        )
    ).one()
    recent = Order.created_at >= lower
    shared_by = Order.referrer_id.is_not(None)
    joins = (
        await session.execute(
            select(
                func.coalesce(func.sum(case((recent, 1), else_=0)), 0),
                func.count(Order.id),
                func.coalesce(func.sum(case((and_(recent, shared_by), 1), else_=0)), 0),
                func.coalesce(func.sum(case((shared_by, 1), else_=0)), 0),
            ).where(
                Order.group_id == group_id,
                Order.via == "card",
                Order.created_at >= base_lower,
                Order.created_at < upper,
            )
        )
    ).one()
    net = func.coalesce(Order.amount, 0) - Order.discount - Order.coupon_discount
    sales: dict[str, Figure] = {}
    for currency, now_sum, both in await session.execute(
        select(
            Deal.currency,
            func.coalesce(func.sum(case((Deal.closed_at >= lower, net), else_=0)), 0),
            func.coalesce(func.sum(net), 0),
        )
        .join(Deal, Deal.id == Order.deal_id)
        .where(
            Order.group_id == group_id,
            Order.via == "card",
            shared_by,
            Order.status == "confirmed",
            Deal.closed_at >= base_lower,
            Deal.closed_at < upper,
        )
        .group_by(Deal.currency)
        .order_by(Deal.currency)
    ):
        sales[currency] = figure(int(now_sum), int(both))
    return CardFigures(
        shared=figure(int(shared[0]), int(shared[1])),
        joins=figure(int(joins[0]), int(joins[1])),
        attributed=figure(int(joins[2]), int(joins[3])),
        sales=sales,
    )


# ---------------------------------------------------------------- the operators' digest


@dataclass(frozen=True)
class GroupSummary:
    group_id: int
    chat_id: int
    title: str
    day: date
    active: int
    messages: int
    orders: int
    revenue: dict[str, int]


@dataclass(frozen=True)
class FailedSends:
    chat_id: int
    title: str | None
    count: int
    last_at: datetime
    reason: str


@dataclass
class AdminDigest:
    now: datetime
    groups: int
    by_revenue: list[GroupSummary]
    by_activity: list[GroupSummary]
    gone_quiet: list[GroupSummary]  # active last week (8-14 days ago), silent for 7 days
    removed: list[tuple[int, str]]  # (chat id, title): the bot was removed in the last day
    failures: list[FailedSends]
    failures_total: int
    # Payments: collected over each group's own yesterday, and what is owed now, per currency.
    collected: dict[str, int] = field(default_factory=dict)
    outstanding: dict[str, int] = field(default_factory=dict)


async def build_admin(session: AsyncSession, now: datetime, limit: int = 10) -> AdminDigest:
    """Every group on its own local yesterday: ranked by revenue and by activity; groups gone
    quiet or that removed the bot; failed sends of the last 24 hours."""
    groups = list(await session.scalars(select(Group).where(Group.is_active.is_(True))))
    days = {g.id: local_today(now, g.timezone) - timedelta(days=1) for g in groups}
    summaries: list[GroupSummary] = []
    quiet: list[GroupSummary] = []
    if groups:
        low = min(days.values()) - timedelta(days=13)
        activity: dict[int, dict[date, tuple[int, int]]] = defaultdict(dict)
        for gid, day, msgs, act in await session.execute(
            select(
                GroupActivityDay.group_id,
                GroupActivityDay.day,
                GroupActivityDay.messages,
                GroupActivityDay.active_members,
            ).where(GroupActivityDay.day >= low, GroupActivityDay.day <= max(days.values()))
        ):
            activity[gid][day] = (msgs or 0, act or 0)
        sales: dict[int, dict[date, tuple[int, dict[str, int]]]] = defaultdict(dict)
        by_id = {g.id: g for g in groups}
        for gid, closed_at, currency, count, revenue in await session.execute(
            select(
                Order.group_id,
                Deal.closed_at,
                Deal.currency,
                func.count(Order.id),
                func.coalesce(
                    func.sum(
                        func.coalesce(Order.amount, 0) - Order.discount - Order.coupon_discount
                    ),
                    0,
                ),
            )
            .join(Deal, Deal.id == Order.deal_id)
            .where(
                Order.status == "confirmed",
                Order.group_id.is_not(None),
                Deal.closed_at >= now - timedelta(days=3),
                Deal.closed_at < now,
            )
            .group_by(Order.group_id, Deal.id, Deal.closed_at, Deal.currency)
        ):
            if gid not in by_id:
                continue
            day = local_day(closed_at, by_id[gid].timezone)
            count_before, money = sales[gid].get(day, (0, {}))
            money = dict(money)
            money[currency] = money.get(currency, 0) + int(revenue)
            sales[gid][day] = (count_before + count, money)
        for g in groups:
            day = days[g.id]
            msgs, act = activity[g.id].get(day, (0, 0))
            count, money = sales[g.id].get(day, (0, {}))
            summary = GroupSummary(g.id, g.chat_id, g.title, day, act, msgs, count, money)
            summaries.append(summary)
            recent = sum(sum(activity[g.id].get(day - timedelta(i), (0, 0))) for i in range(7))
            before = sum(sum(activity[g.id].get(day - timedelta(i), (0, 0))) for i in range(7, 14))
            if recent == 0 and before > 0:
                quiet.append(summary)
    by_revenue = sorted(
        (s for s in summaries if any(s.revenue.values())),
        key=lambda s: (-max(s.revenue.values()), s.title, s.group_id),
    )[:limit]
    by_activity = sorted(
        (s for s in summaries if s.active or s.messages),
        key=lambda s: (-s.active, -s.messages, s.title, s.group_id),
    )[:limit]
    removed = [
        (g.chat_id, g.title)
        for g in await session.scalars(
            select(Group)
            .where(Group.is_active.is_(False), Group.updated_at >= now - timedelta(days=1))
            .order_by(Group.title)
        )
    ]
    since = now - timedelta(days=1)
    failure_rows = (
        await session.execute(
            select(
                SendFailure.chat_id, func.count(SendFailure.id), func.max(SendFailure.created_at)
            )
            .where(SendFailure.created_at >= since)
            .group_by(SendFailure.chat_id)
            .order_by(func.count(SendFailure.id).desc(), SendFailure.chat_id)
        )
    ).all()
    total = sum(int(r[1]) for r in failure_rows)
    failure_rows = failure_rows[:limit]
    titles = {
        g.chat_id: g.title
        for g in await session.scalars(
            select(Group).where(Group.chat_id.in_([r[0] for r in failure_rows] or [0]))
        )
    }
    failures = []
    for chat_id, count, last_at in failure_rows:
        reason = await session.scalar(
            select(SendFailure.reason)
            .where(SendFailure.chat_id == chat_id, SendFailure.created_at >= since)
            .order_by(SendFailure.created_at.desc(), SendFailure.id.desc())
            .limit(1)
        )
        failures.append(
            FailedSends(chat_id, titles.get(chat_id), int(count), _aware(last_at), reason or "")
        )
    collected: dict[str, int] = defaultdict(int)
    by_zone: dict[str, list[int]] = defaultdict(list)
    for g in groups:
        by_zone[g.timezone].append(g.id)
    for zone, ids in sorted(by_zone.items()):
        day = local_today(now, zone) - timedelta(days=1)
        lower, upper = utc_bounds(zone, day, day)
        for currency, amount in (
            await payment_books.collected(session, group_ids=ids, since=lower, until=upper)
        ).items():
            collected[currency] += amount
    return AdminDigest(
        now,
        len(groups),
        by_revenue,
        by_activity,
        quiet,
        removed,
        failures,
        total,
        collected={c: v for c, v in sorted(collected.items()) if v},
        outstanding=await payment_books.outstanding(session, group_ids=[g.id for g in groups])
        if groups
        else {},
    )


# ---------------------------------------------------------------- recipients and settings


async def subscriptions(session: AsyncSession, group_id: int) -> dict[int, bool]:
    rows = await session.execute(
        select(DigestSubscription.user_id, DigestSubscription.enabled).where(
            DigestSubscription.group_id == group_id
        )
    )
    return {user_id: bool(enabled) for user_id, enabled in rows}


def default_subscribed(group: Group, user_id: int, status: str | None) -> bool:
    """Without an explicit choice: the group's creator and the person who added the bot (while
    an administrator) get the digest; other administrators opt in."""
    return status == "creator" or user_id == group.added_by


async def is_subscribed(session: AsyncSession, group: Group, user_id: int) -> bool:
    choice = await session.scalar(
        select(DigestSubscription.enabled).where(
            DigestSubscription.group_id == group.id, DigestSubscription.user_id == user_id
        )
    )
    if choice is not None:
        return bool(choice)
    status = await session.scalar(
        select(GroupAdmin.status).where(
            GroupAdmin.group_id == group.id, GroupAdmin.user_id == user_id
        )
    )
    return default_subscribed(group, user_id, status)


async def set_subscribed(
    session: AsyncSession, group_id: int, user_id: int, enabled: bool, now: datetime
) -> None:
    await upsert(
        session,
        DigestSubscription.__table__,
        {"group_id": group_id, "user_id": user_id, "enabled": enabled, "updated_at": now},
        conflict=["group_id", "user_id"],
        update=["enabled", "updated_at"],
    )


async def recipients(session: AsyncSession, group: Group) -> list[User]:
    """Owners and administrators of the group who get its digest (and started the bot)."""
    statuses = dict(
        (
            await session.execute(
                select(GroupAdmin.user_id, GroupAdmin.status).where(GroupAdmin.group_id == group.id)
            )
        ).all()
    )
    # Only current administrators: whoever added the bot gets it by default only while they
    # still administer the group (a demoted admin or a member who added it gets nothing).
    choices = await subscriptions(session, group.id)
    wanted = [
        uid
        for uid, status in statuses.items()
        if choices.get(uid, default_subscribed(group, uid, status))
    ]
    if not wanted:
        return []
    users = await session.scalars(
        select(User)
        .where(User.id.in_(wanted), User.started.is_(True), User.is_bot.is_(False))
        .order_by(User.id)
    )
    return list(users)


# ---------------------------------------------------------------- when digests are due


def registered_on(registered: datetime | None, timezone: str) -> date | None:
    """The group's local day of registration (None: unknown, every day counts)."""
    return local_day(registered, timezone) if registered is not None else None


def covers(registered: datetime | None, timezone: str, day: date) -> bool:
    """A digest of `day` may be sent: the group was registered on that local day or before."""
    first = registered_on(registered, timezone)
    return first is None or day >= first


def since_registration(group: Group, period: Period) -> Period | None:
    """The part of `period` from the group's registration day on (None: it was all before:
    no digest covers a day before the bot was in the group)."""
    first = registered_on(group.created_at, group.timezone)
    if first is None or period.start >= first:
        return period
    if period.end < first:
        return None
    return Period(first, period.end)


def scope_of(group_id: int) -> str:
    return f"g{group_id}"


def _at_or_after(now: datetime, timezone: str, hhmm: str) -> bool:
    try:
        at = time.fromisoformat(parse_time(hhmm))
    except InvalidDigestTime:
        at = time(9, 0)
    return now.astimezone(ZoneInfo(timezone)).time() >= at


async def due_groups(session: AsyncSession, now: datetime) -> list[tuple[int, date]]:
    """(group id, local day to report) of groups whose digest time has come today (local)
    and whose digest of yesterday was not sent or taken yet. Only yesterday: after a long
    downtime older days are not sent; and never a day before the group was registered (a
    group added today gets its first digest tomorrow, of today)."""
    candidates: list[tuple[int, date]] = []
    for gid, tz, at, registered in await session.execute(
        select(Group.id, Group.timezone, Group.digest_time, Group.created_at).where(
            Group.is_active.is_(True), Group.digest_enabled.is_(True)
        )
    ):
        day = local_today(now, tz) - timedelta(days=1)
        if _at_or_after(now, tz, at or "09:00") and covers(registered, tz, day):
            candidates.append((gid, day))
    if not candidates:
        return []
    taken = await _taken(session, [(scope_of(g), d) for g, d in candidates], now)
    return [(g, d) for g, d in candidates if (scope_of(g), d) not in taken]


async def _taken(
    session: AsyncSession, keys: Sequence[tuple[str, date]], now: datetime
) -> set[tuple[str, date]]:
    days = {d for _s, d in keys}
    rows = await session.execute(
        select(DigestRun.scope, DigestRun.day, DigestRun.status, DigestRun.claimed_until).where(
            DigestRun.day.in_(days)
        )
    )
    taken = set()
    for scope, day, status, until in rows:
        if status == "sent" or (until is not None and _aware(until) > now):
            taken.add((scope, day))
    return taken


async def admin_due(session: AsyncSession, now: datetime, timezone: str) -> date | None:
    """The day of the operators' digest if it is due (09:00 in `timezone`) and not taken."""
    if now.astimezone(ZoneInfo(timezone)).time() < ADMIN_DIGEST_TIME:
        return None
    day = local_today(now, timezone)
    if (ADMIN_SCOPE, day) in await _taken(session, [(ADMIN_SCOPE, day)], now):
        return None
    return day


async def claim(session: AsyncSession, scope: str, day: date, now: datetime) -> bool:
    """Take a digest for sending; False if it was sent or another instance holds it. A claim
    whose lease ran out (a crash while sending) can be taken again."""
    if await insert_ignore(
        session,
        DigestRun.__table__,
        {"scope": scope, "day": day, "status": "claimed", "claimed_until": now + LEASE},
        conflict=["scope", "day"],
    ):
        return True
    result = await session.execute(
        update(DigestRun)
        .where(
            DigestRun.scope == scope,
            DigestRun.day == day,
            DigestRun.status == "claimed",
            or_(DigestRun.claimed_until.is_(None), DigestRun.claimed_until <= now),
        )
        .values(claimed_until=now + LEASE)
    )
    return (result.rowcount or 0) > 0


async def finish(session: AsyncSession, scope: str, day: date, now: datetime) -> None:
    await session.execute(
        update(DigestRun)
        .where(DigestRun.scope == scope, DigestRun.day == day)
        .values(status="sent", sent_at=now, claimed_until=None)
    )


async def set_time(session: AsyncSession, group: Group, value: str) -> str:
    group.digest_time = parse_time(value)
    await session.flush()
    return group.digest_time


async def set_enabled(session: AsyncSession, group: Group, enabled: bool) -> None:
    group.digest_enabled = enabled
    await session.flush()

"""Single-level commission: an append-only ledger of credit per (group, member, currency).

- The rate is a percentage the owner sets per group, optionally per deal (`Deal.commission_bp`,
  NULL = the group's), stored in basis points (500 = 5 %), from 0 to 50 %.
- When an attributed order (`Order.referrer_id`, never the buyer) is fulfilled — picked up,
  delivered or paid — its referrer is credited `floor((amount − discount) × bp / 10000)` in
  the deal's currency: an `earned` entry. Only `Order.referrer_id` is ever credited: the
  referrer's own referrer earns nothing (one level).
- Exactly once per order: the order row is locked (PostgreSQL `FOR UPDATE`; SQLite
  serialises writers) and an order that already has an `earned` entry gets no second one,
  whatever the number of concurrent or replayed calls.
- A confirmed order cancelled or refunded afterwards gets a `reversed` entry of minus what it
  net earned, so the net per order is always 0 or the commission. Credit the buyer spent on
  that order comes back as a positive `spent` entry.
- Balances are sums, never stored. Payouts (`payout`, by an owner) and spending (`spent`, by
  the member, as a discount on a later order in the same group and currency) lock the group
  row (`FOR NO KEY UPDATE`, which does not block inserts referring to the group) before
  reading the balance, so two of them can never overdraw it.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import CreditEntry, Deal, Group, Order
from services.errors import DomainError
from services.privacy import is_pseudonym

log = logging.getLogger(__name__)

KINDS = ("earned", "reversed", "payout", "spent")
MAX_BP = 5000  # 50 %
MIN_DAYS, MAX_DAYS = 1, 90
FULFILLED = ("picked_up", "delivered")

__all__ = [
    "FULFILLED",
    "KINDS",
    "MAX_BP",
    "MAX_DAYS",
    "MIN_DAYS",
    "Balance",
    "BadDays",
    "BadPercent",
    "CannotSpend",
    "CreditError",
    "HistoryItem",
    "PayoutRefused",
    "balance",
    "balances_in_group",
    "balances_of_user",
    "commission_for",
    "effective_bp",
    "format_percent",
    "history",
    "is_fulfilled",
    "lock_order",
    "on_cancelled",
    "on_fulfilled",
    "parse_days",
    "parse_percent",
    "record_payout",
    "set_attribution_days",
    "set_deal_rate",
    "set_group_rate",
    "set_spendable",
    "spend",
    "spendable_orders",
]


class CreditError(DomainError):
    pass


class BadPercent(CreditError):
    """reason: not_a_number | out_of_range | too_precise."""

    def __init__(self, reason: str, value: str) -> None:
        super().__init__(reason, value)
        self.reason = reason
        self.value = value


class BadDays(CreditError):
    """reason: not_a_number | out_of_range."""

    def __init__(self, reason: str, value: str) -> None:
        super().__init__(reason, value)
        self.reason = reason
        self.value = value


class PayoutRefused(CreditError):
    """reason: not_positive | over_balance; `balance` is what the member has."""

    def __init__(self, reason: str, balance: int) -> None:
        super().__init__(reason, balance)
        self.reason = reason
        self.balance = balance


class CannotSpend(CreditError):
    """reason: not_yours | not_allowed (the group does not allow spending) | order (not a
    confirmed, unpaid, not yet fulfilled order) | no_credit | nothing_to_pay."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------- parsing and rates


def _normal(text: str) -> str:
    """Full-width digits and signs (５％, －１) → ASCII; spaces removed; decimal comma → point."""
    raw = unicodedata.normalize("NFKC", text or "").strip()
    return raw.replace(" ", "").replace(",", ".")


def parse_percent(text: str) -> int:
    """'5', '5.5', '5.5%', '５％', '0' → basis points (500, 550, 550, 500, 0).

    Refused with a reason: not_a_number ('abc', ''), out_of_range (below 0 or above 50),
    too_precise (more than 2 decimals: '5.555')."""
    raw = _normal(text).removesuffix("%").strip()
    if len(raw) > 20 or not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", raw):
        raise BadPercent("not_a_number", (text or "").strip()[:20])
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
        raise BadPercent("not_a_number", text.strip()[:20]) from exc
    if value < 0 or value > MAX_BP / 100:
        raise BadPercent("out_of_range", text.strip())
    scaled = value * 100
    if scaled != scaled.to_integral_value():
        raise BadPercent("too_precise", text.strip())
    return int(scaled)


def format_percent(bp: int) -> str:
    """550 → '5.5', 500 → '5', 525 → '5.25' (without the % sign)."""
    value = Decimal(bp) / 100
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def parse_days(text: str) -> int:
    """An attribution window in whole days, 1–90."""
    raw = _normal(text).lower().removesuffix("days").removesuffix("d").removesuffix("天")
    if not re.fullmatch(r"[+-]?\d{1,6}", raw):
        raise BadDays("not_a_number", (text or "").strip()[:20])
    days = int(raw)
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise BadDays("out_of_range", text.strip())
    return days


def effective_bp(deal: Deal, group: Group) -> int:
    """The deal's own rate if it has one, else the group's."""
    return deal.commission_bp if deal.commission_bp is not None else group.commission_bp


def commission_for(order: Order, bp: int) -> int:
    """floor((amount − discount − coupon discount) × bp / 10000), never negative."""
    base = max((order.amount or 0) - (order.discount or 0) - (order.coupon_discount or 0), 0)
    return base * max(bp, 0) // 10_000


def is_fulfilled(order: Order) -> bool:
    return order.fulfilment in FULFILLED or order.paid_at is not None


# ---------------------------------------------------------------- ledger reads


@dataclass(frozen=True, slots=True)
class Balance:
    group_id: int
    user_id: int
    currency: str
    amount: int


@dataclass(frozen=True, slots=True)
class HistoryItem:
    entry: CreditEntry
    deal_code: str | None


async def balance(session: AsyncSession, group_id: int, user_id: int, currency: str) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(CreditEntry.amount), 0)).where(
            CreditEntry.group_id == group_id,
            CreditEntry.user_id == user_id,
            CreditEntry.currency == currency,
        )
    )
    return int(total or 0)


async def balances_of_user(session: AsyncSession, user_id: int) -> list[Balance]:
    """Every (group, currency) the member has ledger entries in, with its sum."""
    rows = await session.execute(
        select(CreditEntry.group_id, CreditEntry.currency, func.sum(CreditEntry.amount))
        .where(CreditEntry.user_id == user_id)
        .group_by(CreditEntry.group_id, CreditEntry.currency)
        .order_by(CreditEntry.group_id, CreditEntry.currency)
    )
    return [Balance(g, user_id, c, int(a or 0)) for g, c, a in rows.all()]


async def balances_in_group(session: AsyncSession, group_id: int, limit: int = 50) -> list[Balance]:
    """Members with a non-zero balance in the group, largest first."""
    total = func.sum(CreditEntry.amount)
    rows = await session.execute(
        select(CreditEntry.user_id, CreditEntry.currency, total)
        .where(CreditEntry.group_id == group_id)
        .group_by(CreditEntry.user_id, CreditEntry.currency)
        .having(total != 0)
        .order_by(total.desc(), CreditEntry.user_id)
        .limit(limit)
    )
    return [Balance(group_id, u, c, int(a or 0)) for u, c, a in rows.all()]


async def history(
    session: AsyncSession, user_id: int, group_id: int, limit: int = 10
) -> list[HistoryItem]:
    """The member's latest entries in the group, newest first, with the deal's code."""
    rows = await session.execute(
        select(CreditEntry, Order.deal_id)
        .outerjoin(Order, Order.id == CreditEntry.order_id)
        .where(CreditEntry.user_id == user_id, CreditEntry.group_id == group_id)
        .order_by(CreditEntry.id.desc())
        .limit(limit)
    )
    return [HistoryItem(e, f"D{d}" if d is not None else None) for e, d in rows.all()]


# ---------------------------------------------------------------- earning and reversing


async def lock_order(session: AsyncSession, order_id: int) -> Order | None:
    """The order row, locked (PostgreSQL FOR UPDATE) and read afresh; None if there is none."""
    return (
        await session.execute(
            select(Order)
            .where(Order.id == order_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def _lock_group(session: AsyncSession, group_id: int) -> Group | None:
    # FOR NO KEY UPDATE on PostgreSQL: serialises balance readers and writers of the group,
    # yet does not wait for (or block) inserts whose foreign key refers to the group.
    return (
        await session.execute(
            select(Group)
            .where(Group.id == group_id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def _order_sum(session: AsyncSession, order_id: int, kinds: tuple[str, ...]) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(CreditEntry.amount), 0)).where(
            CreditEntry.order_id == order_id, CreditEntry.kind.in_(kinds)
        )
    )
    return int(total or 0)


async def on_fulfilled(session: AsyncSession, order: Order, now: datetime) -> CreditEntry | None:
    """Credit the order's referrer once, if the order is confirmed, fulfilled (picked up,
    delivered or paid), attributed to someone other than the buyer, and the rate gives more
    than zero. Returns the new `earned` entry, or None when nothing was credited."""
    locked = await lock_order(session, order.id)
    if locked is None or locked.status != "confirmed" or not is_fulfilled(locked):
        return None
    referrer = locked.referrer_id
    if referrer is None or referrer == locked.user_id or locked.group_id is None:
        return None
    if is_pseudonym(referrer):  # the referrer used /forgetme: nobody left to credit
        return None
    already = await session.scalar(
        select(func.count(CreditEntry.id)).where(
            CreditEntry.order_id == locked.id, CreditEntry.kind == "earned"
        )
    )
    if already:
        return None
    deal = await session.get(Deal, locked.deal_id)
    group = await session.get(Group, locked.group_id)
    if deal is None or group is None:  # pragma: no cover - foreign keys
        return None
    bp = effective_bp(deal, group)
    amount = commission_for(locked, bp)
    if amount <= 0:
        return None
    entry = CreditEntry(
        group_id=group.id,
        user_id=referrer,
        currency=deal.currency,
        amount=amount,
        kind="earned",
        order_id=locked.id,
        note=f"{deal.code} {format_percent(bp)}%",
        created_at=now,
    )
    session.add(entry)
    await session.flush()
    log.info(
        "credit earned: %s %s to user %s in group %s for order %s",
        amount,
        deal.currency,
        referrer,
        group.id,
        locked.id,
    )
    return entry


async def on_cancelled(session: AsyncSession, order: Order, now: datetime) -> list[CreditEntry]:
    """After a confirmed order was cancelled or refunded: reverse what it net earned for its
    referrer, and give back the credit its buyer spent on it. Safe to call again (a second
    call finds nothing left to undo). Returns the new entries."""
    locked = await lock_order(session, order.id)
    if locked is None:
        return []
    entries: list[CreditEntry] = []
    rows = await session.execute(
        select(CreditEntry.group_id, CreditEntry.user_id, CreditEntry.currency, CreditEntry.kind)
        .where(CreditEntry.order_id == locked.id)
        .distinct()
    )
    seen: set[tuple[int, int, str, str]] = set()
    for group_id, user_id, currency, kind in rows.all():
        family = ("earned", "reversed") if kind in ("earned", "reversed") else ("spent",)
        key = (group_id, user_id, currency, family[0])
        if kind not in ("earned", "reversed", "spent") or key in seen:
            continue
        seen.add(key)
        net = int(
            await session.scalar(
                select(func.coalesce(func.sum(CreditEntry.amount), 0)).where(
                    CreditEntry.order_id == locked.id,
                    CreditEntry.group_id == group_id,
                    CreditEntry.user_id == user_id,
                    CreditEntry.currency == currency,
                    CreditEntry.kind.in_(family),
                )
            )
            or 0
        )
        if family[0] == "earned" and net > 0:
            kind_out, amount, note = "reversed", -net, "order cancelled"
        elif family[0] == "spent" and net < 0:
            kind_out, amount, note = "spent", -net, "order cancelled: credit returned"
        else:
            continue
        entry = CreditEntry(
            group_id=group_id,
            user_id=user_id,
            currency=currency,
            amount=amount,
            kind=kind_out,
            order_id=locked.id,
            note=note,
            created_at=now,
        )
        session.add(entry)
        entries.append(entry)
    if entries:
        await session.flush()
        log.info("credit undone for cancelled order %s: %d entries", locked.id, len(entries))
    return entries


# ---------------------------------------------------------------- payouts and spending


async def record_payout(
    session: AsyncSession,
    group_id: int,
    user_id: int,
    currency: str,
    amount: int,
    by: int,
    now: datetime,
    note: str = "",
) -> CreditEntry:
    """An owner paid `amount` of the member's credit out (the caller checked that `by`
    administers the group). 0 < amount ≤ balance, checked under the group's lock."""
    if amount <= 0:
        raise PayoutRefused("not_positive", 0)
    await _lock_group(session, group_id)
    have = await balance(session, group_id, user_id, currency)
    if amount > have:
        raise PayoutRefused("over_balance", have)
    entry = CreditEntry(
        group_id=group_id,
        user_id=user_id,
        currency=currency,
        amount=-amount,
        kind="payout",
        note=note[:200],
        created_by=by,
        created_at=now,
    )
    session.add(entry)
    await session.flush()
    log.info("payout %s %s to user %s, group %s, by %s", amount, currency, user_id, group_id, by)
    return entry


def _spendable(order: Order, deal: Deal) -> bool:
    return (
        order.status == "confirmed"
        and deal.status == "succeeded"
        and order.quantity > 0
        and order.paid_at is None
        and order.fulfilment not in FULFILLED
        and (order.amount or 0) > (order.discount or 0) + (order.coupon_discount or 0)
    )


async def spendable_orders(session: AsyncSession, user_id: int) -> list[tuple[Order, Deal, int]]:
    """The member's orders credit could be used on now: (order, deal, balance there), for
    groups that allow spending and where the member has a positive balance in the deal's
    currency."""
    rows = await session.execute(
        select(Order, Deal, Group)
        .join(Deal, Deal.id == Order.deal_id)
        .join(Group, Group.id == Order.group_id)
        .where(
            Order.user_id == user_id,
            Order.status == "confirmed",
            Order.paid_at.is_(None),
            Order.fulfilment.not_in(FULFILLED),
            Group.credit_spendable.is_(True),
        )
        .order_by(Order.id)
    )
    result = []
    for order, deal, group in rows.all():
        if not _spendable(order, deal):
            continue
        have = await balance(session, group.id, user_id, deal.currency)
        if have > 0:
            result.append((order, deal, have))
    return result


async def spend(session: AsyncSession, order_id: int, user_id: int, now: datetime) -> CreditEntry:
    """Use the member's credit as a discount on their confirmed, unpaid, not yet fulfilled
    order, in its group and currency: min(balance, what is left to pay). Locks the order and
    the group, so concurrent spends never overdraw and never discount past the amount."""
    order = await lock_order(session, order_id)
    if order is None or order.user_id != user_id or order.group_id is None:
        raise CannotSpend("not_yours")
    group = await _lock_group(session, order.group_id)
    deal = await session.get(Deal, order.deal_id)
    if group is None or deal is None:  # pragma: no cover - foreign keys
        raise CannotSpend("not_yours")
    if not group.credit_spendable:
        raise CannotSpend("not_allowed")
    if not (
        order.status == "confirmed"
        and deal.status == "succeeded"
        and order.paid_at is None
        and order.fulfilment not in FULFILLED
    ):
        raise CannotSpend("order")
    left = (order.amount or 0) - (order.discount or 0) - (order.coupon_discount or 0)
    if left <= 0:
        raise CannotSpend("nothing_to_pay")
    have = await balance(session, group.id, user_id, deal.currency)
    if have <= 0:
        raise CannotSpend("no_credit")
    used = min(have, left)
    await session.execute(
        update(Order)
        .where(Order.id == order.id)
        .values(discount=Order.discount + used, updated_at=now)
    )
    entry = CreditEntry(
        group_id=group.id,
        user_id=user_id,
        currency=deal.currency,
        amount=-used,
        kind="spent",
        order_id=order.id,
        note=deal.code,
        created_by=user_id,
        created_at=now,
    )
    session.add(entry)
    await session.flush()
    await session.refresh(order)
    log.info("user %s spent %s %s on order %s", user_id, used, deal.currency, order.id)
    from services import payments  # it builds on this module: imported when used

    await payments.on_discount(session, order, deal, now)  # a new invoice for what is left
    return entry


# ---------------------------------------------------------------- settings


async def set_deal_rate(session: AsyncSession, deal: Deal, bp: int | None) -> None:
    """A deal's own rate (the caller checked that the user owns the deal); None: the group's."""
    if bp is not None and not 0 <= bp <= MAX_BP:
        raise BadPercent("out_of_range", format_percent(bp))
    deal.commission_bp = bp
    await session.flush()


async def set_group_rate(session: AsyncSession, group: Group, bp: int) -> None:
    if not 0 <= bp <= MAX_BP:
        raise BadPercent("out_of_range", format_percent(bp))
    group.commission_bp = bp
    await session.flush()


async def set_attribution_days(session: AsyncSession, group: Group, days: int) -> None:
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise BadDays("out_of_range", str(days))
    group.attribution_days = days
    await session.flush()


async def set_spendable(session: AsyncSession, group: Group, spendable: bool) -> None:
    group.credit_spendable = spendable
    await session.flush()

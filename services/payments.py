"""Payments in the chat: card through the provider connected in @BotFather, or Telegram Stars
(XTR, digital items only); cash on pickup is a deal that takes no payment here.

When members pay (`Deal.pay_method` card | stars):
- A deal with a minimum: after it succeeds (`on_closed`). Every confirmed order gets a
  deadline (`Order.pay_by` = closing + `Deal.pay_hours`), an invoice in private chat and a
  reminder before the deadline, both outbox rows written with the closing.
- A deal without a minimum (a flash sale, `is_flash`): the units are held when the member
  joins (`on_order_changed`, called by the one order action): the order is priced, gets
  `pay_by` = now + `Deal.hold_minutes` and an invoice at once; a change of quantity makes
  a new invoice (the old one is stale), a paid order cannot be changed by its member.
- `lapse_due` (the scheduler's tick): an unpaid order past `pay_by` is cancelled — a hold
  through the one order action, a confirmed order by services.orders.release — its units
  go back to stock and to the first members of the deal's waitlist, each with an invoice.

An invoice is `pay:<order>:<invoice_no>`; every new amount (a hold changed, credit spent)
makes a new number, and pre-checkout refuses an older one. `precheck` only reads. A
`successful_payment` is recorded once per Telegram charge id (a unique key: a replay
changes nothing), in the transaction that marks the order paid and promises the receipt.
A payment that finds its order already paid, cancelled or owing another amount is a
surplus: Stars are refunded at once through the Bot API (an outbox row: `refundStarPayment`
once, then its outcome recorded), a card payment is recorded as owed to the member and the
owner is told what to do (the Bot API has no card refunds).

Outbox keys (services.notices lists the others):

    invoice:<order>:<no>        the invoice (kind invoice)
    payremind:<order>:<no>      a reminder before the payment deadline (pay_note)
    receipt:P<payment>          the payment is recorded (pay_note; receipt:O<order>:<no>
                                when credit paid the whole order)
    surplus:P<payment>          a payment that was not needed: refunded / owed (pay_note)
    lapsed:<order>:<no>         the order was cancelled, unpaid at its deadline (pay_note)
    starrefund:P<payment>[:<t>] refundStarPayment (star_refund; its outcome: refund_settled);
                                a retry after Telegram refused one has its time in the key
    refunded:P<payment>         the member's Stars came back (pay_note)
    payowner:P<payment>:<what>  the owner: a card payment to give back (owed), a refund
                                that failed (failed:<t>, each failure told)

No aiogram here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Deal, Group, Order, Payment, WaitlistEntry
from models.upsert import insert_ignore
from services import coupons, events, notices, outbox, rights
from services import credit as credit_service
from services import orders as order_service
from services.admins import AdminDirectory
from services.errors import DealNotFound, DomainError
from services.money import STARS

log = logging.getLogger(__name__)

METHODS = ("card", "stars")
PAYLOAD_PREFIX = "pay"
REMIND_BEFORE = timedelta(hours=2)  # at most; half the window when it is shorter
MAX_ID = 2**31 - 1
REFUND_STATES = ("none", "pending", "refunded", "failed", "owed", "outside")
ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"
PRECHECK_REASONS = (
    "unknown",
    "not_yours",
    "paid",
    "cancelled",
    "expired",
    "stale",
    "amount",
    "currency",
)

__all__ = [
    "METHODS",
    "PRECHECK_REASONS",
    "CardRefundOutside",
    "Lapsed",
    "PaymentError",
    "Recorded",
    "WaitlistRefused",
    "confirm_outside",
    "is_flash",
    "is_paid",
    "join_waitlist",
    "lapse_due",
    "method_of",
    "on_closed",
    "on_discount",
    "on_order_changed",
    "owed",
    "parse_payload",
    "payload_of",
    "precheck",
    "record",
    "refund_order",
    "refund_settled",
]


class PaymentError(DomainError):
    pass


class WaitlistRefused(PaymentError):
    """reason: not_paid (a cash deal) | closed | in_stock (join instead) | holding (the
    member has an order in the deal)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CardRefundOutside(PaymentError):
    """A card payment is refunded in the provider's dashboard: the owner confirms they did."""

    def __init__(self, payment: Payment) -> None:
        super().__init__(payment.charge_id)
        self.payment = payment


def is_paid(deal: Deal) -> bool:
    return deal.pay_method in METHODS


def is_flash(deal: Deal) -> bool:
    """Paid at once when joining: a paid deal without a minimum (a flash sale)."""
    return is_paid(deal) and not deal.min_kind


def method_of(currency: str) -> str:
    return "stars" if currency == STARS else "card"


def owed(order: Order) -> int:
    """What the order asks for now: nothing once paid, else its amount less its discounts
    (credit and a coupon, services.coupons)."""
    if order.paid_at is not None:
        return 0
    return max((order.amount or 0) - (order.discount or 0) - (order.coupon_discount or 0), 0)


def payload_of(order: Order) -> str:
    return f"{PAYLOAD_PREFIX}:{order.id}:{order.invoice_no}"


def parse_payload(text: str | None) -> tuple[int, int] | None:
    """`pay:<order>:<no>` → (order id, invoice number); None for anything else."""
    parts = (text or "").split(":")
    if len(parts) != 3 or parts[0] != PAYLOAD_PREFIX:
        return None
    if not all(p.isascii() and p.isdigit() and len(p) <= 10 for p in parts[1:]):
        return None
    order_id, number = int(parts[1]), int(parts[2])
    if not (0 < order_id <= MAX_ID and 0 < number <= MAX_ID):
        return None
    return order_id, number


# ---------------------------------------------------------------- invoices


async def _invoice(session: AsyncSession, order: Order, now: datetime, *, remind: bool) -> None:
    """A new invoice for what the order owes now (its number moves on: older invoices are
    stale), and a reminder before its deadline. An order that owes nothing (credit paid
    it) is marked paid instead."""
    number = (
        await session.execute(
            update(Order)
            .where(Order.id == order.id)
            .values(invoice_no=Order.invoice_no + 1, updated_at=now)
            .returning(Order.invoice_no)
        )
    ).scalar_one()
    order.invoice_no = number
    await _promise_invoice(session, order, now, remind=remind)


async def _promise_invoice(
    session: AsyncSession, order: Order, now: datetime, *, remind: bool
) -> None:
    """The invoice numbered `order.invoice_no` (and its reminder) as outbox rows."""
    number = order.invoice_no
    if owed(order) <= 0:
        await _mark_paid(session, order, 0, now)
        await _note(session, f"receipt:O{order.id}:{number}", order, "receipt", now)
        return
    await outbox.promise(
        session,
        key=f"invoice:{order.id}:{number}",
        chat_id=order.user_id,
        kind="invoice",
        payload={"order_id": order.id, "invoice_no": number},
        group_id=order.group_id,
        now=now,
    )
    if remind and order.pay_by is not None and order.pay_by > now:
        before = min(REMIND_BEFORE, (order.pay_by - now) / 2)
        await outbox.promise(
            session,
            key=f"payremind:{order.id}:{number}",
            chat_id=order.user_id,
            kind="pay_note",
            payload={"what": "remind", "order_id": order.id, "invoice_no": number},
            group_id=order.group_id,
            now=now,
            due_at=order.pay_by - before,
        )


async def _note(
    session: AsyncSession, key: str, order: Order, what: str, now: datetime, **extra: object
) -> None:
    await outbox.promise(
        session,
        key=key,
        chat_id=order.user_id,
        kind="pay_note",
        payload={"what": what, "order_id": order.id, **extra},
        group_id=order.group_id,
        now=now,
    )


async def on_order_changed(
    session: AsyncSession, change: order_service.Change, now: datetime
) -> None:
    """The one order action changed a member's quantity: in a flash sale the units are
    held (priced, a deadline, an invoice); a cancelled hold has no deadline any more."""
    deal, order = change.deal, change.order
    if order is None or not is_flash(deal) or order.offer is not None:
        return  # a team's place or a bargain's buy is priced and invoiced when confirmed
    if change.new_quantity <= 0:
        await session.execute(update(Order).where(Order.id == order.id).values(pay_by=None))
        order.pay_by = None
        await coupons.give_back(session, order, now)
        return
    pay_by = now + timedelta(minutes=deal.hold_minutes)
    await session.execute(
        update(Order)
        .where(Order.id == order.id)
        .values(
            unit_price=deal.unit_price,
            amount=change.new_quantity * deal.unit_price,
            pay_by=pay_by,
        )
    )
    order.unit_price, order.amount, order.pay_by = (
        deal.unit_price,
        change.new_quantity * deal.unit_price,
        pay_by,
    )
    await coupons.on_priced(session, order, deal, now)  # the best coupon, before the invoice
    await _invoice(session, order, now, remind=False)


async def on_closed(session: AsyncSession, deal: Deal, orders: list[Order], now: datetime) -> None:
    """A paid deal closed. Succeeded with a minimum: every confirmed order gets its deadline
    and invoice now (a flash sale's holds keep theirs). Cancelled: every payment taken is
    given back (a flash sale's paid holds)."""
    if not is_paid(deal):
        return
    if deal.status == "succeeded":
        if is_flash(deal):
            return
        pay_by = now + timedelta(hours=deal.pay_hours)
        numbered = dict(
            (
                await session.execute(
                    update(Order)
                    .where(
                        Order.deal_id == deal.id,
                        Order.status == "confirmed",
                        Order.quantity > 0,
                        Order.paid_at.is_(None),
                        Order.team_id.is_(None),  # a filled team's are invoiced already
                        Order.bargain_id.is_(None),  # and a bargain's buy
                    )
                    .values(pay_by=pay_by, invoice_no=Order.invoice_no + 1, updated_at=now)
                    .returning(Order.id, Order.invoice_no)
                    .execution_options(synchronize_session=False)
                )
            ).all()
        )
        for order in orders:  # one UPDATE numbered them all; each gets its invoice
            if order.id in numbered:
                order.pay_by, order.invoice_no = pay_by, numbered[order.id]
                await _promise_invoice(session, order, now, remind=True)
        return
    for order in orders:
        for payment in await _applied(session, order.id):
            await _give_back(session, payment, order, deal, now, reason="deal " + deal.status)


async def on_confirmed(
    session: AsyncSession, deal: Deal, orders: list[Order], now: datetime
) -> None:
    """Orders confirmed while their deal is open (a filled team): in a paid deal each gets
    its deadline (a flash sale's hold time, else the deal's payment window) and invoice."""
    if not is_paid(deal):
        return
    window = timedelta(minutes=deal.hold_minutes) if is_flash(deal) else None
    pay_by = now + (window or timedelta(hours=deal.pay_hours))
    for order in orders:
        await session.execute(update(Order).where(Order.id == order.id).values(pay_by=pay_by))
        order.pay_by = pay_by
        await _invoice(session, order, now, remind=window is None)


async def on_discount(session: AsyncSession, order: Order, deal: Deal, now: datetime) -> None:
    """Credit lowered what an unpaid order of a paid deal owes: a new invoice for the rest
    (or the order is paid, when nothing is left)."""
    if is_paid(deal) and order.paid_at is None and order.pay_by is not None:
        await _invoice(session, order, now, remind=not is_flash(deal))


# ---------------------------------------------------------------- pre-checkout


async def precheck(
    session: AsyncSession,
    *,
    payload: str,
    user_id: int,
    currency: str,
    amount: int,
    now: datetime,
) -> str | None:
    """None when the order may be paid with this amount now; else why not (one of
    PRECHECK_REASONS). Reads only: one order and its deal."""
    parsed = parse_payload(payload)
    if parsed is None:
        return "unknown"
    order_id, number = parsed
    row = (
        await session.execute(
            select(Order, Deal).join(Deal, Deal.id == Order.deal_id).where(Order.id == order_id)
        )
    ).first()
    if row is None or not is_paid(row[1]):
        return "unknown"
    order, deal = row
    if order.user_id != user_id:
        return "not_yours"
    if order.paid_at is not None:
        return "paid"
    if order.quantity <= 0 or order.status not in ("active", "confirmed"):
        return "cancelled"
    if order.status == "active" and not is_flash(deal):
        return "cancelled"  # a deal with a minimum is paid after it succeeds
    if order.pay_by is None or order.pay_by <= now:
        return "expired"
    if number != order.invoice_no:
        return "stale"
    if currency != deal.currency:
        return "currency"
    if amount != owed(order):
        return "amount"
    return None


# ---------------------------------------------------------------- successful payments


@dataclass
class Recorded:
    """outcome: applied (the order is paid) | surplus (refunded or owed) | replay (that
    charge was recorded before: nothing changed)."""

    outcome: str
    payment: Payment | None = None
    order: Order | None = None
    entries: list = field(default_factory=list)


async def _applied(session: AsyncSession, order_id: int) -> list[Payment]:
    rows = await session.scalars(
        select(Payment)
        .where(Payment.order_id == order_id, Payment.applied.is_(True))
        .where(Payment.refund.in_(("none", "failed")))
        .order_by(Payment.id)
        .with_for_update()
    )
    return list(rows)


async def _mark_paid(session: AsyncSession, order: Order, amount: int, now: datetime) -> None:
    await session.execute(
        update(Order)
        .where(Order.id == order.id)
        .values(paid_at=now, paid_amount=amount, pay_by=None, updated_at=now)
    )
    order.paid_at, order.paid_amount, order.pay_by = now, amount, None
    entry = await credit_service.on_fulfilled(session, order, now)  # paying is fulfilling
    if entry is not None:
        await notices.credit(session, [entry], now)


async def record(
    session: AsyncSession,
    *,
    charge_id: str,
    provider_charge_id: str,
    payload: str,
    user_id: int,
    currency: str,
    amount: int,
    now: datetime,
) -> Recorded:
    """Record a `successful_payment` once per charge id, and what it does: pay its order
    (applied) or, when the order is paid already, cancelled or owes another amount, start
    giving it back (surplus)."""
    charge_id = (charge_id or "")[:255]
    if not charge_id:
        raise PaymentError("no charge id")
    known = await session.scalar(select(Payment.id).where(Payment.charge_id == charge_id))
    if known is not None:
        return Recorded("replay")
    parsed = parse_payload(payload)
    order = await credit_service.lock_order(session, parsed[0]) if parsed else None
    deal = await session.get(Deal, order.deal_id) if order is not None else None
    applies = (
        order is not None
        and deal is not None
        and order.user_id == user_id
        and order.status in ("active", "confirmed")
        and order.quantity > 0
        and currency == deal.currency
        and 0 < amount == owed(order)
    )
    written = await insert_ignore(
        session,
        Payment.__table__,
        {
            "charge_id": charge_id,
            "provider_charge_id": (provider_charge_id or "")[:255],
            "order_id": order.id if order is not None else None,
            "user_id": user_id,
            "method": method_of(currency),
            "currency": currency[:3],
            "amount": amount,
            "applied": applies,
            "refund": "none",
            "refund_reason": "",
            "created_at": now,
        },
        ["charge_id"],
    )
    if not written:  # the same charge, recorded by a concurrent delivery of it
        return Recorded("replay")
    payment = (
        await session.execute(select(Payment).where(Payment.charge_id == charge_id))
    ).scalar_one()
    if applies:
        await _mark_paid(session, order, amount, now)
        await _note(session, f"receipt:P{payment.id}", order, "receipt", now)
        log.info("payment %s recorded: order %s paid %s %s", payment.id, order.id, amount, currency)
        if deal is not None:
            events.record(session, events.DealChanged(deal.id))  # the sign-up list shows paid
        return Recorded("applied", payment, order)
    log.warning(
        "payment %s (%s %s by %s) is a surplus for %s",
        payment.id,
        amount,
        currency,
        user_id,
        f"order {order.id}" if order is not None else f"payload {payload[:40]!r}",
    )
    await _give_back(session, payment, order, deal, now, reason="surplus")
    return Recorded("surplus", payment, order)


async def _give_back(
    session: AsyncSession,
    payment: Payment,
    order: Order | None,
    deal: Deal | None,
    now: datetime,
    *,
    reason: str,
) -> None:
    """Start returning a payment: Stars through the Bot API (an outbox row), a card payment
    recorded as owed and its deal's owner told what to do."""
    if payment.method == "stars":
        # a refund Telegram refused before is tried again under a key of its own
        again = "" if payment.refund == "none" else f":{int(now.timestamp())}"
        payment.refund, payment.refund_reason = "pending", reason[:200]
        await outbox.promise(
            session,
            key=f"starrefund:P{payment.id}{again}",
            chat_id=0,  # an API call, not a message: no chat to wait for
            kind="star_refund",
            payload={"payment_id": payment.id},
            now=now,
        )
    else:
        payment.refund, payment.refund_reason = "owed", reason[:200]
        if deal is not None:
            await _tell_owner(session, payment, deal, "owed", now)
    await session.flush()
    if reason == "surplus":
        group_id = order.group_id if order is not None else None
        await _payment_note(session, payment, "surplus", now, group_id=group_id)


async def _payment_note(
    session: AsyncSession, payment: Payment, what: str, now: datetime, group_id: int | None = None
) -> None:
    """A note to the payer about one payment (surplus | refunded), keyed by its charge."""
    await outbox.promise(
        session,
        key=f"{what}:P{payment.id}",
        chat_id=payment.user_id,
        kind="pay_note",
        payload={"what": what, "payment_id": payment.id},
        group_id=group_id,
        now=now,
    )


async def _tell_owner(
    session: AsyncSession, payment: Payment, deal: Deal, what: str, now: datetime
) -> None:
    await outbox.promise(
        session,
        # a refund can fail again after a retry: each failure is its own notice
        key=f"payowner:P{payment.id}:{what}"
        + (f":{int(now.timestamp())}" if what == "failed" else ""),
        chat_id=deal.owner_id,
        kind="pay_owner",
        payload={"what": what, "payment_id": payment.id},
        now=now,
    )


async def refund_settled(
    session: AsyncSession, payment_id: int, failure: str | None, now: datetime
) -> None:
    """The outcome of a `refundStarPayment`: done (also when Telegram says it was refunded
    already), or failed for good (the owner is told)."""
    payment = (
        await session.execute(select(Payment).where(Payment.id == payment_id).with_for_update())
    ).scalar_one_or_none()
    if payment is None or payment.refund != "pending":
        return
    if failure is None or ALREADY_REFUNDED in failure:
        payment.refund, payment.refunded_at = "refunded", now
        await _payment_note(session, payment, "refunded", now)
        log.info("payment %s refunded (Stars)", payment.id)
        return
    payment.refund, payment.refund_reason = "failed", failure[:200]
    log.warning("Stars refund of payment %s failed: %s", payment.id, failure)
    deal = None
    if payment.order_id is not None:
        deal = await session.scalar(
            select(Deal).join(Order, Order.deal_id == Deal.id).where(Order.id == payment.order_id)
        )
    if deal is not None:
        await _tell_owner(session, payment, deal, "failed", now)


async def refund_order(
    session: AsyncSession, order: Order, deal: Deal, now: datetime, *, outside: bool
) -> list[Payment]:
    """The owner refunds an order (services.fulfilment.refund): its Stars go back through
    the API; a card payment needs the owner's word that they refunded it in the provider's
    dashboard (`outside`), else CardRefundOutside and nothing changes."""
    paid = await _applied(session, order.id)
    for payment in paid:
        if payment.method == "card" and not outside:
            raise CardRefundOutside(payment)
    for payment in paid:
        if payment.method == "card":
            payment.refund, payment.refunded_at = "outside", now
            payment.refund_reason = "refunded by the owner"
        else:
            await _give_back(session, payment, order, deal, now, reason="refunded by the owner")
    await session.flush()
    return paid


async def confirm_outside(
    session: AsyncSession,
    payment_id: int,
    owner_id: int,
    now: datetime,
    *,
    admins: AdminDirectory | None = None,
) -> Payment | None:
    """The owner gave back an owed card payment in the provider's dashboard. Only who
    manages its deal now may say so (DealNotFound / NotDealOwner). None if it is not owed
    (any more): nothing changes."""
    found = await deal_of_payment(session, payment_id)
    if found is None:
        raise DealNotFound(payment_id)
    await rights.manage_deal(session, admins, found[1].id, owner_id)
    payment = (
        await session.execute(select(Payment).where(Payment.id == payment_id).with_for_update())
    ).scalar_one_or_none()
    if payment is None or payment.refund not in ("owed", "failed"):
        return None
    payment.refund, payment.refunded_at = "outside", now
    await session.flush()
    return payment


async def deal_of_payment(session: AsyncSession, payment_id: int) -> tuple[Payment, Deal] | None:
    row = (
        await session.execute(
            select(Payment, Deal)
            .join(Order, Order.id == Payment.order_id)
            .join(Deal, Deal.id == Order.deal_id)
            .where(Payment.id == payment_id)
        )
    ).first()
    return (row[0], row[1]) if row else None


# ---------------------------------------------------------------- lapses and the waitlist


@dataclass
class Lapsed:
    cancelled: int = 0  # unpaid orders cancelled at their deadline
    admitted: int = 0  # waitlisted members who got a freed unit


LAPSE_BATCH = 200
# A payment pre-checkout accepted just before the deadline lands seconds later: it is let in
# before the order lapses (pre-checkout itself refuses once the deadline passed).
LAPSE_GRACE = timedelta(minutes=2)


def _lapsing(now: datetime):
    """Unpaid orders of paid deals past their deadline: a hold of an open deal, or a
    confirmed order of a deal not cancelled (a succeeded deal's, or a filled team's in a
    deal open or closed since); a hold in a paused deal waits for it."""
    return (
        Order.pay_by.is_not(None),
        Order.pay_by <= now - LAPSE_GRACE,
        Order.paid_at.is_(None),
        Order.quantity > 0,
        Deal.pay_method.in_(METHODS),
        ((Order.status == "active") & (Deal.status == "open"))
        | ((Order.status == "confirmed") & (Deal.status != "cancelled")),
    )


async def any_lapsing(session: AsyncSession, now: datetime) -> bool:
    """One read: is any order due to lapse (the tick opens a write transaction only then)."""
    found = await session.scalar(
        select(Order.id).join(Deal, Deal.id == Order.deal_id).where(*_lapsing(now)).limit(1)
    )
    return found is not None


async def lapse_due(session: AsyncSession, now: datetime, limit: int = LAPSE_BATCH) -> Lapsed:
    """Cancel unpaid orders of paid deals past their deadline and give the freed units to
    the waitlists."""
    ids = list(
        await session.scalars(
            select(Order.id)
            .join(Deal, Deal.id == Order.deal_id)
            .where(*_lapsing(now))
            .order_by(Order.pay_by, Order.id)
            .limit(limit)
        )
    )
    done = Lapsed()
    freed: dict[int, int] = {}
    for order_id in ids:
        order = await credit_service.lock_order(session, order_id)
        if (
            order is None
            or order.paid_at is not None
            or order.pay_by is None
            or order.pay_by > now - LAPSE_GRACE
            or order.quantity <= 0
        ):
            continue
        number, quantity = order.invoice_no, order.quantity
        if order.status == "active":
            try:
                await order_service.act(
                    session,
                    deal_id=order.deal_id,
                    user_id=order.user_id,
                    action="cancel",
                    group=None,
                    now=now,
                    via="lapse",
                )
            except order_service.OrderError:
                continue  # the deal closed or paused meanwhile: the next tick decides
        elif order.status == "confirmed":
            entries = await order_service.release(session, order, now)
            await notices.credit(session, entries, now)
        else:
            continue
        await _note(session, f"lapsed:{order.id}:{number}", order, "lapsed", now)
        done.cancelled += 1
        freed[order.deal_id] = freed.get(order.deal_id, 0) + quantity
    for deal_id in freed:
        done.admitted += await serve_waitlist(session, deal_id, now)
    if done.cancelled:
        log.info(
            "payments: %d unpaid orders lapsed, %d waitlisted served", done.cancelled, done.admitted
        )
    return done


async def serve_waitlist(session: AsyncSession, deal_id: int, now: datetime) -> int:
    """Give the deal's free units, one each, to the first waiting members: in an open flash
    sale through the one order action (a hold and an invoice), in a succeeded deal as a
    confirmed order at its final price with its own deadline and invoice."""
    served = 0
    while True:
        deal = await session.get(Deal, deal_id, populate_existing=True)
        if deal is None or not deal.stock_left:
            return served
        entry = (
            await session.execute(
                select(WaitlistEntry)
                .where(WaitlistEntry.deal_id == deal_id, WaitlistEntry.served_at.is_(None))
                .order_by(WaitlistEntry.created_at, WaitlistEntry.user_id)
                .limit(1)
                .with_for_update()
            )
        ).scalar_one_or_none()
        if entry is None:
            return served
        entry.served_at = now
        await session.flush()
        if deal.status == "open":
            group = await session.get(Group, entry.group_id) if entry.group_id else None
            try:
                await order_service.act(
                    session,
                    deal_id=deal_id,
                    user_id=entry.user_id,
                    action="join",
                    group=group,
                    now=now,
                    via="waitlist",
                )
            except order_service.OrderError:
                continue  # they hold an order already, or are over a limit: the next one
        elif deal.status == "succeeded":
            order = await order_service.admit_waiting(
                session, deal, entry.user_id, entry.group_id, now
            )
            if order is None:
                continue
            order.pay_by = now + timedelta(hours=deal.pay_hours)
            await session.flush()
            await coupons.on_confirmed(session, deal, [order], now)  # the best coupon
            await _invoice(session, order, now, remind=True)
        else:
            return served
        served += 1


async def join_waitlist(
    session: AsyncSession,
    deal_id: int,
    user_id: int,
    group_id: int | None,
    now: datetime,
    *,
    free: bool = False,
) -> bool:
    """Put a member refused "sold out" on the deal's waitlist (True; False: already on it).
    Only a paid deal has one (its unpaid orders lapse and free units), or an offline event
    (`free`, services.gatherings: a cancellation frees a place, served through the one
    order action)."""
    deal = await session.get(Deal, deal_id, populate_existing=True)  # its stock now
    if deal is None or deal.status not in ("open", "paused", "succeeded"):
        raise WaitlistRefused("closed")
    if not is_paid(deal) and not free:
        raise WaitlistRefused("not_paid")
    if deal.stock_left is None:
        raise WaitlistRefused("in_stock")
    if deal.stock_left > 0:  # join instead; paused or closed, units are not sold now
        raise WaitlistRefused("in_stock" if deal.status == "open" else "closed")
    holding = await session.scalar(
        select(Order.id).where(
            Order.deal_id == deal_id,
            Order.user_id == user_id,
            Order.status.in_(("active", "confirmed")),
            Order.quantity > 0,
        )
    )
    if holding is not None:
        raise WaitlistRefused("holding")
    return await insert_ignore(
        session,
        WaitlistEntry.__table__,
        {"deal_id": deal_id, "user_id": user_id, "group_id": group_id, "created_at": now},
        ["deal_id", "user_id"],
    )


async def group_text(session: AsyncSession, user_id: int, kind: str) -> str:
    """The /terms or /paysupport text (`kind` terms | paysupport) of the group of the
    member's latest order in a paid deal, if that group set one; else ""."""
    column = Group.terms_text if kind == "terms" else Group.paysupport_text
    text = await session.scalar(
        select(column)
        .join(Order, Order.group_id == Group.id)
        .join(Deal, Deal.id == Order.deal_id)
        .where(Order.user_id == user_id, Deal.pay_method.in_(METHODS), column != "")
        .order_by(Order.id.desc())
        .limit(1)
    )
    return text or ""

"""Bargains with friends (砍价): a member's price goes from a start price down to a floor in
K helps of their friends, within a time limit.

Rules (README, "Bargains"):
- A deal offers bargains when its owner set a start price (at most the deal's unit price), a
  floor (0 ≤ floor < start), the number of helps K to reach it (2–50, at most one minor unit
  per help less than start − floor) and a time (1–72 h, never past the deal's closing):
  `configure`, fixed once a bargain of the deal exists.
- A member starts one bargain per deal (the unique (deal, starter) key: tapping again shows
  the same one), unless they hold an order of the deal. Its cuts are drawn when it starts
  (`cuts`: seeded, stored with the seed, so anyone can recompute them) and sum exactly to
  start − floor; the k-th help takes the k-th cut.
- A friend helps once per bargain (the primary key of bargain_helps), never their own, never
  a bot or an anonymous sender, and at most DAILY_HELPS times per UTC day across bargains
  (bargain_help_days: a row inserted if missing, then a conditional UPDATE `helps < cap`).
- The help itself is ONE conditional UPDATE of the bargain row (open, not expired,
  `helps < helps_needed`) that returns the help's number; the price is then set from the
  schedule under that row's lock, so many simultaneous helps take each cut exactly once and
  never pass the floor.
- The starter buys at the price reached, before the time limit: the one order action
  (services.orders.act with the bargain's id: stock, per-person limit and the deal's state
  are checked there), confirmed at once at that price (invoiced when the deal takes
  payments). The bargain is then "bought".
- A bargain not bought in time expires (the scheduler, `expire_due`), as do the open
  bargains of a deal that closes (`on_deal_closing`).

Locks, in one order everywhere: the deal, then the bargain (buy, expiry, closing); a help
takes the helper's day row, then the bargain (never the deal). Promised messages are outbox
rows (kind "bargain_note"): to the starter on each help, when it is bought and when it
expires.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import secrets
import string
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models import Bargain, BargainHelp, Deal, Group, HelpDay, Order, User
from models.upsert import insert_ignore
from services import deals as deal_service
from services import events, offers, outbox
from services import orders as order_service
from services.errors import DomainError
from services.parsing import MAX_INT, ParseError, parse_int, parse_price_in

MIN_HELPS, MAX_HELPS = 2, 50
MIN_HOURS, MAX_HOURS = 1, 72
DAILY_HELPS = 5  # helps per account per UTC day, across all bargains
# Telegram's senders that stand for someone hidden: an anonymous group admin, a channel.
ANONYMOUS_IDS = frozenset({1087968824, 136817688})
LINK_PREFIX = "bargain_"  # /start bargain_<code>: the bargain in private chat
CODE_ALPHABET = string.ascii_letters + string.digits
CODE_LENGTH = 10
NOTE = "bargain_note"
LIST_MAX = 30  # bargains shown to the owner at once


class BargainError(DomainError):
    pass


class NoBargains(BargainError):
    """The deal offers no bargain."""


class BargainNotFound(BargainError):
    pass


class BargainOver(BargainError):
    """The bargain is bought or expired (or its time ran out)."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class BargainDone(BargainError):
    """Every help of the bargain is taken: its price is at the floor."""


class OwnBargain(BargainError):
    """A member cannot help their own bargain."""


class AlreadyHelped(BargainError):
    pass


class NotAPerson(BargainError):
    """A bot or an anonymous sender cannot help."""


class DailyCap(BargainError):
    def __init__(self, cap: int) -> None:
        super().__init__(cap)
        self.cap = cap


class NotStarter(BargainError):
    """Only the bargain's starter buys at its price."""


class HoldsOrder(BargainError):
    """The member holds an order of the deal: no bargain (one order per member per deal)."""

    def __init__(self, quantity: int) -> None:
        super().__init__(quantity)
        self.quantity = quantity


class BargainsFixed(BargainError):
    """A bargain of this deal exists: its bargain rules no longer change."""


class BadBargainRules(BargainError):
    """Start, floor, helps or hours out of their bounds (`what` says which)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


# ---------------------------------------------------------------- the schedule of cuts


def cuts(seed: str, total: int, k: int) -> list[int]:
    """The k cuts of a bargain, in minor units: each at least 1, summing exactly to `total`.

    Deterministic in (seed, total, k), so a stored bargain is auditable: Python's Mersenne
    Twister (`random.Random`) seeded with the integer of SHA-256(seed) draws k − 1 points
    uniformly in [0, total − k] (`randint`, with repetition); sorted, they split that range
    into k gaps (any may be 0); each cut is its gap + 1. The cuts are then put largest first
    (the first friends cut most, as members expect of 砍价)."""
    if k < 1 or total < k:
        raise ValueError(f"{k} cuts of at least 1 cannot sum to {total}")
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    rng = random.Random(int.from_bytes(digest, "big"))
    rest = total - k
    points = sorted(rng.randint(0, rest) for _ in range(k - 1))
    bounds = [0, *points, rest]
    gaps = [bounds[i + 1] - bounds[i] + 1 for i in range(k)]
    return sorted(gaps, reverse=True)


def schedule_of(bargain: Bargain) -> list[int]:
    return [int(x) for x in json.loads(bargain.schedule)]


def price_after(bargain: Bargain, helps: int) -> int:
    """The price once `helps` cuts are taken."""
    return bargain.start_price - sum(schedule_of(bargain)[:helps])


# ---------------------------------------------------------------- rules


def offers_bargains(deal: Deal) -> bool:
    return (
        deal.bargain_helps is not None
        and deal.bargain_start_price is not None
        and deal.bargain_floor_price is not None
    )


@dataclass
class Rules:
    start: int  # minor units of the deal's currency
    floor: int
    helps: int
    hours: int


def check_rules(deal: Deal, rules: Rules) -> None:
    if not 0 < rules.start <= deal.unit_price:
        raise BadBargainRules("start")
    if not 0 <= rules.floor < rules.start:
        raise BadBargainRules("floor")
    if not MIN_HELPS <= rules.helps <= MAX_HELPS:
        raise BadBargainRules("helps")
    if rules.start - rules.floor < rules.helps:
        raise BadBargainRules("cut")
    if not MIN_HOURS <= rules.hours <= MAX_HOURS:
        raise BadBargainRules("hours")


_ZERO = re.compile(r"0+(?:[.,]0*)?")


def _price(word: str, deal: Deal, *, zero: bool) -> int:
    if zero and _ZERO.fullmatch(word.strip()):
        return 0
    return parse_price_in(word, deal.currency).amount


def parse_rules(words: list[str], deal: Deal) -> Rules | None:
    """The words after the deal's code in `/bargain`: `<start> <floor> <helps> <hours>`, or
    `off` (None). Bounded before anything is stored: BadBargainRules names what is wrong
    ("usage" for the shape)."""
    if [w.lower() for w in words] == ["off"]:
        return None
    if len(words) != 4:
        raise BadBargainRules("usage")
    start = _price(words[0], deal, zero=False)
    floor = _price(words[1], deal, zero=True)
    try:
        helps = parse_int(words[2], minimum=MIN_HELPS, maximum=MAX_HELPS)
    except ParseError as exc:
        raise BadBargainRules("helps") from exc
    try:
        hours = parse_int(words[3].lower().removesuffix("h"), minimum=MIN_HOURS, maximum=MAX_HOURS)
    except ParseError as exc:
        raise BadBargainRules("hours") from exc
    rules = Rules(start, floor, helps, hours)
    check_rules(deal, rules)
    return rules


async def configure(
    session: AsyncSession, deal: Deal, now: datetime, *, rules: Rules | None
) -> None:
    """Set (or with None, remove) the deal's bargain offer. Refused once a bargain of the
    deal exists or once the deal is closed; the caller checked the owner's rights and
    locked the deal."""
    if deal.status in deal_service.FINAL_STATES:
        raise deal_service.DealFinished(deal.id)
    started = await session.scalar(select(Bargain.id).where(Bargain.deal_id == deal.id).limit(1))
    if started is not None:
        raise BargainsFixed(deal.id)
    if rules is None:
        deal.bargain_start_price = deal.bargain_floor_price = None
        deal.bargain_helps = deal.bargain_hours = None
    else:
        check_rules(deal, rules)
        deal.bargain_start_price, deal.bargain_floor_price = rules.start, rules.floor
        deal.bargain_helps, deal.bargain_hours = rules.helps, rules.hours
    deal.updated_at = now  # the posts show the offer (or stop showing it)
    await session.flush()
    events.record(session, events.DealChanged(deal.id))


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def link_payload(bargain: Bargain) -> str:
    return LINK_PREFIX + bargain.code


def parse_link(payload: str) -> str | None:
    """`bargain_<code>` → the code; None for anything else."""
    code = payload.removeprefix(LINK_PREFIX)
    if payload == code or len(code) != CODE_LENGTH or not code.isascii() or not code.isalnum():
        return None
    return code


# ---------------------------------------------------------------- actions


@dataclass
class Started:
    bargain: Bargain
    created: bool  # False: the member's bargain of this deal, started before


async def _held(session: AsyncSession, deal_id: int, user_id: int) -> Order | None:
    return await session.scalar(
        select(Order).where(
            Order.deal_id == deal_id,
            Order.user_id == user_id,
            Order.status.in_(("active", "confirmed")),
            Order.quantity > 0,
        )
    )


async def mine(session: AsyncSession, deal_id: int, user_id: int) -> Bargain | None:
    return await session.scalar(
        select(Bargain).where(Bargain.deal_id == deal_id, Bargain.starter_id == user_id)
    )


async def start(
    session: AsyncSession, *, deal_id: int, user_id: int, group: Group, now: datetime
) -> Started:
    """The member starts their bargain of the deal in `group` (or, having one, gets it)."""
    deal = await deal_service.get(session, deal_id, lock=True)
    if not offers_bargains(deal):
        raise NoBargains(deal_id)
    existing = await mine(session, deal_id, user_id)
    if existing is not None:
        return Started(existing, False)
    if deal.status in deal_service.FINAL_STATES or deal.closes_at <= now:
        raise order_service.DealClosed(deal_id)
    if deal.status == "paused":
        raise order_service.DealPaused(deal_id)
    if deal.status == "scheduled" or deal.opens_at > now:
        raise order_service.DealNotOpenYet(deal.opens_at)
    if deal.team_only:
        raise order_service.TeamOnly(deal_id)
    held = await _held(session, deal_id, user_id)
    if held is not None:
        raise HoldsOrder(held.quantity)
    assert deal.bargain_start_price is not None and deal.bargain_floor_price is not None
    helps = deal.bargain_helps or MIN_HELPS
    seed = secrets.token_hex(16)
    schedule = cuts(seed, deal.bargain_start_price - deal.bargain_floor_price, helps)
    expires_at = min(now + timedelta(hours=deal.bargain_hours or MAX_HOURS), deal.closes_at)
    for attempt in range(3):
        try:
            async with events.savepoint(session):
                bargain = Bargain(
                    deal_id=deal_id,
                    group_id=group.id,
                    starter_id=user_id,
                    code=new_code(),
                    start_price=deal.bargain_start_price,
                    floor_price=deal.bargain_floor_price,
                    helps_needed=helps,
                    seed=seed,
                    schedule=json.dumps(schedule),
                    helps=0,
                    price=deal.bargain_start_price,
                    status="open",
                    expires_at=expires_at,
                    created_at=now,
                )
                session.add(bargain)
                await session.flush()
            return Started(bargain, True)
        except IntegrityError:  # a code already taken (1 in 62^10)
            existing = await mine(session, deal_id, user_id)  # (the deal's lock: not this)
            if existing is not None:
                return Started(existing, False)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class Helped:
    bargain: Bargain
    seq: int
    amount: int


def check_helper(bargain: Bargain, helper_id: int, is_bot: bool) -> None:
    if is_bot or helper_id in ANONYMOUS_IDS or helper_id <= 0:
        raise NotAPerson(helper_id)
    if helper_id == bargain.starter_id:
        raise OwnBargain(bargain.id)


def _day(now: datetime) -> date:
    return now.date()  # the UTC day: times are UTC everywhere


async def help_(
    session: AsyncSession, *, bargain: Bargain, helper_id: int, is_bot: bool, now: datetime
) -> Helped:
    """One friend's help: the next cut of the schedule (see the module's docstring)."""
    check_helper(bargain, helper_id, is_bot)
    await session.refresh(bargain)
    if bargain.status != "open" or bargain.expires_at <= now:
        raise BargainOver("expired" if bargain.status == "open" else bargain.status)
    helped = await session.scalar(
        select(BargainHelp.seq).where(
            BargainHelp.bargain_id == bargain.id, BargainHelp.helper_id == helper_id
        )
    )
    if helped is not None:
        raise AlreadyHelped(bargain.id)
    if bargain.helps >= bargain.helps_needed:
        raise BargainDone(bargain.id)
    try:
        async with events.savepoint(session):
            result = await _cut(session, bargain, helper_id, now)
    except IntegrityError as exc:  # the same account's help, at the same moment
        raise AlreadyHelped(bargain.id) from exc
    await session.refresh(bargain)
    await _note(session, bargain, f"help:{result.seq}", now, {"seq": result.seq})
    return result


async def _cut(session: AsyncSession, bargain: Bargain, helper_id: int, now: datetime) -> Helped:
    day = _day(now)
    await insert_ignore(
        session,
        HelpDay.__table__,
        {"helper_id": helper_id, "day": day, "helps": 0},
        ["helper_id", "day"],
    )
    counted = await session.execute(
        update(HelpDay)
        .where(HelpDay.helper_id == helper_id, HelpDay.day == day, HelpDay.helps < DAILY_HELPS)
        .values(helps=HelpDay.helps + 1)
    )
    if (counted.rowcount or 0) == 0:
        raise DailyCap(DAILY_HELPS)
    seq = await session.scalar(
        update(Bargain)
        .where(
            Bargain.id == bargain.id,
            Bargain.status == "open",
            Bargain.helps < Bargain.helps_needed,
            Bargain.expires_at > now,
        )
        .values(helps=Bargain.helps + 1)
        .returning(Bargain.helps)
        .execution_options(synchronize_session=False)
    )
    if seq is None:
        await session.refresh(bargain)
        if bargain.status == "open" and bargain.expires_at > now:
            raise BargainDone(bargain.id)
        raise BargainOver("expired" if bargain.status == "open" else bargain.status)
    # the row is locked by the UPDATE above until the commit: the price follows the schedule
    amount = schedule_of(bargain)[seq - 1]
    await session.execute(
        update(Bargain)
        .where(Bargain.id == bargain.id)
        .values(price=price_after(bargain, seq))
        .execution_options(synchronize_session=False)
    )
    session.add(
        BargainHelp(
            bargain_id=bargain.id, helper_id=helper_id, seq=seq, amount=amount, created_at=now
        )
    )
    await session.flush()
    return Helped(bargain, seq, amount)


@dataclass
class Bought:
    bargain: Bargain
    deal: Deal
    order: Order


async def buy(session: AsyncSession, *, bargain: Bargain, user_id: int, now: datetime) -> Bought:
    """The starter buys one unit at the price reached: the one order action, confirmed at
    once at that price. The deal is locked first, then the bargain."""
    await deal_service.get(session, bargain.deal_id, lock=True)
    await session.refresh(bargain)
    if user_id != bargain.starter_id:
        raise NotStarter(bargain.id)
    if bargain.status != "open" or bargain.expires_at <= now:
        raise BargainOver("expired" if bargain.status == "open" else bargain.status)
    group = await session.get(Group, bargain.group_id)
    assert group is not None
    async with events.savepoint(session):
        took = await session.execute(
            update(Bargain)
            .where(Bargain.id == bargain.id, Bargain.status == "open", Bargain.expires_at > now)
            .values(status="bought", closed_at=now)
        )
        if (took.rowcount or 0) == 0:
            raise BargainOver("bought")
        try:
            change = await order_service.act(
                session,
                deal_id=bargain.deal_id,
                user_id=user_id,
                action="join",
                group=group,
                now=now,
                via="bargain",
                bargain_id=bargain.id,
            )
        except order_service.AlreadyJoined as exc:  # ordered meanwhile
            raise HoldsOrder(exc.quantity) from exc
        assert change.order is not None
        await order_service.confirm(session, change.deal, [change.order], bargain.price, now)
    await session.refresh(bargain)
    await _note(session, bargain, "bought", now)
    return Bought(bargain, change.deal, change.order)


async def _expire(session: AsyncSession, bargain: Bargain, now: datetime, why: str) -> bool:
    done = await session.execute(
        update(Bargain)
        .where(Bargain.id == bargain.id, Bargain.status == "open")
        .values(status="expired", closed_at=now)
    )
    if (done.rowcount or 0) == 0:
        return False
    await session.refresh(bargain)
    await _note(session, bargain, why, now)
    return True


async def on_deal_closing(session: AsyncSession, deal: Deal, now: datetime) -> int:
    """The deal closes (its row locked by the caller): its open bargains end."""
    rows = await session.scalars(
        select(Bargain)
        .where(Bargain.deal_id == deal.id, Bargain.status == "open")
        .order_by(Bargain.id)
    )
    ended = 0
    for bargain in list(rows):
        ended += await _expire(session, bargain, now, "closed")
    return ended


async def _expire_due_one(session: AsyncSession, bargain: Bargain, now: datetime) -> bool:
    return await _expire(session, bargain, now, "expired")


async def any_expiring(session: AsyncSession, now: datetime) -> bool:
    return await offers.any_expiring(session, Bargain, now)


async def expire_due(session: AsyncSession, now: datetime) -> int:
    """End the open bargains whose time ran out (a batch); returns how many."""
    return await offers.expire_due(session, Bargain, now, _expire_due_one)


async def _note(
    session: AsyncSession, bargain: Bargain, what: str, now: datetime, extra: dict | None = None
) -> None:
    kind = what.split(":")[0]
    await outbox.promise(
        session,
        key=f"bargain:{bargain.id}:{what}",
        chat_id=bargain.starter_id,
        kind=NOTE,
        payload={"what": kind, "bargain_id": bargain.id, **(extra or {})},
        group_id=bargain.group_id,
        now=now,
    )


# ---------------------------------------------------------------- reads


async def get(session: AsyncSession, bargain_id: int) -> Bargain:
    bargain = await session.get(Bargain, bargain_id) if 0 < bargain_id <= MAX_INT else None
    if bargain is None:
        raise BargainNotFound(bargain_id)
    return bargain


async def by_code(session: AsyncSession, code: str) -> Bargain | None:
    return await session.scalar(select(Bargain).where(Bargain.code == code))


@dataclass
class BargainView:
    """A bargain as its page shows it: its deal and group, its starter, and its helps in
    order with the helpers (None: not known, or forgotten)."""

    bargain: Bargain
    deal: Deal
    group: Group
    starter: User | None
    helps: list[tuple[BargainHelp, User | None]]


async def views(session: AsyncSession, bargains: list[Bargain]) -> list[BargainView]:
    """The views of these bargains in four statements."""
    if not bargains:
        return []
    deal_ids = sorted({b.deal_id for b in bargains})
    deals = {d.id: d for d in await session.scalars(select(Deal).where(Deal.id.in_(deal_ids)))}
    group_ids = sorted({b.group_id for b in bargains})
    groups = {g.id: g for g in await session.scalars(select(Group).where(Group.id.in_(group_ids)))}
    starter_ids = sorted({b.starter_id for b in bargains})
    starters = {
        u.id: u for u in await session.scalars(select(User).where(User.id.in_(starter_ids)))
    }
    rows = await session.execute(
        select(BargainHelp, User)
        .outerjoin(User, User.id == BargainHelp.helper_id)
        .where(BargainHelp.bargain_id.in_([b.id for b in bargains]))
        .order_by(BargainHelp.bargain_id, BargainHelp.seq)
    )
    helps: dict[int, list[tuple[BargainHelp, User | None]]] = {}
    for one, user in rows.all():
        helps.setdefault(one.bargain_id, []).append((one, user))
    return [
        BargainView(
            b, deals[b.deal_id], groups[b.group_id], starters.get(b.starter_id), helps.get(b.id, [])
        )
        for b in bargains
        if b.deal_id in deals and b.group_id in groups
    ]


async def view(session: AsyncSession, bargain: Bargain) -> BargainView:
    return (await views(session, [bargain]))[0]


async def of_deal(session: AsyncSession, deal_id: int, limit: int = LIST_MAX) -> list[BargainView]:
    """The deal's bargains for its owner, newest first."""
    rows = await session.scalars(
        select(Bargain).where(Bargain.deal_id == deal_id).order_by(Bargain.id.desc()).limit(limit)
    )
    return await views(session, list(rows))


async def order_of(session: AsyncSession, bargain_id: int) -> Order | None:
    """The order the bargain's buy placed (its pickup code), if still there."""
    return await session.scalar(
        select(Order).where(Order.bargain_id == bargain_id, Order.quantity > 0).limit(1)
    )


async def count_of_deal(session: AsyncSession, deal_id: int) -> int:
    return (
        await session.scalar(
            select(func.count()).select_from(Bargain).where(Bargain.deal_id == deal_id)
        )
        or 0
    )


@dataclass
class Counts:
    """A group's bargains for its digest: open now, bought and expired in the period."""

    open: int = 0
    bought: int = 0
    expired: int = 0

    @property
    def any(self) -> bool:
        return bool(self.open or self.bought or self.expired)


async def counts(
    session: AsyncSession, *, group_id: int, closed_from: datetime, closed_to: datetime
) -> Counts:
    found = await offers.status_counts(
        session, Bargain, group_id=group_id, closed_from=closed_from, closed_to=closed_to
    )
    return Counts(found.get("open", 0), found.get("bought", 0), found.get("expired", 0))

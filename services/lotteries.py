"""Lotteries and giveaways (抽奖) of a group, drawn verifiably. No aiogram here.

Rules (README, "Lotteries"):
- An administrator of the group creates a lottery in private chat (`parse_spec`, `create`):
  a prize text, a number of winners (1–MAX_WINNERS), a deadline (10 minutes to 30 days
  ahead), a claim window (1–168 hours, default 48) and who may enter: any member; members
  with a fulfilled order (picked up or delivered) of a deal posted in the group; members
  with a fulfilled order placed in the group within the last N days; members active on at
  least N of the last 14 days (the group's local days, services.activity). The rules never
  change afterwards.
- The bot draws a secret (services.lottery_draw) and announces the lottery in the group with
  its commitment (SHA-256 of the secret) and an Enter button (an outbox row).
- A member enters once by the button until the deadline (`enter`): a random ticket code,
  unique within the lottery, told in the button's answer. ONE conditional UPDATE of the
  lottery (open, before its deadline) counts the entry and locks the row, so an entry and
  the closing never cross, and many simultaneous entries are each counted once.
- The heartbeat closes entries at the deadline (`close_due`): the sorted ticket list and its
  SHA-256 are stored and posted in the group. DRAW_DELAY later it draws (`draw_due`): the
  secret is revealed, the winners are the first draws of services.lottery_draw, each is
  told in private with a Claim button, and the group post names them only when they allow
  leaderboards (/hideme: "a member", with their ticket).
- A winner who does not claim within the window lapses (`redraw_due`) and is replaced by the
  next draw of the same published inputs, until no ticket is left.

Locks: an entry and the closing take the lottery row by a conditional UPDATE; a draw, a
redraw and a claim take the lottery row (FOR UPDATE) first, then the winners' rows.
Promised messages are outbox rows: kind POST (group posts) and NOTE (private notes).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models import (
    DealPost,
    Group,
    Lottery,
    LotteryEntry,
    LotteryWinner,
    MemberActivityDay,
    Order,
    User,
)
from services import activity, events, lottery_draw, outbox, rights
from services.admins import AdminDirectory
from services.errors import DomainError, NotGroupAdmin
from services.parsing import MAX_INT, ParseError, clean_text, parse_int, parse_local_datetime
from services.privacy import is_pseudonym

log = logging.getLogger(__name__)

MAX_WINNERS = 100
MIN_AHEAD = timedelta(minutes=10)
MAX_AHEAD = timedelta(days=30)
MIN_CLAIM_HOURS, MAX_CLAIM_HOURS, DEFAULT_CLAIM_HOURS = 1, 168, 48
MAX_BOUGHT_DAYS = 365
PRIZE_MAX = 200
DRAW_DELAY = timedelta(minutes=5)  # between the published entry list and the reveal
BATCH = 50
RULES = ("any", "deal", "bought", "active")
FULFILLED = ("picked_up", "delivered")
ANONYMOUS_IDS = frozenset({1087968824, 136817688})
POST = "lottery_post"  # a group post: announce | closed | drawn | redraw
NOTE = "lottery_note"  # a private note: won (to a winner) | claimed (to the owner)
LIST_MAX = 10


class LotteryError(DomainError):
    pass


class BadLottery(LotteryError):
    """The owner's /lottery is wrong: `what` names what (usage, winners, deadline, claim,
    deal, bought, active, prize)."""

    def __init__(self, what: str, value: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.value = value


class LotteryNotFound(LotteryError):
    pass


class LotteryClosed(LotteryError):
    """Entries are closed."""


class NotEligible(LotteryError):
    def __init__(self, rule: str, n: int | None) -> None:
        super().__init__(rule)
        self.rule = rule
        self.n = n


class NotAPerson(LotteryError):
    """A bot or an anonymous sender cannot enter."""


class NotWinner(LotteryError):
    pass


class ClaimOver(LotteryError):
    """The claim window ran out: the prize went to a redraw."""


# ---------------------------------------------------------------- the owner's rules


@dataclass
class Spec:
    winners: int
    closes_at: datetime
    prize: str
    claim_hours: int = DEFAULT_CLAIM_HOURS
    rule: str = "any"
    rule_n: int | None = None


_DURATION = re.compile(r"(?:(\d{1,2})d)?(?:(\d{1,3})h)?(?:(\d{1,5})m)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:t\d{1,2}:\d{2})?")


def parse_deadline(word: str, timezone: str, now: datetime) -> datetime:
    """`2d`, `36h`, `1d12h`, `90m` from now, or a local `2026-12-24` (20:00) /
    `2026-12-24T18:30` in the group's timezone; between 10 minutes and 30 days ahead."""
    raw = word.strip().lower()
    found = _DURATION.fullmatch(raw)
    if raw and found and any(found.groups()):
        days, hours, minutes = (int(g or 0) for g in found.groups())
        moment = now + timedelta(days=days, hours=hours, minutes=minutes)
        moment = moment.replace(microsecond=0)
    elif _DATE.fullmatch(raw):
        try:
            moment = parse_local_datetime(raw.replace("t", " "), timezone, now)
        except ParseError:
            raise BadLottery("deadline", word) from None
    else:
        raise BadLottery("deadline", word)
    if not now + MIN_AHEAD <= moment <= now + MAX_AHEAD:
        raise BadLottery("deadline", word)
    return moment


def _number(word: str, what: str, low: int, high: int) -> int:
    try:
        return parse_int(word.upper().removeprefix("D") if what == "deal" else word, minimum=low,
                         maximum=high)  # fmt: skip
    except ParseError:
        raise BadLottery(what, word) from None


def parse_spec(words: list[str], group: Group, now: datetime) -> Spec:
    """The words after the group's number in `/lottery`: `<winners> <deadline> [claim H]
    [deal D17 | bought 30 | active 5 | any] <prize text>`. Bounded before anything is stored."""
    if len(words) < 3:
        raise BadLottery("usage")
    winners = _number(words[0], "winners", 1, MAX_WINNERS)
    closes_at = parse_deadline(words[1], group.timezone, now)
    spec = Spec(winners=winners, closes_at=closes_at, prize="")
    rest = words[2:]
    ruled = False
    while rest:
        word = rest[0].lower()
        if word == "any" and not ruled:
            ruled, rest = True, rest[1:]
            continue
        if word == "claim" and len(rest) > 1:
            spec.claim_hours = _number(
                rest[1].lower().removesuffix("h"), "claim", MIN_CLAIM_HOURS, MAX_CLAIM_HOURS
            )
            rest = rest[2:]
            continue
        if word in ("deal", "bought", "active") and len(rest) > 1 and not ruled:
            high = {"deal": MAX_INT, "bought": MAX_BOUGHT_DAYS, "active": 14}[word]
            spec.rule, spec.rule_n = word, _number(rest[1], word, 1, high)
            ruled, rest = True, rest[2:]
            continue
        break
    prize = clean_text(" ".join(rest), multiline=False)
    if not prize or len(prize) > PRIZE_MAX:
        raise BadLottery("prize")
    spec.prize = prize
    return spec


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
    spec: Spec,
    now: datetime,
) -> Lottery:
    """A new lottery of the group by one of its current administrators, announced in the
    group (an outbox row) with its commitment. A deal named must be posted in the group."""
    group = await _owned_group(session, admins, user_id, group_id)
    if spec.rule == "deal":
        posted = await session.scalar(
            select(DealPost.deal_id).where(
                DealPost.deal_id == spec.rule_n, DealPost.group_id == group.id
            )
        )
        if posted is None:
            raise BadLottery("deal", f"D{spec.rule_n}")
    secret = lottery_draw.new_secret()
    lottery = Lottery(
        group_id=group.id,
        created_by=user_id,
        prize=spec.prize,
        winners=spec.winners,
        rule=spec.rule,
        rule_n=spec.rule_n,
        claim_hours=spec.claim_hours,
        secret=secret,
        commitment=lottery_draw.commitment_of(secret),
        entries=0,
        status="open",
        closes_at=spec.closes_at,
        created_at=now,
    )
    session.add(lottery)
    await session.flush()
    await _post(session, lottery, group, "announce", now)
    log.info("lottery %s created in group %s by %s", lottery.id, group.id, user_id)
    return lottery


def parse_code(word: str) -> int | None:
    """`L12` → 12 (None: not a lottery's code)."""
    number = word.strip().upper().removeprefix("L")
    if number == word.strip().upper() or not number.isascii() or not number.isdigit():
        return None
    value = int(number[:10])
    return value if 0 < value <= MAX_INT else None


# ---------------------------------------------------------------- entries


async def get(session: AsyncSession, lottery_id: int, *, lock: bool = False) -> Lottery:
    if not 0 < lottery_id <= MAX_INT:
        raise LotteryNotFound(lottery_id)
    stmt = select(Lottery).where(Lottery.id == lottery_id)
    if lock:
        stmt = stmt.with_for_update()
    lottery = (
        await session.execute(stmt.execution_options(populate_existing=True))
    ).scalar_one_or_none()
    if lottery is None:
        raise LotteryNotFound(lottery_id)
    return lottery


async def entry_of(session: AsyncSession, lottery_id: int, user_id: int) -> LotteryEntry | None:
    return await session.scalar(
        select(LotteryEntry).where(
            LotteryEntry.lottery_id == lottery_id, LotteryEntry.user_id == user_id
        )
    )


async def eligible(session: AsyncSession, lottery: Lottery, group: Group, user_id: int,
                   now: datetime) -> bool:  # fmt: skip
    """Whether the member may enter under the lottery's rule, now."""
    if lottery.rule == "any":
        return True
    if lottery.rule in ("deal", "bought"):
        query = select(Order.id).where(
            Order.user_id == user_id,
            Order.status == "confirmed",
            Order.fulfilment.in_(FULFILLED),
        )
        if lottery.rule == "deal":
            query = query.where(Order.deal_id == lottery.rule_n)
        else:
            since = now - timedelta(days=lottery.rule_n or 0)
            query = query.where(Order.group_id == group.id, Order.created_at >= since)
        return await session.scalar(query.limit(1)) is not None
    today = activity.local_today(group.timezone, now)
    since = today - timedelta(days=activity.CORE_WINDOW_DAYS - 1)
    days = await session.scalar(
        select(func.count())
        .select_from(MemberActivityDay)
        .where(
            MemberActivityDay.group_id == group.id,
            MemberActivityDay.user_id == user_id,
            MemberActivityDay.day >= since,
            MemberActivityDay.day <= today,
        )
    )
    return (days or 0) >= (lottery.rule_n or 0)


@dataclass
class Entered:
    lottery: Lottery
    entry: LotteryEntry
    created: bool  # False: the member's entry, made before


async def enter(
    session: AsyncSession,
    *,
    lottery_id: int,
    user_id: int,
    is_bot: bool,
    chat_id: int,
    now: datetime,
) -> Entered:
    """The member taps Enter on the lottery's post in `chat_id` (its group's chat)."""
    lottery = await get(session, lottery_id)
    group = await session.get(Group, lottery.group_id)
    if group is None or group.chat_id != chat_id:
        raise LotteryNotFound(lottery_id)
    if is_bot or user_id in ANONYMOUS_IDS or user_id <= 0:
        raise NotAPerson(user_id)
    existing = await entry_of(session, lottery.id, user_id)
    if existing is not None:
        return Entered(lottery, existing, False)
    if lottery.status != "open" or lottery.closes_at <= now:
        raise LotteryClosed(lottery.id)
    if not await eligible(session, lottery, group, user_id, now):
        raise NotEligible(lottery.rule, lottery.rule_n)
    for attempt in range(5):
        try:
            async with events.savepoint(session):
                counted = await session.execute(
                    update(Lottery)
                    .where(
                        Lottery.id == lottery.id,
                        Lottery.status == "open",
                        Lottery.closes_at > now,
                    )
                    .values(entries=Lottery.entries + 1)
                    .execution_options(synchronize_session=False)
                )
                if (counted.rowcount or 0) == 0:
                    raise LotteryClosed(lottery.id)
                entry = LotteryEntry(
                    lottery_id=lottery.id,
                    user_id=user_id,
                    ticket=lottery_draw.new_ticket(),
                    created_at=now,
                )
                session.add(entry)
                await session.flush()
            return Entered(lottery, entry, True)
        except IntegrityError:  # the member's own entry at the same moment, or a ticket taken
            existing = await entry_of(session, lottery.id, user_id)
            if existing is not None:
                return Entered(lottery, existing, False)
            if attempt == 4:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def tickets_of(session: AsyncSession, lottery_id: int) -> list[str]:
    """The lottery's tickets, sorted: the published entry list."""
    rows = await session.scalars(
        select(LotteryEntry.ticket)
        .where(LotteryEntry.lottery_id == lottery_id)
        .order_by(LotteryEntry.ticket)
    )
    return sorted(rows)


# ---------------------------------------------------------------- the heartbeat


async def any_due(session: AsyncSession, now: datetime) -> bool:
    """One read: is a closing, a draw or a redraw due (a tick writes only then)."""
    closing = select(Lottery.id).where(Lottery.status == "open", Lottery.closes_at <= now)
    drawing = select(Lottery.id).where(
        Lottery.status == "closed", Lottery.closed_at <= now - DRAW_DELAY
    )
    lapsing = select(LotteryWinner.lottery_id).where(
        LotteryWinner.status == "pending", LotteryWinner.claim_by <= now
    )
    for query in (closing, drawing, lapsing):
        if await session.scalar(query.limit(1)) is not None:
            return True
    return False


async def close_due(session: AsyncSession, now: datetime, limit: int = BATCH) -> int:
    """Entries close at the deadline: the entry list and its hash are stored and posted."""
    ids = list(
        await session.scalars(
            select(Lottery.id)
            .where(Lottery.status == "open", Lottery.closes_at <= now)
            .order_by(Lottery.closes_at, Lottery.id)
            .limit(limit)
        )
    )
    closed = 0
    for lottery_id in ids:
        done = await session.execute(
            update(Lottery)
            .where(Lottery.id == lottery_id, Lottery.status == "open", Lottery.closes_at <= now)
            .values(status="closed", closed_at=now)
            .execution_options(synchronize_session=False)
        )
        if (done.rowcount or 0) == 0:
            continue
        lottery = await get(session, lottery_id)
        tickets = await tickets_of(session, lottery.id)
        lottery.entries_hash = lottery_draw.entries_hash(tickets)
        lottery.entries = len(tickets)
        await session.flush()
        group = await session.get(Group, lottery.group_id)
        if group is not None:
            await _post(session, lottery, group, "closed", now)
        closed += 1
    return closed


async def _entries(session: AsyncSession, lottery_id: int) -> dict[str, int]:
    rows = await session.execute(
        select(LotteryEntry.ticket, LotteryEntry.user_id).where(
            LotteryEntry.lottery_id == lottery_id
        )
    )
    return dict(rows.all())


async def _add_winner(
    session: AsyncSession, lottery: Lottery, seq: int, ticket: str, holders: dict[str, int],
    now: datetime,
) -> LotteryWinner:  # fmt: skip
    winner = LotteryWinner(
        lottery_id=lottery.id,
        seq=seq,
        ticket=ticket,
        user_id=holders[ticket],
        status="pending",
        claim_by=now + timedelta(hours=lottery.claim_hours),
        drawn_at=now,
    )
    session.add(winner)
    await session.flush()
    if is_pseudonym(winner.user_id):  # forgotten: never told (the prize lapses to a redraw)
        return winner
    await outbox.promise(
        session,
        key=f"lottery:{lottery.id}:won:{seq}",
        chat_id=winner.user_id,
        kind=NOTE,
        payload={"what": "won", "lottery_id": lottery.id, "seq": seq},
        group_id=lottery.group_id,
        now=now,
    )
    return winner


async def draw_due(session: AsyncSession, now: datetime, limit: int = BATCH) -> int:
    """DRAW_DELAY after the closing: the secret is revealed and the winners drawn."""
    ids = list(
        await session.scalars(
            select(Lottery.id)
            .where(Lottery.status == "closed", Lottery.closed_at <= now - DRAW_DELAY)
            .order_by(Lottery.closed_at, Lottery.id)
            .limit(limit)
        )
    )
    drawn = 0
    for lottery_id in ids:
        lottery = await get(session, lottery_id, lock=True)
        if lottery.status != "closed":
            continue
        lottery.status, lottery.drawn_at = "drawn", now
        holders = await _entries(session, lottery.id)
        picks = lottery_draw.draw(lottery.secret, list(holders), lottery.winners)
        for seq, ticket in enumerate(picks, start=1):
            await _add_winner(session, lottery, seq, ticket, holders, now)
        await session.flush()
        group = await session.get(Group, lottery.group_id)
        if group is not None:
            await _post(session, lottery, group, "drawn", now)
        drawn += 1
    return drawn


async def redraw_due(session: AsyncSession, now: datetime, limit: int = BATCH) -> int:
    """Winners who did not claim in time lapse; each is replaced by the next draw (while a
    ticket is left). Returns how many lapsed."""
    due = list(
        await session.execute(
            select(LotteryWinner.lottery_id, LotteryWinner.seq)
            .where(LotteryWinner.status == "pending", LotteryWinner.claim_by <= now)
            .order_by(LotteryWinner.claim_by, LotteryWinner.lottery_id, LotteryWinner.seq)
            .limit(limit)
        )
    )
    lapsed = 0
    for lottery_id, seq in due:
        lottery = await get(session, lottery_id, lock=True)
        done = await session.execute(
            update(LotteryWinner)
            .where(
                LotteryWinner.lottery_id == lottery_id,
                LotteryWinner.seq == seq,
                LotteryWinner.status == "pending",
                LotteryWinner.claim_by <= now,
            )
            .values(status="lapsed")
            .execution_options(synchronize_session=False)
        )
        if (done.rowcount or 0) == 0:
            continue
        lapsed += 1
        last = await session.scalar(
            select(func.max(LotteryWinner.seq)).where(LotteryWinner.lottery_id == lottery_id)
        )
        following = (last or 0) + 1
        holders = await _entries(session, lottery.id)
        picks = lottery_draw.draw(lottery.secret, list(holders), following)
        group = await session.get(Group, lottery.group_id)
        if len(picks) < following:  # every ticket is drawn: nobody left to replace them
            if group is not None:
                await _post(session, lottery, group, "redraw", now, {"seq": seq, "next": 0})
            continue
        await _add_winner(session, lottery, following, picks[-1], holders, now)
        if group is not None:
            await _post(session, lottery, group, "redraw", now, {"seq": seq, "next": following})
    return lapsed


# ---------------------------------------------------------------- claims


async def claim(
    session: AsyncSession, *, lottery_id: int, user_id: int, now: datetime
) -> tuple[Lottery, LotteryWinner, bool]:
    """The winner claims their prize within the window: (lottery, winner, newly claimed)."""
    lottery = await get(session, lottery_id, lock=True)
    winner = await session.scalar(
        select(LotteryWinner)
        .where(LotteryWinner.lottery_id == lottery.id, LotteryWinner.user_id == user_id)
        .order_by(LotteryWinner.seq.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    if winner is None:
        raise NotWinner(lottery_id)
    if winner.status == "claimed":
        return lottery, winner, False
    done = await session.execute(
        update(LotteryWinner)
        .where(
            LotteryWinner.lottery_id == lottery.id,
            LotteryWinner.seq == winner.seq,
            LotteryWinner.status == "pending",
            LotteryWinner.claim_by > now,
        )
        .values(status="claimed", claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    if (done.rowcount or 0) == 0:
        raise ClaimOver(lottery_id)
    await session.refresh(winner)
    if is_pseudonym(lottery.created_by):  # its creator was forgotten: nobody to tell
        return lottery, winner, True
    await outbox.promise(
        session,
        key=f"lottery:{lottery.id}:claimed:{winner.seq}",
        chat_id=lottery.created_by,
        kind=NOTE,
        payload={"what": "claimed", "lottery_id": lottery.id, "seq": winner.seq},
        group_id=lottery.group_id,
        now=now,
    )
    return lottery, winner, True


async def _post(
    session: AsyncSession, lottery: Lottery, group: Group, what: str, now: datetime,
    extra: dict | None = None,
) -> None:  # fmt: skip
    tail = f":{extra['seq']}" if extra else ""
    await outbox.promise(
        session,
        key=f"lottery:{lottery.id}:{what}{tail}",
        chat_id=group.chat_id,
        kind=POST,
        payload={"what": what, "lottery_id": lottery.id, **(extra or {})},
        group_id=group.id,
        now=now,
    )


# ---------------------------------------------------------------- reads


@dataclass
class Drawn:
    """A winner as posts and the owner see them: the user (None: not known, or forgotten)."""

    winner: LotteryWinner
    user: User | None

    @property
    def shown(self) -> bool:
        """Named in the group only when they allow leaderboards (/hideme)."""
        return self.user is not None and not self.user.leaderboard_hidden


async def winners_of(session: AsyncSession, lottery_id: int) -> list[Drawn]:
    rows = await session.execute(
        select(LotteryWinner, User)
        .outerjoin(User, User.id == LotteryWinner.user_id)
        .where(LotteryWinner.lottery_id == lottery_id)
        .order_by(LotteryWinner.seq)
    )
    return [Drawn(w, u) for w, u in rows.all()]


async def winner(session: AsyncSession, lottery_id: int, seq: int) -> Drawn | None:
    return next((d for d in await winners_of(session, lottery_id) if d.winner.seq == seq), None)


async def of_groups(session: AsyncSession, group_ids: list[int], limit: int = LIST_MAX
                    ) -> list[Lottery]:  # fmt: skip
    if not group_ids:
        return []
    rows = await session.scalars(
        select(Lottery)
        .where(Lottery.group_id.in_(group_ids))
        .order_by(Lottery.id.desc())
        .limit(limit)
    )
    return list(rows)


async def owned(
    session: AsyncSession, admins: AdminDirectory | None, user_id: int, lottery_id: int
) -> tuple[Lottery, Group]:
    """The lottery, for a current administrator of its group (else LotteryNotFound: no
    oracle for other groups' lotteries)."""
    lottery = await get(session, lottery_id)
    try:
        group = await _owned_group(session, admins, user_id, lottery.group_id)
    except NotGroupAdmin:
        raise LotteryNotFound(lottery_id) from None
    return lottery, group


@dataclass
class Counts:
    """A group's lotteries in a digest's period: entries made, lotteries drawn, prizes
    claimed; and the lotteries open now."""

    entries: int = 0
    drawn: int = 0
    claimed: int = 0
    open: int = 0

    @property
    def any(self) -> bool:
        return bool(self.entries or self.drawn or self.claimed or self.open)


async def counts(
    session: AsyncSession, *, group_id: int, since: datetime, until: datetime
) -> Counts:
    entries = await session.scalar(
        select(func.count())
        .select_from(LotteryEntry)
        .join(Lottery, Lottery.id == LotteryEntry.lottery_id)
        .where(
            Lottery.group_id == group_id,
            LotteryEntry.created_at >= since,
            LotteryEntry.created_at < until,
        )
    )
    drawn = await session.scalar(
        select(func.count())
        .select_from(Lottery)
        .where(Lottery.group_id == group_id, Lottery.drawn_at >= since, Lottery.drawn_at < until)
    )
    claimed = await session.scalar(
        select(func.count())
        .select_from(LotteryWinner)
        .join(Lottery, Lottery.id == LotteryWinner.lottery_id)
        .where(
            Lottery.group_id == group_id,
            LotteryWinner.claimed_at >= since,
            LotteryWinner.claimed_at < until,
        )
    )
    still_open = await session.scalar(
        select(func.count())
        .select_from(Lottery)
        .where(Lottery.group_id == group_id, Lottery.status == "open")
    )
    return Counts(entries or 0, drawn or 0, claimed or 0, still_open or 0)

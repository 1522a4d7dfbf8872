"""Activity: counts per member, per group, per local day; leaderboards; core and dormant members.

Counting ordinary group messages costs no database round trip: events are tallied in memory
(`ActivityBuffer`) by chat id and UTC 15-minute slot, and `flush` merges them into
`member_activity_days`, `group_activity_days`, `memberships.last_active_at` (and the users'
names, for leaderboards) with a few bulk statements. The app flushes every
ACTIVITY_FLUSH_SECONDS and once more on shutdown, so a crash loses at most the last interval.
A failed flush puts its counts back into the buffer.

Why 15-minute slots: every UTC offset in use is a multiple of 15 minutes, so a whole slot
falls on one local date in any timezone; the chat → group and timezone lookup is one query
per flush instead of one per message.

Definitions (also in the README):
- message: a message a person (not a bot) sent in a registered group; never its text.
- sign-up: a member joined a deal's sign-up list (Join button, ×N or /buy while not in it).
- order: an order confirmed when its deal succeeded, on the local day of the closing.
- join / leave: a member's status changed from absent to present, or back (chat_member).
- active member of a day: anyone with a member_activity_days row that day (a message, a
  sign-up or a confirmed order); `group_activity_days.active_members` is kept equal to the
  number of those rows, recounted under the group-day row lock, so two instances flushing
  at once still agree.
- last active time: the latest message or sign-up (orders confirmed by the closing job are
  not the member's own action).

Merges are increments (`x = x + n`), never overwrites; every writer locks the group-day row
first (its upsert comes first, rows sorted), then the member rows, so concurrent flushes and
closings neither lose counts nor deadlock on these tables.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import (
    Database,
    EventCheckin,
    Group,
    GroupActivityDay,
    MemberActivityDay,
    Membership,
    Order,
    Referral,
    User,
)
from models.upsert import merge_rows
from services.parsing import ParseError, parse_int
from services.people import Person
from services.timezones import utcnow

log = logging.getLogger(__name__)
SLOT_SECONDS = 15 * 60
PRESENT = ("member", "administrator", "creator", "restricted")
CORE_WINDOW_DAYS = 14
DORMANT_DAYS = 30
LEADERBOARD_WINDOWS = (7, 30)
CORE_MIN, CORE_MAX = 1, CORE_WINDOW_DAYS


def slot_of(at: datetime) -> int:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp()) // SLOT_SECONDS


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_day_of_slot(slot: int, timezone: str) -> date:
    start = datetime.fromtimestamp(slot * SLOT_SECONDS, UTC)
    return start.astimezone(_zone(timezone)).date()


def local_today(timezone: str, now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(_zone(timezone)).date()


def local_midnight_utc(day: date, timezone: str) -> datetime:
    """The UTC instant the local `day` starts in `timezone`."""
    return datetime.combine(day, time(0), _zone(timezone)).astimezone(UTC)


# ---------------------------------------------------------------- the in-memory buffer


@dataclass
class _MemberTally:
    messages: int = 0
    signups: int = 0
    last_at: datetime | None = None

    def add(self, other: _MemberTally) -> None:
        self.messages += other.messages
        self.signups += other.signups
        if other.last_at is not None and (self.last_at is None or self.last_at < other.last_at):
            self.last_at = other.last_at


@dataclass
class _GroupTally:
    joins: int = 0
    leaves: int = 0

    def add(self, other: _GroupTally) -> None:
        self.joins += other.joins
        self.leaves += other.leaves


@dataclass
class _Snapshot:
    members: dict[tuple[int, int, int], _MemberTally] = field(default_factory=dict)
    groups: dict[tuple[int, int], _GroupTally] = field(default_factory=dict)
    names: dict[int, Person] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.members or self.groups)


@dataclass(frozen=True, slots=True)
class FlushResult:
    members: int  # member-day rows merged
    groups: int  # group-day rows merged
    dropped: int  # buffered entries of chats that are not registered groups


FORGET_MEMORY = timedelta(minutes=10)  # how long a forgotten id filters flushes


class ActivityBuffer:
    """Counts in memory, keyed by (chat id, UTC 15-minute slot[, user id]).

    Recording is synchronous and touches no database. `flush(session)` merges everything
    buffered so far; events recorded while a flush runs go into the next one.
    """

    def __init__(self) -> None:
        self._data = _Snapshot()
        self._lock = asyncio.Lock()
        # People who used /forgetme lately, and when: a flush that took its snapshot before
        # they were forgotten (and waited for the database meanwhile) must not write them back.
        self._forgotten: dict[int, datetime] = {}

    # -- recording

    def _member(self, chat_id: int, user_id: int, at: datetime) -> _MemberTally:
        key = (chat_id, slot_of(at), user_id)
        tally = self._data.members.get(key)
        if tally is None:
            tally = self._data.members[key] = _MemberTally()
        if tally.last_at is None or tally.last_at < at:
            tally.last_at = at
        return tally

    def _group(self, chat_id: int, at: datetime) -> _GroupTally:
        key = (chat_id, slot_of(at))
        tally = self._data.groups.get(key)
        if tally is None:
            tally = self._data.groups[key] = _GroupTally()
        return tally

    def record_message(
        self, chat_id: int, user_id: int, at: datetime, *, person: Person | None = None
    ) -> None:
        """A person's message in a group chat (bots are the caller's to skip; so is text)."""
        if person is not None and person.is_bot:
            return
        self._member(chat_id, user_id, at).messages += 1
        if person is not None:
            self._data.names[user_id] = person

    def record_signup(self, chat_id: int, user_id: int, at: datetime) -> None:
        self._member(chat_id, user_id, at).signups += 1

    def record_join(self, chat_id: int, user_id: int, at: datetime) -> None:
        self._group(chat_id, at).joins += 1

    def record_leave(self, chat_id: int, user_id: int, at: datetime) -> None:
        self._group(chat_id, at).leaves += 1

    def forget_user(self, user_id: int, at: datetime | None = None) -> None:
        """/forgetme: drop the person's counts and name not yet written (privacy hook), also
        from a flush already under way; what they do after this moment counts again."""
        at = at or datetime.now(UTC)
        self._forgotten = {u: t for u, t in self._forgotten.items() if at - t < FORGET_MEMORY}
        self._forgotten[user_id] = at
        self._drop_forgotten(self._data)

    def _drop_forgotten(self, snapshot: _Snapshot) -> _Snapshot:
        forgotten = self._forgotten
        if not forgotten:
            return snapshot
        for key in [
            k
            for k, tally in snapshot.members.items()
            if k[2] in forgotten and (tally.last_at is None or tally.last_at <= forgotten[k[2]])
        ]:
            del snapshot.members[key]
        still = {k[2] for k in snapshot.members}
        for user_id in [u for u in snapshot.names if u in forgotten and u not in still]:
            del snapshot.names[user_id]
        return snapshot

    @property
    def pending(self) -> int:
        """How many buffered entries wait for the next flush."""
        return len(self._data.members) + len(self._data.groups)

    # -- flushing

    def _take(self) -> _Snapshot:
        taken, self._data = self._data, _Snapshot()
        return taken

    def _restore(self, taken: _Snapshot) -> None:
        self._drop_forgotten(taken)
        for key, tally in taken.members.items():
            self._data.members.setdefault(key, _MemberTally()).add(tally)
        for key, tally in taken.groups.items():
            self._data.groups.setdefault(key, _GroupTally()).add(tally)
        for user_id, person in taken.names.items():
            self._data.names.setdefault(user_id, person)

    async def flush(self, session: AsyncSession) -> FlushResult:
        """Merge everything buffered into the database inside `session`'s transaction.

        If a statement fails, the counts go back into the buffer and the error is raised.
        (A failure at commit, after this returned, is covered by `flush_to`.)"""
        async with self._lock:
            taken = self._take()
            if not taken:
                return FlushResult(0, 0, 0)
            try:
                return await _merge_snapshot(session, self._drop_forgotten(taken))
            except BaseException:
                self._restore(taken)
                raise

    async def flush_to(self, db: Database) -> FlushResult:
        """Flush in a transaction of its own; nothing is lost if it fails or cannot commit."""
        async with self._lock:
            taken = self._take()
            if not taken:
                return FlushResult(0, 0, 0)
            try:
                async with db.transaction() as session:  # holds the write lock from here
                    return await _merge_snapshot(session, self._drop_forgotten(taken))
            except BaseException:
                self._restore(taken)
                raise


async def _merge_snapshot(session: AsyncSession, taken: _Snapshot) -> FlushResult:
    chat_ids = {k[0] for k in taken.members} | {k[0] for k in taken.groups}
    zones: dict[int, tuple[int, str]] = {}
    ids = sorted(chat_ids)
    for start in range(0, len(ids), 1000):
        rows = await session.execute(
            select(Group.chat_id, Group.id, Group.timezone).where(
                Group.chat_id.in_(ids[start : start + 1000])
            )
        )
        zones.update({chat_id: (gid, tz) for chat_id, gid, tz in rows.all()})

    members: dict[tuple[int, date, int], dict] = {}
    groups: dict[tuple[int, date], dict] = {}
    seen: dict[tuple[int, int], datetime] = {}
    dropped = 0
    for (chat_id, slot, user_id), tally in taken.members.items():
        where = zones.get(chat_id)
        if where is None:
            dropped += 1
            continue
        gid, tz = where
        day = local_day_of_slot(slot, tz)
        row = members.setdefault((gid, day, user_id), _counts(messages=0, signups=0, orders=0))
        row["messages"] += tally.messages
        row["signups"] += tally.signups
        row["last_active_at"] = _later(row["last_active_at"], tally.last_at)
        g = groups.setdefault((gid, day), _group_counts())
        g["messages"] += tally.messages
        g["signups"] += tally.signups
        if tally.last_at is not None:
            seen[(gid, user_id)] = _later(seen.get((gid, user_id)), tally.last_at)
    for (chat_id, slot), tally in taken.groups.items():
        where = zones.get(chat_id)
        if where is None:
            dropped += 1
            continue
        gid, tz = where
        g = groups.setdefault((gid, local_day_of_slot(slot, tz)), _group_counts())
        g["joins"] += tally.joins
        g["leaves"] += tally.leaves

    counted = {uid for _gid, uid in seen}
    names = [p for uid, p in taken.names.items() if uid in counted]
    await _write(session, members, groups, seen, names)
    return FlushResult(len(members), len(groups), dropped)


def _counts(**values: int) -> dict:
    return {**values, "last_active_at": None}


def _group_counts() -> dict:
    return {"messages": 0, "joins": 0, "leaves": 0, "signups": 0, "orders": 0}


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


async def _write(
    session: AsyncSession,
    members: dict[tuple[int, date, int], dict],
    groups: dict[tuple[int, date], dict],
    seen: dict[tuple[int, int], datetime],
    names: Sequence[Person] = (),
) -> None:
    """The merge proper. Lock order: users, group-days, member-days, memberships."""
    now = utcnow()
    if names:
        await merge_rows(
            session,
            User.__table__,
            [
                {
                    "id": p.id,
                    "first_name": p.first_name[:256],
                    "last_name": (p.last_name or None) and p.last_name[:256],
                    "username": p.username,
                    "is_bot": False,
                    "started": False,
                    "leaderboard_hidden": False,
                    "updated_at": now,
                }
                for p in sorted(names, key=lambda p: p.id)
            ],
            ["id"],
            replace=["first_name", "last_name", "username"],
        )
    for key in members:  # every member-day has its group-day (locked first)
        groups.setdefault((key[0], key[1]), _group_counts())
    if groups:
        await merge_rows(
            session,
            GroupActivityDay.__table__,
            [
                {"group_id": gid, "day": day, "active_members": 0, **counts}
                for (gid, day), counts in sorted(groups.items())
            ],
            ["group_id", "day"],
            add=["messages", "joins", "leaves", "signups", "orders"],
        )
    if members:
        await merge_rows(
            session,
            MemberActivityDay.__table__,
            [
                {"group_id": gid, "day": day, "user_id": uid, **counts}
                for (gid, day, uid), counts in sorted(members.items())
            ],
            ["group_id", "day", "user_id"],
            add=["messages", "signups", "orders"],
            latest=["last_active_at"],
        )
        await _recount(session, sorted({(k[0], k[1]) for k in members}))
    if seen:
        await merge_rows(
            session,
            Membership.__table__,
            [
                {
                    "group_id": gid,
                    "user_id": uid,
                    "status": "member",
                    "last_active_at": at,
                    "updated_at": now,
                }
                for (gid, uid), at in sorted(seen.items())
            ],
            ["group_id", "user_id"],
            latest=["last_active_at"],
        )


async def _recount(session: AsyncSession, keys: list[tuple[int, date]]) -> None:
    """active_members = the number of member rows of that group-day (exact, not added)."""
    g, m = GroupActivityDay.__table__, MemberActivityDay.__table__
    count = (
        select(func.count())
        .select_from(m)
        .where(m.c.group_id == g.c.group_id, m.c.day == g.c.day)
        .scalar_subquery()
    )
    for start in range(0, len(keys), 200):
        part = keys[start : start + 200]
        await session.execute(
            update(g)
            .where(or_(*(and_(g.c.group_id == gid, g.c.day == day) for gid, day in part)))
            .values(active_members=count)
        )


async def count_orders(session: AsyncSession, orders: Iterable[Order], at: datetime) -> int:
    """Orders confirmed by a deal's success, counted in the closing transaction on each
    group's local day of `at`. Returns how many were counted."""
    tally: dict[tuple[int, int], int] = {}
    for order in orders:
        if order.status == "confirmed" and order.group_id is not None and order.quantity > 0:
            key = (order.group_id, order.user_id)
            tally[key] = tally.get(key, 0) + 1
    if not tally:
        return 0
    group_ids = sorted({gid for gid, _uid in tally})
    rows = await session.execute(select(Group.id, Group.timezone).where(Group.id.in_(group_ids)))
    zones = {gid: tz for gid, tz in rows.all()}
    members: dict[tuple[int, date, int], dict] = {}
    groups: dict[tuple[int, date], dict] = {}
    for (gid, uid), n in tally.items():
        if gid not in zones:
            continue
        day = local_today(zones[gid], at)
        members[(gid, day, uid)] = _counts(messages=0, signups=0, orders=n)
        groups.setdefault((gid, day), _group_counts())["orders"] += n
    await _write(session, members, groups, {})
    return sum(g["orders"] for g in groups.values())


# ---------------------------------------------------------------- leaderboards


@dataclass(frozen=True, slots=True)
class Ranked:
    user_id: int
    name: str
    count: int


@dataclass(frozen=True, slots=True)
class Leaderboard:
    days: int
    since: date  # first local day counted (today is the last)
    active: list[Ranked]
    inviters: list[Ranked]


async def _names(session: AsyncSession, user_ids: Iterable[int]) -> dict[int, User]:
    ids = list(set(user_ids))
    if not ids:
        return {}
    rows = await session.scalars(select(User).where(User.id.in_(ids)))
    return {u.id: u for u in rows}


def _visible():
    """Users not hidden from leaderboards (unknown users are visible)."""
    return or_(User.leaderboard_hidden.is_(None), User.leaderboard_hidden.is_(False))


async def top_active(
    session: AsyncSession, group: Group, days: int, *, now: datetime | None = None, limit: int = 10
) -> list[Ranked]:
    """Most active members over the last `days` local days (today included): messages plus
    sign-ups, highest first; members hidden by /hideme are left out."""
    since = local_today(group.timezone, now) - timedelta(days=days - 1)
    m = MemberActivityDay
    score = func.sum(m.messages + m.signups).label("score")
    rows = (
        await session.execute(
            select(m.user_id, score)
            .outerjoin(User, User.id == m.user_id)
            .where(m.group_id == group.id, m.day >= since, _visible())
            .group_by(m.user_id)
            .having(func.sum(m.messages + m.signups) > 0)
            .order_by(score.desc(), m.user_id)
            .limit(limit)
        )
    ).all()
    people = await _names(session, [r[0] for r in rows])
    return [Ranked(uid, _name(people.get(uid), uid), int(n)) for uid, n in rows]


async def top_inviters(
    session: AsyncSession, group: Group, days: int, *, now: datetime | None = None, limit: int = 10
) -> list[Ranked]:
    """Members whose invitations brought the most people in over the last `days` local days
    (Referral rows joined in the window), hidden members left out."""
    since = local_today(group.timezone, now) - timedelta(days=days - 1)
    start = local_midnight_utc(since, group.timezone)
    n = func.count().label("n")
    rows = (
        await session.execute(
            select(Referral.inviter_id, n)
            .outerjoin(User, User.id == Referral.inviter_id)
            .where(Referral.group_id == group.id, Referral.joined_at >= start, _visible())
            .group_by(Referral.inviter_id)
            .order_by(n.desc(), Referral.inviter_id)
            .limit(limit)
        )
    ).all()
    people = await _names(session, [r[0] for r in rows])
    return [Ranked(uid, _name(people.get(uid), uid), int(c)) for uid, c in rows]


async def leaderboard(
    session: AsyncSession, group: Group, days: int, *, now: datetime | None = None
) -> Leaderboard:
    since = local_today(group.timezone, now) - timedelta(days=days - 1)
    return Leaderboard(
        days,
        since,
        await top_active(session, group, days, now=now),
        await top_inviters(session, group, days, now=now),
    )


def _name(user: User | None, user_id: int) -> str:
    return user.full_name if user is not None else str(user_id)


async def set_hidden(session: AsyncSession, user: User, hidden: bool) -> bool:
    """/hideme and /showme. Returns whether anything changed."""
    changed = bool(user.leaderboard_hidden) != hidden
    user.leaderboard_hidden = hidden
    await session.flush()
    return changed


# ---------------------------------------------------------------- core and dormant members


class BadCoreDays(ValueError):
    """The core threshold must be a whole number of days from 1 to 14."""


@dataclass(frozen=True, slots=True)
class Member:
    user_id: int
    first_name: str
    days: int = 0  # active days in the window (core members)
    events: int = 0  # offline events attended in the window (services.gatherings)


@dataclass(frozen=True, slots=True)
class MemberReport:
    group: Group
    today: date
    core_min_days: int
    core: list[Member]
    dormant: list[Member]


def _absent_statuses():
    return Membership.status.not_in(PRESENT)


async def core_members(
    session: AsyncSession, group: Group, *, now: datetime | None = None
) -> list[Member]:
    """Members active on at least `group.core_min_days` of the last 14 local days (today
    included), most active days first; members known to have left are left out. A day a
    member attended one of the group's offline events (checked in, services.gatherings)
    is an active day too, and the events attended are counted."""
    today = local_today(group.timezone, now)
    since = today - timedelta(days=CORE_WINDOW_DAYS - 1)
    m = MemberActivityDay
    gone = set(
        await session.scalars(
            select(Membership.user_id).where(Membership.group_id == group.id, _absent_statuses())
        )
    )
    days: dict[int, set[date]] = {}
    rows = await session.execute(
        select(m.user_id, m.day).where(m.group_id == group.id, m.day >= since, m.day <= today)
    )
    for uid, day in rows.all():
        days.setdefault(uid, set()).add(day)
    events: dict[int, int] = {}
    checkins = await session.execute(
        select(EventCheckin.user_id, EventCheckin.checked_in_at).where(
            EventCheckin.group_id == group.id,
            EventCheckin.checked_in_at >= local_midnight_utc(since, group.timezone),
        )
    )
    for uid, at in checkins.all():
        day = local_day_of_moment(at, group.timezone)
        if since <= day <= today:
            days.setdefault(uid, set()).add(day)
            events[uid] = events.get(uid, 0) + 1
    ranked = sorted(
        (
            (uid, len(seen))
            for uid, seen in days.items()
            if uid not in gone and len(seen) >= group.core_min_days
        ),
        key=lambda item: (-item[1], item[0]),
    )
    people = await _names(session, [uid for uid, _d in ranked])
    return [Member(uid, _first(people.get(uid), uid), d, events.get(uid, 0)) for uid, d in ranked]


def local_day_of_moment(moment: datetime, timezone: str) -> date:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(_zone(timezone)).date()


async def dormant_members(
    session: AsyncSession, group: Group, *, now: datetime | None = None
) -> list[Member]:
    """Present members with no activity in the last 30 local days (today included) who have
    been in the group at least that long (or since before the bot saw them join)."""
    now = now or utcnow()
    today = local_today(group.timezone, now)
    since = today - timedelta(days=DORMANT_DAYS - 1)
    joined_before = local_midnight_utc(since, group.timezone)
    m = MemberActivityDay
    active = select(m.user_id).where(m.group_id == group.id, m.day >= since).scalar_subquery()
    rows = (
        await session.scalars(
            select(Membership.user_id)
            .where(
                Membership.group_id == group.id,
                Membership.status.in_(PRESENT),
                Membership.user_id.not_in(active),
                or_(Membership.joined_at.is_(None), Membership.joined_at < joined_before),
            )
            .order_by(Membership.user_id)
        )
    ).all()
    people = await _names(session, rows)
    members = [Member(uid, _first(people.get(uid), uid)) for uid in rows]
    return sorted(members, key=lambda x: (x.first_name.casefold(), x.user_id))


def _first(user: User | None, user_id: int) -> str:
    if user is None:
        return str(user_id)
    return user.first_name or user.full_name


async def member_report(
    session: AsyncSession, group: Group, *, now: datetime | None = None
) -> MemberReport:
    return MemberReport(
        group,
        local_today(group.timezone, now),
        group.core_min_days,
        await core_members(session, group, now=now),
        await dormant_members(session, group, now=now),
    )


def parse_core_days(text: str) -> int:
    """'7' → 7; anything that is not a whole number from 1 to 14 raises BadCoreDays."""
    raw = (text or "").strip()
    try:
        value = parse_int(raw, maximum=999)
    except ParseError:
        raise BadCoreDays(raw[:20]) from None
    if not CORE_MIN <= value <= CORE_MAX:
        raise BadCoreDays(raw)
    return value


async def set_core_min_days(session: AsyncSession, group: Group, value: int) -> int:
    if not CORE_MIN <= value <= CORE_MAX:
        raise BadCoreDays(str(value))
    group.core_min_days = value
    group.updated_at = utcnow()
    await session.flush()
    return value


__all__ = [
    "ActivityBuffer",
    "BadCoreDays",
    "FlushResult",
    "Leaderboard",
    "Member",
    "MemberReport",
    "Ranked",
    "core_members",
    "count_orders",
    "dormant_members",
    "leaderboard",
    "local_day_of_slot",
    "member_report",
    "parse_core_days",
    "set_core_min_days",
    "set_hidden",
    "top_active",
    "top_inviters",
]

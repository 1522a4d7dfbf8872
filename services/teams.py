"""Team buys (拼团): `size` members at `price` each, filled within `hours`.

Rules (README, "Team buys"):
- A deal offers teams when its owner set a size (2–50), a price below the deal's unit price
  and a time (1–72 h, never past the deal's closing): `configure`, fixed once a team exists.
- A member starts a team or joins one; each place is one unit, an ordinary order of the deal
  through the one order action (services.orders.act with the team's id): it takes stock at
  once, so a team can never be completed past the stock. One order per member per deal, so
  a member is in at most one team of a deal, never twice in one, and a member who ordered
  alone cancels first. Only people who tap take places: nothing fills a team for them.
- The size-th member fills the team: its orders are confirmed at the team price in that
  same transaction (invoiced when the deal takes payments), and everyone in it is told.
- A team not filled by its time fails (the scheduler, `expire_due`), as do the open teams of
  a deal that closes: their orders are cancelled, the units go back to stock, the members are
  told, and they may start or join another team. A member may leave an open team; a team left
  empty fails quietly.
- Places are counted by conditional UPDATEs of the team row (`members < size`, open, not
  expired) in the savepoint of the order, after the deal's row is locked: team actions and
  a deal's closing take their locks in one order (deal, team, orders), and a refused order
  takes its place back.

Promised messages are outbox rows (kind "team_note"): the starter's link, and each member's
note when the team fills or fails. The team cards in the group are the deal posts' business
(bot.team_cards), edited with them.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models import Deal, Group, Order, Team, User
from services import deals as deal_service
from services import events, offers, outbox
from services import orders as order_service
from services.errors import DomainError
from services.parsing import MAX_INT, ParseError, parse_int, parse_price_in

MIN_SIZE, MAX_SIZE = 2, 50
MIN_HOURS, MAX_HOURS = 1, 72
LINK_PREFIX = "team_"  # /start team_<code>: the team in private chat
CODE_ALPHABET = string.ascii_letters + string.digits
CODE_LENGTH = 10
NOTE = "team_note"


class TeamError(DomainError):
    pass


class NoTeams(TeamError):
    """The deal offers no team buy."""


class TeamNotFound(TeamError):
    pass


class TeamFull(TeamError):
    pass


class TeamOver(TeamError):
    """The team is filled or failed (or its time ran out)."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class AlreadyInTeam(TeamError):
    """The member holds a place in this team."""


class InOtherTeam(TeamError):
    """The member holds a place in another team of the deal."""


class OrderedAlone(TeamError):
    """The member ordered the deal alone: they cancel that order first."""

    def __init__(self, quantity: int) -> None:
        super().__init__(quantity)
        self.quantity = quantity


class NotInTeam(TeamError):
    pass


class TeamsFixed(TeamError):
    """A team of this deal exists: its team rules no longer change."""


class BadTeamRules(TeamError):
    """Size, price or hours out of their bounds (`what` says which)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


# ---------------------------------------------------------------- rules


def offers_teams(deal: Deal) -> bool:
    return deal.team_size is not None and deal.team_price is not None


def check_rules(deal: Deal, size: int, price: int, hours: int) -> None:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise BadTeamRules("size")
    if not 0 < price < deal.unit_price:
        raise BadTeamRules("price")
    if not MIN_HOURS <= hours <= MAX_HOURS:
        raise BadTeamRules("hours")
    if deal.stock_total is not None and deal.stock_total < size:
        raise BadTeamRules("stock")


async def configure(
    session: AsyncSession,
    deal: Deal,
    now: datetime,
    rules: Rules | None,
) -> None:
    """Set (or with None, remove) the deal's team offer. Refused once a team of the deal
    exists (its rules are fixed for the people who acted on them) or once the deal is
    closed; the caller checked the owner's rights."""
    if deal.status in deal_service.FINAL_STATES:
        raise deal_service.DealFinished(deal.id)
    started = await session.scalar(select(Team.id).where(Team.deal_id == deal.id).limit(1))
    if started is not None:
        raise TeamsFixed(deal.id)
    if rules is None:
        deal.team_size = deal.team_price = deal.team_hours = None
        deal.team_only = False
    else:
        check_rules(deal, rules.size, rules.price, rules.hours)
        deal.team_size, deal.team_price, deal.team_hours = rules.size, rules.price, rules.hours
        deal.team_only = rules.only
    deal.updated_at = now  # the posts show the offer (or stop showing it)
    await session.flush()
    events.record(session, events.DealChanged(deal.id))


@dataclass
class Rules:
    size: int
    price: int  # minor units of the deal's currency
    hours: int
    only: bool = False


def parse_rules(words: list[str], deal: Deal) -> Rules | None:
    """The words after the deal's code in `/teambuy`: `<size> <price> <hours> [only]`, or
    `off` (None). Bounded before anything is stored: BadTeamRules names what is wrong
    ("usage" for the shape)."""
    if [w.lower() for w in words] == ["off"]:
        return None
    only = bool(words) and words[-1].lower() == "only"
    if only:
        words = words[:-1]
    if len(words) != 3:
        raise BadTeamRules("usage")
    try:
        size = parse_int(words[0], minimum=MIN_SIZE, maximum=MAX_SIZE)
    except ParseError as exc:
        raise BadTeamRules("size") from exc
    price = parse_price_in(words[1], deal.currency).amount
    try:
        hours = parse_int(words[2].lower().removesuffix("h"), minimum=MIN_HOURS, maximum=MAX_HOURS)
    except ParseError as exc:
        raise BadTeamRules("hours") from exc
    check_rules(deal, size, price, hours)
    return Rules(size, price, hours, only)


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def link_payload(team: Team) -> str:
    return LINK_PREFIX + team.code


def parse_link(payload: str) -> str | None:
    """`team_<code>` → the code; None for anything else."""
    code = payload.removeprefix(LINK_PREFIX)
    if payload == code or len(code) != CODE_LENGTH or not code.isascii() or not code.isalnum():
        return None
    return code


# ---------------------------------------------------------------- actions


@dataclass
class Joined:
    team: Team
    deal: Deal
    filled: bool


async def _held(session: AsyncSession, deal_id: int, user_id: int) -> Order | None:
    return await session.scalar(
        select(Order).where(
            Order.deal_id == deal_id,
            Order.user_id == user_id,
            Order.status.in_(("active", "confirmed")),
            Order.quantity > 0,
        )
    )


def _refuse_holder(order: Order | None, team_id: int | None) -> None:
    """A member holding an order of the deal takes no place (one order per member per deal)."""
    if order is None:
        return
    if order.team_id is None:
        raise OrderedAlone(order.quantity)
    if order.team_id == team_id:
        raise AlreadyInTeam(team_id)
    raise InOtherTeam(order.team_id)


async def _take(
    session: AsyncSession, team: Team, user_id: int, group: Group, now: datetime
) -> Deal:
    """One place: the team's conditional UPDATE, then the order (the caller's savepoint
    takes both back on a refusal)."""
    took = await session.execute(
        update(Team)
        .where(
            Team.id == team.id,
            Team.status == "open",
            Team.members < Team.size,
            Team.expires_at > now,
        )
        .values(members=Team.members + 1)
    )
    if (took.rowcount or 0) == 0:
        await session.refresh(team)
        if team.status == "open" and team.expires_at > now:
            raise TeamFull(team.id)
        raise TeamOver("failed" if team.status == "open" else team.status)
    try:
        change = await order_service.act(
            session,
            deal_id=team.deal_id,
            user_id=user_id,
            action="join",
            group=group,
            now=now,
            via="team",
            team_id=team.id,
        )
    except order_service.AlreadyJoined as exc:  # ordered alone meanwhile
        raise OrderedAlone(exc.quantity) from exc
    except order_service.InOffer as exc:
        if exc.team_id is None:  # bought through a bargain (services.bargains) meanwhile
            raise
        raise (AlreadyInTeam if exc.team_id == team.id else InOtherTeam)(exc.team_id) from exc
    await session.refresh(team)
    return change.deal


async def start(
    session: AsyncSession, *, deal_id: int, user_id: int, group: Group, now: datetime
) -> Joined:
    """The member starts a team of the deal in `group` and takes its first place."""
    deal = await deal_service.get(session, deal_id, lock=True)
    if not offers_teams(deal):
        raise NoTeams(deal_id)
    _refuse_holder(await _held(session, deal_id, user_id), None)
    assert deal.team_size is not None and deal.team_price is not None
    expires_at = min(now + timedelta(hours=deal.team_hours or MAX_HOURS), deal.closes_at)
    for attempt in range(3):
        try:
            async with events.savepoint(session):
                team = Team(
                    deal_id=deal_id,
                    group_id=group.id,
                    starter_id=user_id,
                    code=new_code(),
                    size=deal.team_size,
                    price=deal.team_price,
                    members=0,
                    status="open",
                    expires_at=expires_at,
                    created_at=now,
                )
                session.add(team)
                await session.flush()
                deal = await _take(session, team, user_id, group, now)
            break
        except IntegrityError:  # a code already taken (1 in 62^10)
            if attempt == 2:
                raise
    await _note(session, team, user_id, "started", now)
    return Joined(team, deal, False)


def _refuse_closed(team: Team, now: datetime) -> None:
    if team.status != "open" or team.expires_at <= now:
        raise TeamOver("failed" if team.status == "open" else team.status)


async def _refuse_early(session: AsyncSession, team: Team, user_id: int, now: datetime) -> None:
    """What committed state already refuses, read before the deal's lock so that a rush's
    refusals do not queue behind its joins: the member holds an order of the deal, the
    team is over or full, the deal has no unit left. Each is a fact of a read begun after
    the tap arrived (a place or a unit freed a moment later is the same as a tap a moment
    earlier); the locked path checks everything again."""
    _refuse_holder(await _held(session, team.deal_id, user_id), team.id)
    _refuse_closed(team, now)
    if team.members >= team.size:
        raise TeamFull(team.id)
    left = await session.scalar(select(Deal.stock_left).where(Deal.id == team.deal_id))
    if left is not None and left < 1:
        raise order_service.SoldOut(0)


async def join(session: AsyncSession, *, team: Team, user_id: int, now: datetime) -> Joined:
    """The member takes a place in `team`; the size-th place fills it."""
    await _refuse_early(session, team, user_id, now)
    deal = await deal_service.get(session, team.deal_id, lock=True)
    await session.refresh(team)
    _refuse_holder(await _held(session, team.deal_id, user_id), team.id)
    _refuse_closed(team, now)
    group = await session.get(Group, team.group_id)
    assert group is not None
    async with events.savepoint(session):
        deal = await _take(session, team, user_id, group, now)
    filled = team.members >= team.size
    if filled:
        await _fill(session, team, deal, now)
    return Joined(team, deal, filled)


async def leave(session: AsyncSession, *, team: Team, user_id: int, now: datetime) -> Team:
    """The member gives their place in an open team back (its unit goes back to stock);
    a team left empty fails."""
    await deal_service.get(session, team.deal_id, lock=True)
    await session.refresh(team)
    if team.status != "open":
        raise TeamOver(team.status)
    async with events.savepoint(session):
        left = await session.execute(
            update(Team)
            .where(Team.id == team.id, Team.status == "open", Team.members > 0)
            .values(members=Team.members - 1)
        )
        if (left.rowcount or 0) == 0:
            raise NotInTeam(team.id)
        try:
            await order_service.act(
                session,
                deal_id=team.deal_id,
                user_id=user_id,
                action="cancel",
                group=None,
                now=now,
                via="team",
                team_id=team.id,
            )
        except (
            order_service.NotJoined,
            order_service.InOffer,
            order_service.AlreadyJoined,
        ) as exc:
            raise NotInTeam(team.id) from exc
    await session.refresh(team)
    if team.members == 0:
        await _fail(session, team, now, None)
    return team


async def _members_orders(session: AsyncSession, team_id: int, status: str) -> list[Order]:
    rows = await session.scalars(
        select(Order)
        .where(Order.team_id == team_id, Order.status == status, Order.quantity > 0)
        .order_by(Order.id)
    )
    return list(rows)


async def _touch_deal(session: AsyncSession, deal_id: int, now: datetime) -> None:
    """The deal's version moves: its posts and team cards are rendered again."""
    await session.execute(update(Deal).where(Deal.id == deal_id).values(updated_at=now))
    events.record(session, events.DealChanged(deal_id))


async def _fill(session: AsyncSession, team: Team, deal: Deal, now: datetime) -> None:
    done = await session.execute(
        update(Team)
        .where(Team.id == team.id, Team.status == "open")
        .values(status="filled", closed_at=now)
    )
    if (done.rowcount or 0) == 0:
        return
    await session.refresh(team)
    orders = await _members_orders(session, team.id, "active")
    await order_service.confirm(session, deal, orders, team.price, now)
    for order in orders:
        await _note(session, team, order.user_id, "filled", now)
    await _touch_deal(session, deal.id, now)


async def _fail(session: AsyncSession, team: Team, now: datetime, why: str | None) -> bool:
    """The team fails (`why`: "expired" or "closed", told to its members; None: left empty).
    Its orders are cancelled and their units go back. False if it was not open."""
    done = await session.execute(
        update(Team)
        .where(Team.id == team.id, Team.status == "open")
        .values(status="failed", closed_at=now)
    )
    if (done.rowcount or 0) == 0:
        return False
    await session.refresh(team)
    orders = await _members_orders(session, team.id, "active")
    await order_service.drop(session, team.deal_id, [o.id for o in orders], now)
    if why is not None:
        for order in orders:
            await _note(session, team, order.user_id, why, now)
    await _touch_deal(session, team.deal_id, now)
    return True


async def on_deal_closing(session: AsyncSession, deal: Deal, now: datetime) -> int:
    """The deal closes (its row locked by the caller): its open teams fail first."""
    teams = await session.scalars(
        select(Team).where(Team.deal_id == deal.id, Team.status == "open").order_by(Team.id)
    )
    failed = 0
    for team in list(teams):
        failed += await _fail(session, team, now, "closed")
    return failed


async def _expire(session: AsyncSession, team: Team, now: datetime) -> bool:
    return await _fail(session, team, now, "expired")


async def any_expiring(session: AsyncSession, now: datetime) -> bool:
    return await offers.any_expiring(session, Team, now)


async def expire_due(session: AsyncSession, now: datetime) -> int:
    """Fail the open teams whose time ran out (a batch); returns how many."""
    return await offers.expire_due(session, Team, now, _expire)


async def _note(session: AsyncSession, team: Team, user_id: int, what: str, now: datetime) -> None:
    await outbox.promise(
        session,
        key=f"team:{team.id}:{what}:{user_id}",
        chat_id=user_id,
        kind=NOTE,
        payload={"what": what, "team_id": team.id},
        group_id=team.group_id,
        now=now,
    )


# ---------------------------------------------------------------- reads


async def get(session: AsyncSession, team_id: int) -> Team:
    team = await session.get(Team, team_id) if 0 < team_id <= MAX_INT else None
    if team is None:
        raise TeamNotFound(team_id)
    return team


async def of_deal(session: AsyncSession, deal_id: int) -> list[Team]:
    return list(
        await session.scalars(select(Team).where(Team.deal_id == deal_id).order_by(Team.id))
    )


async def by_code(session: AsyncSession, code: str) -> Team | None:
    return await session.scalar(select(Team).where(Team.code == code))


@dataclass
class TeamView:
    """A team as its card shows it: the team, its deal and group, and its members in the
    order they joined (their orders of the team: open, or confirmed once filled)."""

    team: Team
    deal: Deal
    group: Group
    members: list[tuple[Order, User | None]]


async def views(session: AsyncSession, teams: list[Team]) -> list[TeamView]:
    """The views of these teams in three statements."""
    if not teams:
        return []
    deal_ids = sorted({t.deal_id for t in teams})
    deals = {d.id: d for d in await session.scalars(select(Deal).where(Deal.id.in_(deal_ids)))}
    group_ids = sorted({t.group_id for t in teams})
    groups = {g.id: g for g in await session.scalars(select(Group).where(Group.id.in_(group_ids)))}
    rows = await session.execute(
        select(Order, User)
        .outerjoin(User, User.id == Order.user_id)
        .where(
            Order.team_id.in_([t.id for t in teams]),
            Order.status.in_(("active", "confirmed")),
            Order.quantity > 0,
        )
        .order_by(Order.id)
    )
    members: dict[int, list[tuple[Order, User | None]]] = {}
    for order, user in rows.all():
        members.setdefault(order.team_id or 0, []).append((order, user))
    return [
        TeamView(t, deals[t.deal_id], groups[t.group_id], members.get(t.id, []))
        for t in teams
        if t.deal_id in deals and t.group_id in groups
    ]


async def view(session: AsyncSession, team: Team) -> TeamView:
    return (await views(session, [team]))[0]


async def cards_of(session: AsyncSession, deal_ids: list[int]) -> dict[int, list[TeamView]]:
    """The teams whose cards a refresh of these deals shows: open ones (posted, or to be
    posted) and closed ones whose card does not show the deal's current version yet."""
    if not deal_ids:
        return {}
    teams = list(
        await session.scalars(
            select(Team)
            .join(Deal, Deal.id == Team.deal_id)
            .where(
                Team.deal_id.in_(deal_ids),
                or_(
                    Team.status == "open",
                    Team.message_id.is_not(None)
                    & (Team.message_id > 0)
                    & (Team.rendered_at.is_(None) | (Team.rendered_at != Deal.updated_at)),
                ),
            )
            .order_by(Team.id)
        )
    )
    found: dict[int, list[TeamView]] = {}
    for one in await views(session, teams):
        found.setdefault(one.team.deal_id, []).append(one)
    return found


async def stale(session: AsyncSession, limit: int = 1000) -> list[int]:
    """Deals with a team card to post or to bring up to date (a catch-up at start)."""
    rows = await session.scalars(
        select(Team.deal_id)
        .join(Deal, Deal.id == Team.deal_id)
        .where(
            or_(
                (Team.status == "open") & Team.message_id.is_(None),
                Team.message_id.is_not(None)
                & (Team.rendered_at.is_(None) | (Team.rendered_at != Deal.updated_at)),
            )
        )
        .distinct()
        .limit(limit)
    )
    return list(rows)


CARD_CLAIM_LEASE = timedelta(minutes=2)  # a card claimed by a process that died: again


async def claim_card(session: AsyncSession, team_id: int, now: datetime) -> bool:
    """Take the right to post the team's card (once; a claim older than the lease is free)."""
    result = await session.execute(
        update(Team)
        .where(
            Team.id == team_id,
            Team.message_id.is_(None),
            or_(Team.posted_at.is_(None), Team.posted_at < now - CARD_CLAIM_LEASE),
        )
        .values(posted_at=now)
    )
    return (result.rowcount or 0) > 0


async def store_cards(
    session: AsyncSession,
    posted: list[tuple[int, int | None]],
    shown: list[tuple[list[int], datetime]],
) -> None:
    """Record the cards posted (team id, message id; None: not sent, the claim is given
    back) and the version of the deal each card shows (team ids, version)."""
    for team_id, message_id in posted:
        values = {"message_id": message_id} if message_id else {"posted_at": None}
        await session.execute(
            update(Team).where(Team.id == team_id, Team.message_id.is_(None)).values(**values)
        )
    for team_ids, version in shown:
        if team_ids:
            await session.execute(
                update(Team).where(Team.id.in_(team_ids)).values(rendered_at=version)
            )


# ---------------------------------------------------------------- the owner's books


@dataclass
class Counts:
    open: int = 0
    filled: int = 0
    failed: int = 0

    @property
    def any(self) -> bool:
        return bool(self.open or self.filled or self.failed)


async def counts(
    session: AsyncSession,
    *,
    deal_id: int | None = None,
    group_id: int | None = None,
    closed_from: datetime | None = None,
    closed_to: datetime | None = None,
) -> Counts:
    """Teams by status, of a deal or a group: the open ones now, and the filled and failed
    ones (closed within [from, to) if given: a digest's period)."""
    found = await offers.status_counts(
        session, Team, deal_id=deal_id, group_id=group_id,
        closed_from=closed_from, closed_to=closed_to,
    )  # fmt: skip
    return Counts(found.get("open", 0), found.get("filled", 0), found.get("failed", 0))

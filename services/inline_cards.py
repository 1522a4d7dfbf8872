"""Deal cards through inline mode: the search behind `@<bot> <query>`, the cards the bot
knows of (by `inline_message_id`), who may join from one, and which cards to refresh.

- `answer`: what one inline answer shows, in a constant number of statements however many
  deals match: the matches (`search`), the person's share link for each (`referrals.share_links`,
  missing ones created in one go) and every match's sign-up list.
- `search`: the open deals posted in the groups the person is in (memberships present, or
  an administrator), one result per (deal, group), newest first; an empty query lists them
  all, a query matches the title (case-insensitive substring) or the deal's code exactly.
- `record`: a card sent (chosen_inline_result, or the first tap on it) is stored once, with
  the deal, group and sharer of its share code (services.referrals); replays change nothing.
- `MembershipCheck`: for a members-only deal, whether the tapper is in the deal's group now,
  asked of Telegram through a fetcher the bot layer gives, cached briefly in memory.
- `live_of` / `settle` / `drop` / `stale`: the refresh of cards (bot.posts).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Deal, DealPost, Group, InlineCard, Order, ShareLink, User
from models.upsert import insert_ignore
from services import deals as deal_service
from services import referrals

MAX_RESULTS = 50  # answerInlineQuery: at most 50 results
QUERY_MAX = 64
ANYONE = "anyone"
MEMBERS = "members"


def _pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search(
    session: AsyncSession, user_id: int, query: str, limit: int = MAX_RESULTS
) -> list[tuple[Deal, Group]]:
    """Open deals of the person's groups matching `query` (title substring, or the code)."""
    groups = await referrals.member_groups(session, user_id)
    if not groups:
        return []
    by_id = {g.id: g for g in groups}
    text = " ".join((query or "").split())[:QUERY_MAX]
    stmt = (
        select(Deal, DealPost.group_id)
        .join(DealPost, DealPost.deal_id == Deal.id)
        .where(
            DealPost.group_id.in_(list(by_id)),
            DealPost.message_id.is_not(None),
            Deal.status == "open",
        )
        .order_by(Deal.created_at.desc(), Deal.id.desc(), DealPost.group_id)
        .limit(limit)
    )
    if text:
        match = Deal.title.ilike(_pattern(text), escape="\\")
        code = deal_service.parse_code(text) if text[:1] in "Dd" else None
        stmt = stmt.where(or_(match, Deal.id == code) if code is not None else match)
    rows = await session.execute(stmt)
    return [(deal, by_id[group_id]) for deal, group_id in rows.all()]


@dataclass(frozen=True, slots=True)
class Found:
    """One result of an inline answer: the deal, its group, the person's share link for
    it and its sign-up list."""

    deal: Deal
    group: Group
    share: ShareLink
    signups: list[tuple[Order, User | None]]


async def answer(
    session: AsyncSession, user_id: int, query: str, now: datetime, limit: int = MAX_RESULTS
) -> list[Found]:
    """Everything an inline answer shows, in a constant number of statements."""
    matches = await search(session, user_id, query, limit)
    if not matches:
        return []
    links = await referrals.share_links(session, user_id, [(d.id, g.id) for d, g in matches], now)
    lists = await deal_service.sign_up_lists(session, [d.id for d, _g in matches])
    return [Found(d, g, links[(d.id, g.id)], lists[d.id]) for d, g in matches]


async def record(
    session: AsyncSession, inline_message_id: str, code: str, now: datetime
) -> InlineCard | None:
    """Store the card sent with `code` (once); None for an unknown or revoked code."""
    if not inline_message_id or len(inline_message_id) > 256:
        return None
    known = await session.get(InlineCard, inline_message_id)
    if known is not None:
        return known
    share = await referrals.find_share(session, code)
    if share is None:
        return None
    await record_share(session, inline_message_id, share, now)
    return await session.get(InlineCard, inline_message_id)


async def record_share(
    session: AsyncSession, inline_message_id: str, share: ShareLink, now: datetime
) -> None:
    """Store a card whose share link is known (a tap on it): one statement; a card stored
    before is left as it is."""
    if not inline_message_id or len(inline_message_id) > 256:
        return
    await insert_ignore(
        session,
        InlineCard.__table__,
        {
            "inline_message_id": inline_message_id,
            "deal_id": share.deal_id,
            "group_id": share.group_id,
            "share_code": share.code,
            "sharer_id": share.user_id,
            "created_at": now,
        },
        conflict=["inline_message_id"],
    )


@dataclass(frozen=True, slots=True)
class CardDeal:
    share: ShareLink
    deal: Deal
    group: Group


async def resolve(session: AsyncSession, code: str) -> CardDeal | None:
    """The share link of a card's buttons, its deal and group (the deal still posted there,
    the group active; the link not revoked): one statement."""
    if not referrals.looks_like_code(code):
        return None
    row = (
        await session.execute(
            select(ShareLink, Deal, Group)
            .join(
                DealPost,
                and_(
                    DealPost.deal_id == ShareLink.deal_id,
                    DealPost.group_id == ShareLink.group_id,
                ),
            )
            .join(Deal, Deal.id == ShareLink.deal_id)
            .join(Group, Group.id == ShareLink.group_id)
            .where(
                ShareLink.code == code,
                ShareLink.revoked_at.is_(None),
                Group.is_active.is_(True),
            )
            .execution_options(populate_existing=True)
        )
    ).first()
    return CardDeal(row[0], row[1], row[2]) if row is not None else None


async def invite_for(session: AsyncSession, group_id: int, sharer_id: int) -> str | None:
    """How to get into the group: the sharer's invite link to it, if they made one."""
    invite = await referrals.active_invite(session, group_id, sharer_id)
    return invite.link if invite is not None else None


# Whether the user is in the chat now (a member, administrator, creator or restricted), or
# None when Telegram could not be asked.
MemberFetcher = Callable[[int, int], Awaitable[bool | None]]


class MembershipCheck:
    """Membership of a group, as Telegram says it now, cached `ttl` seconds per process."""

    def __init__(
        self,
        fetch: MemberFetcher,
        ttl: float = 60.0,
        refused_ttl: float = 5.0,
        size: int = 10_000,
    ) -> None:
        self.fetch = fetch
        self.ttl = ttl
        self.refused_ttl = refused_ttl  # short: someone refused may join and tap again
        self.size = size
        self._seen: dict[tuple[int, int], tuple[float, bool]] = {}

    async def is_member(self, chat_id: int, user_id: int) -> bool:
        key = (chat_id, user_id)
        now = time.monotonic()
        cached = self._seen.get(key)
        if cached is not None and now - cached[0] < (self.ttl if cached[1] else self.refused_ttl):
            return cached[1]
        answer = await self.fetch(chat_id, user_id)
        if answer is None:  # Telegram could not be asked: trust a recent answer, else refuse
            return cached[1] if cached is not None else False
        if len(self._seen) >= self.size:
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.ttl}
        self._seen[key] = (now, answer)
        return answer

    def forget(self, chat_id: int, user_id: int) -> None:
        self._seen.pop((chat_id, user_id), None)


def open_to(deal: Deal) -> str:
    return ANYONE if deal.audience == ANYONE else MEMBERS


# ---------------------------------------------------------------- refreshing cards


async def live_of(
    session: AsyncSession, deal_ids: list[int]
) -> dict[int, list[tuple[InlineCard, User | None]]]:
    """`live` of several deals in one query, each card with its sharer (None: unknown or
    forgotten); every id asked is a key."""
    result: dict[int, list[tuple[InlineCard, User | None]]] = {d: [] for d in deal_ids}
    if not deal_ids:
        return result
    rows = await session.execute(
        select(InlineCard, User)
        .outerjoin(User, User.id == InlineCard.sharer_id)
        .where(InlineCard.deal_id.in_(sorted(set(deal_ids))), InlineCard.dropped_at.is_(None))
        .order_by(InlineCard.deal_id, InlineCard.created_at, InlineCard.inline_message_id)
    )
    for card, sharer in rows.all():
        result[card.deal_id].append((card, sharer))
    return result


async def settle(
    session: AsyncSession, shown: list[tuple[list[str], datetime]], gone: list[str], now: datetime
) -> None:
    """After a refresh of many deals' cards: the cards rendered at each version (one
    statement for all), and the ones Telegram refuses for good dropped."""
    params = [{"b_id": mid, "b_shown": at} for ids, at in shown for mid in ids]
    if params:
        table = InlineCard.__table__
        await session.execute(
            update(table)
            .where(table.c.inline_message_id == bindparam("b_id"))
            .values(rendered_at=bindparam("b_shown")),
            params,
        )
    await drop(session, gone, now)


async def drop(session: AsyncSession, ids: list[str], now: datetime) -> None:
    """Telegram refuses edits for these cards (deleted, too old): never tried again."""
    if ids:
        await session.execute(
            update(InlineCard)
            .where(InlineCard.inline_message_id.in_(ids), InlineCard.dropped_at.is_(None))
            .values(dropped_at=now)
        )


async def stale(session: AsyncSession, limit: int = 1000) -> list[int]:
    """Deals with a live card showing another version than the deal's current one."""
    rows = await session.execute(
        select(Deal.id)
        .join(InlineCard, InlineCard.deal_id == Deal.id)
        .where(InlineCard.dropped_at.is_(None))
        .where(or_(InlineCard.rendered_at.is_(None), InlineCard.rendered_at != Deal.updated_at))
        .group_by(Deal.id)
        .order_by(Deal.id.desc())
        .limit(limit)
    )
    return [row[0] for row in rows]
